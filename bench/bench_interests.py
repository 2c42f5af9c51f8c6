"""Single vector vs multi-interest on a trained run, without retraining: the table of docs/multi-interest.md.

    DGLBACKEND=pytorch .venv/bin/python bench/bench_interests.py --data /tmp/ml_d --run RUN_FOLDER

Rebuilds the run's split from the data (same split as training), loads the run's embeddings into the
API's `ExactIndex` and runs the training job's own selection (`evaluation.served.select_recipe`,
`select_interests`) and test report (`multi_interest_report`) - the numbers a new run writes to
metrics.json["multi_interest"]. Prints the validation grid and a markdown table; --json writes it all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.contract import artifacts  # noqa: E402
from shared.serving.recipe import ExactIndex  # noqa: E402


def load_index(run_uri: str) -> ExactIndex:
    reader = artifacts.RunReader(run_uri)
    table = reader.open_parquet(artifacts.EMBEDDINGS).read()
    ids = table.column("movie_id").to_numpy()
    flat = np.asarray(table.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float32)
    return ExactIndex(ids, flat.reshape(len(ids), -1))  # (n, D)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the data the run was trained on")
    ap.add_argument("--run", required=True, help="run folder (its embeddings are evaluated)")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args()

    from training_job.data.movielens import load_movielens
    from training_job.evaluation.served import (
        multi_interest_report,
        select_interests,
        select_recipe,
        targets_for,
    )
    from training_job.model.graph import build
    from training_job.train import concat

    gd = build(load_movielens(args.data))
    val = targets_for(gd.train, gd.val, gd.user_ids, gd.movie_ids)
    test = targets_for(concat(gd.train, gd.val), gd.test, gd.user_ids, gd.movie_ids)
    index = load_index(args.run)
    t0 = time.perf_counter()
    single, _ = select_recipe(index, val)
    chosen, multi, selection = select_interests(index, single, val)
    report = multi_interest_report(index, chosen, multi, val, test, selection)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    for name, m in report["validation_grid"].items():  # type: ignore[attr-defined]
        print(f"validation {name:45s} " + " ".join(f"{k}={v:.4f}" for k, v in m.items() if isinstance(v, float)))
    print(f"\nchosen: {chosen.name} - {report['note']} (reference threshold {report['reference_threshold']})\n")
    print("| split | query | HR@10 | NDCG@10 | coverage | interest coverage |")
    print("|---|---|---|---|---|---|")
    for split in ("validation", "test"):
        for row in ("single", "multi", "chosen"):
            m = report[split][row]  # type: ignore[index]
            print(
                f"| {split} | {row} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['coverage']:.4f} "
                f"| {m['interest_coverage']:.4f} |"
            )
    print(f"\n{report['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
