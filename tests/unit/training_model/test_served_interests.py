"""training_job/evaluation/served.py: single vector vs multi-interest chosen on validation, reported on test."""

from __future__ import annotations

import numpy as np

from shared.serving.recipe import ExactIndex, Recipe
from training_job.evaluation.served import (
    Targets,
    interest_coverage,
    multi_interest_report,
    select_interests,
    served_metrics,
    typical_distance,
)


def planted(seed: int = 0, users: int = 60) -> tuple[ExactIndex, Targets, Targets]:
    """3 orthogonal tastes x 40 movies (ids 1000+, taste = id % 3); users like two tastes, interleaved;
    the held-out movie is of the OLDER taste half of the time (what a single recency-weighted vector misses)."""
    rng = np.random.default_rng(seed)
    dim, n = 16, 120
    taste = np.arange(n) % 3  # (n,)
    vec = np.eye(dim)[taste] + 0.15 * rng.normal(size=(n, dim))  # (n, dim)
    ids = np.arange(1000, 1000 + n)
    index = ExactIndex(ids, vec)
    by_taste = {t: [int(m) for m in ids[taste == t]] for t in range(3)}

    def split() -> Targets:
        hist, targ = [], []
        for u in range(users):
            a, b = rng.choice(3, size=2, replace=False)
            pa, pb = rng.permutation(by_taste[a]), rng.permutation(by_taste[b])
            h = [int(x) for pair in zip(pa[:4], pb[:2], strict=False) for x in pair] + [int(x) for x in pb[2:4]]
            hist.append(h)
            targ.append(int(pa[10]) if u % 2 else int(pb[10]))
        return Targets(list(range(users)), hist, targ)

    return index, split(), split()


def test_within_budget_multi_interest_wins_on_interest_coverage() -> None:
    index, val, test = planted()
    single = Recipe(last_k=10, decay=0.8)
    chosen, multi, sel = select_interests(index, single, val, budget=1.0)  # every candidate is eligible
    assert chosen.interests > 1 and "multi-interest chosen" in str(sel["note"])
    grid = sel["grid"]
    assert isinstance(grid, dict)
    multi_names = [name for name in grid if "interests" in name and "div" not in name]
    best_cov = max(grid[name]["interest_coverage"] for name in multi_names)
    assert grid[Recipe(**{**chosen.to_dict(), "diversity": 0.0}).name]["interest_coverage"] == best_cov
    assert multi.interests == chosen.interests and multi.diversity == 0.0
    report = multi_interest_report(index, chosen, multi, val, test, sel)
    for split in ("validation", "test"):
        for row in ("single", "multi", "chosen"):
            assert {"hr@10", "ndcg@10", "coverage", "interest_coverage"} <= set(report[split][row])  # type: ignore[index]
    # the report's single row is the served evaluation of the single-vector recipe, and multi serves
    # more of each user's tastes than the single vector on this data
    assert report["test"]["single"]["hr@10"] == served_metrics(index, single, test)[0]["hr@10"]  # type: ignore[index]
    assert report["test"]["multi"]["interest_coverage"] > report["test"]["single"]["interest_coverage"]  # type: ignore[index]


def test_over_budget_the_single_vector_is_kept_and_the_report_says_so() -> None:
    index, val, _ = planted()
    single = Recipe(last_k=10, decay=0.8)
    chosen, multi, sel = select_interests(index, single, val, budget=-1.0)  # no candidate can qualify
    assert chosen.interests == 1 and chosen.last_k == 10 and chosen.decay == 0.8
    assert "single vector kept" in str(sel["note"])
    assert multi.interests > 1  # still reported on test, for the comparison


def test_interest_coverage_counts_represented_reference_interests() -> None:
    index, val, _ = planted()
    recipe = Recipe(last_k=10, decay=0.8)
    reference = typical_distance(index, recipe, val)
    assert 0.0 < reference < 1.0
    one_taste = [[m for m in val.histories[0] if m % 3 == val.histories[0][-1] % 3]] * len(val.histories)
    # recommending only movies of one taste covers half of two-taste users' interests
    result = interest_coverage(index, recipe, val, one_taste, 0.5)
    assert result["multi_interest_users"] == len(val.histories)  # every user has two tastes
    assert 0.0 < result["interest_coverage"] <= 0.5
    _, ranked = served_metrics(index, Recipe(last_k=10, decay=0.8, interests=2, threshold=0.5), val)
    assert interest_coverage(index, recipe, val, ranked, 0.5)["interest_coverage"] >= 0.9  # both tastes served
