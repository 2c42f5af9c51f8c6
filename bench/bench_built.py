"""The functions as `sam build` builds them: unzipped sizes and the built API's cold start.

    .venv/bin/python bench/bench_built.py [--repeat 5] [--no-build]

1. `bash scripts/sam_build.sh --no-lint` (cached), then each function's unzipped size and its largest
   top-level entries.
2. An ML-1M-sized run (3,706 movies x 64-d, 6,040 users) loaded into MariaDB and a Milvus *server*
   (`milvus-lite server` in its own process), as on AWS.
3. Cold start of the built API: a fresh python3.12 (the Lambda runtime) with only
   .aws-sam/build/ApiFunction importable (-S: no site-packages), `import handlers.api` and the first
   answer to events/api_recommendations.json; median of --repeat. The same with the development venv
   (python3.11, whole repository) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BUILD = ROOT / ".aws-sam" / "build"


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-build", action="store_true", help="use .aws-sam/build as it is")
    args = p.parse_args()
    if not args.no_build:
        subprocess.run(["bash", str(ROOT / "scripts" / "sam_build.sh"), "--no-lint"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    print("built functions (unzipped; Lambda limit 250 MiB incl. layers, budget 200 MiB):")
    for fn in sorted(d for d in BUILD.iterdir() if d.is_dir()):
        parts = sorted(((tree_bytes(e) if e.is_dir() else e.stat().st_size), e.name) for e in fn.iterdir())[::-1][:5]
        top = ", ".join(f"{n} {b / 2**20:.0f}" for b, n in parts)
        with tempfile.TemporaryDirectory() as z:  # what `sam deploy` uploads (deflated zip)
            zipped = Path(shutil.make_archive(str(Path(z) / fn.name), "zip", fn)).stat().st_size
        print(f"  {fn.name:16s} {tree_bytes(fn) / 2**20:6.1f} MiB unzipped, {zipped / 2**20:5.1f} MiB zipped   "
              f"largest (MiB): {top}")  # fmt: skip

    import pymysql
    from bench_swap import start_milvus_server

    from shared.config.settings import Settings
    from tests.conftest import milvus_database
    from tests.helpers.factories import make_run
    from tests.integration.deploy.test_built_functions import _INVOKE, _python312

    work = Path(tempfile.mkdtemp(prefix="graphrec-built-"))
    server, server_uri = start_milvus_server(work / "milvus")
    s = Settings()
    db = f"graphrec_built_bench_{os.getpid()}"
    conn = pymysql.connect(host=s.mysql_host, port=s.mysql_port, user=s.mysql_user, password=s.mysql_password.get_secret_value())
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")  # generated name
    try:
        with milvus_database(server_uri) as milvus_uri:
            env = {"GRAPHREC_MILVUS_URI": milvus_uri, "GRAPHREC_MYSQL_HOST": s.mysql_host, "GRAPHREC_MYSQL_PORT": str(s.mysql_port),
                   "GRAPHREC_MYSQL_USER": s.mysql_user, "GRAPHREC_MYSQL_PASSWORD": s.mysql_password.get_secret_value(),
                   "GRAPHREC_MYSQL_DATABASE": db, "GRAPHREC_LOG_LEVEL": "WARNING"}  # fmt: skip
            run = make_run(str(work / "runs"), n_movies=3706, n_users=6040, dim=64, seed=3)
            loaded = subprocess.run([sys.executable, "-m", "handlers.loader", run.manifest_uri, "--no-progress"],
                                    cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)  # fmt: skip
            if loaded.returncode != 0:
                raise RuntimeError(loaded.stderr[-2000:])
            event = str(ROOT / "events" / "api_recommendations.json")
            variants = {
                "built (python3.12, .aws-sam/build/ApiFunction only)": (
                    [_python312(), "-S", "-s", "-c", _INVOKE, "handlers.api.handler", event],
                    {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(BUILD / "ApiFunction"), **env},
                ),
                "venv (python3.11, repository + .venv)": (
                    [sys.executable, "-c", _INVOKE, "handlers.api.handler", event],
                    {**os.environ, "PYTHONPATH": str(ROOT), **env},
                ),
            }
            print(f"cold start: import handlers.api + first POST /recommendations (Milvus server, median of {args.repeat})")
            for label, (cmd, cenv) in variants.items():
                imports, firsts, walls = [], [], []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    out = subprocess.run(cmd, env=cenv, capture_output=True, text=True, timeout=120)
                    walls.append(time.perf_counter() - t)
                    if out.returncode != 0:
                        raise RuntimeError(out.stderr[-2000:])
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    assert res["calls"][0]["response"]["statusCode"] == 200, res["calls"][0]["response"]
                    imports.append(res["import_seconds"])
                    firsts.append(res["calls"][0]["seconds"])
                imp, first = statistics.median(imports), statistics.median(firsts)
                print(f"  {label}: import {imp:.2f} s + first answer {first:.2f} s = {imp + first:.2f} s "
                      f"(process wall incl. interpreter start {statistics.median(walls):.2f} s)")  # fmt: skip
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
        server.terminate()
        server.wait(timeout=10)
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores, shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
