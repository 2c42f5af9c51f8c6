"""Loader throughput: a MovieLens-1M-sized run (and optionally a 1M-vector run) into Milvus Lite + MariaDB.

    .venv/bin/python bench/bench_loader.py              # ML-1M-sized run (3,706 movies, 6,040 users, ~1M history ids)
    .venv/bin/python bench/bench_loader.py --million    # also a 1,000,000-vector run (takes minutes)
    .venv/bin/python bench/bench_loader.py --milvus both  # Milvus Lite file and a Milvus server process

Targets: >= 15,000 vectors/s into Milvus Lite, >= 20,000 rows/s into MariaDB, ML-1M-sized run in <= 10 s.
Uses a throwaway MariaDB database (MYSQL_* env, default root@127.0.0.1) and a temp Milvus Lite file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.contract import artifacts  # noqa: E402

GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip


def write_run(out: str, n_movies: int, n_users: int, history_total: int, dim: int, seed: int = 0) -> str:
    """A synthetic run with realistic shapes; returns its manifest path."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_movies + 1, dtype=np.int64)
    emb = rng.normal(size=(n_movies, dim)).astype(np.float32)  # (n, dim)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    titles = [f"Synthetic Movie {i} ({1920 + i % 80})" for i in ids.tolist()]
    years = [None if i % 50 == 0 else 1920 + i % 80 for i in range(n_movies)]
    genres = [[GENRES[i % 18]] + ([GENRES[(i * 7) % 18]] if i % 3 == 0 else []) for i in range(n_movies)]
    # Long-tailed history lengths summing to ~history_total (ML-1M: 20..2314, mean ~165).
    lengths = rng.pareto(1.5, size=n_users) + 1.0
    lengths = np.maximum(20, (lengths / lengths.sum() * history_total).astype(int))
    lengths = np.minimum(lengths, n_movies)
    histories = [rng.choice(ids, size=int(n), replace=False).tolist() for n in lengths]
    w = artifacts.RunWriter(out)
    w.write_table(artifacts.EMBEDDINGS, artifacts.embeddings_table(ids, emb))
    w.write_table(artifacts.MOVIES, artifacts.movies_table(ids, titles, years, genres))
    w.write_table(artifacts.USER_HISTORY, artifacts.user_history_table(list(range(1, n_users + 1)), histories))
    w.write_json(artifacts.METRICS, {})
    w.write_json(artifacts.CONFIG, {"bench": True})
    w.finish(
        dim=dim,
        counts=artifacts.Counts(movies=n_movies, users=n_users, embeddings=n_movies, ratings=int(lengths.sum())),
    )
    return w.uri(artifacts.MANIFEST)


# Before issue 9 the loader wrote into a Milvus Lite file through milvus_lite's private engine objects
# (skipping pymilvus' gRPC encode/decode); that path is gone. Its figure on the same run, quiet box:
DIRECT_WRITES_VECTORS_PER_S = (21_500, 27_700)
# A/B on this 2-core box, 50,000 x 64-d vectors into a Lite file, old and new code interleaved twice
# (load average 4.6-5.6): the old direct path did 42,100-50,200 vectors per CPU-second (33,900-39,600/s
# wall), the public client 14,500-17,500 per CPU-second (11,800-16,900/s wall): ~2.9x the CPU per vector.
AB_PER_CPU_SECOND = {"direct (removed)": (42_100, 50_200), "public client": (14_500, 17_500)}


def bench(label: str, manifest: str, tmp: str, milvus_uri: str | None = None) -> dict[str, float]:
    import pymysql

    from handlers import loader
    from shared.config.settings import clear_settings_cache, get_settings
    from shared.stores.milvus.store import close_all_clients

    db = f"graphrec_bench_{uuid.uuid4().hex[:8]}"
    clear_settings_cache()
    s = get_settings()  # GRAPHREC_MYSQL_* of this shell (or their deprecated old names)
    conn_kwargs = {"host": s.mysql_host, "port": s.mysql_port, "user": s.mysql_user,
                   "password": s.mysql_password.get_secret_value()}  # fmt: skip
    admin = pymysql.connect(**conn_kwargs, autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")  # generated name
    backend = "Milvus server" if milvus_uri else "Milvus Lite"
    milvus = milvus_uri or str(Path(tmp) / f"{db}.db")
    os.environ.update({"GRAPHREC_MYSQL_DATABASE": db, "GRAPHREC_MILVUS_URI": milvus, "GRAPHREC_LOG_LEVEL": "WARNING"})
    clear_settings_cache()
    loader.reset_stores()
    try:
        reader = artifacts.RunReader(manifest)
        m = reader.manifest()
        n_hist = sum(len(h) for b in reader.iter_batches(artifacts.USER_HISTORY) for h in b.column("movie_ids").to_pylist())
        t0, c0 = time.perf_counter(), time.process_time()
        res = loader.load_run(manifest, settings=get_settings(), progress=sys.stderr.isatty())
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert res.outcome == "live", res.reason
        s = res.seconds
        rows = m.counts.movies + m.counts.users
        figures = {
            "total_s": total,
            "cpu_s": cpu,
            "validate_s": s["validate"],
            "mysql_s": s["mysql"],
            "milvus_s": s["milvus"],
            "vectors_per_s": m.counts.embeddings / s["milvus_insert"],
            "vectors_per_s_incl_setup": m.counts.embeddings / s["milvus"],
            "mysql_rows_per_s": rows / s["mysql"],
            "mysql_history_ids_per_s": n_hist / s["mysql"],
        }
        print(
            f"[{label}] {m.counts.embeddings:,} vectors ({m.dim}-d), {m.counts.movies:,} movies, "
            f"{m.counts.users:,} users / {n_hist:,} history ids\n"
            f"  total {total:.2f} s  (validate {s['validate']:.2f} s, MariaDB {s['mysql']:.2f} s "
            f"[movies {s['mysql_movies']:.2f} s, histories {s['mysql_histories']:.2f} s], {backend} {s['milvus']:.2f} s "
            f"[create {s['milvus_setup']:.2f} s, insert {s['milvus_insert']:.2f} s], "
            f"verify+switch {s['total'] - s['validate'] - s['mysql'] - s['milvus']:.2f} s)\n"
            f"  {backend}: {figures['vectors_per_s']:,.0f} vectors/s during insert "
            f"({figures['vectors_per_s_incl_setup']:,.0f}/s incl. collection setup)   "
            f"MariaDB: {figures['mysql_rows_per_s']:,.0f} rows/s ({figures['mysql_history_ids_per_s']:,.0f} history ids/s)\n"
            f"  this process used {cpu:.1f} s CPU in {total:.1f} s wall ({cpu / total:.0%} of one core; the loader is "
            f"single-threaded Python, so much less than ~100% means the 2 cores were shared); load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        return figures
    finally:
        loader.reset_stores()
        close_all_clients()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--million", action="store_true", help="also load a 1,000,000-vector run (minutes)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--milvus", choices=("lite", "server", "both"), default="lite",
                   help="a Milvus Lite file (default), a milvus-lite server process over the network, or both")  # fmt: skip
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ml = write_run(str(Path(tmp) / "runs"), 3706, 6040, 1_000_209, args.dim)
        print(f"wrote ML-1M-sized run in {time.perf_counter() - t:.1f} s", flush=True)
        server = None
        if args.milvus in ("server", "both"):
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench_swap import start_milvus_server

            server, server_uri = start_milvus_server(Path(tmp) / "milvus-server")
        try:
            for backend in ("lite", "server") if args.milvus == "both" else (args.milvus,):
                f = bench(f"ml-1m, {backend}", ml, tmp, server_uri if backend == "server" else None)
                ok = f["vectors_per_s"] >= 15_000 and f["mysql_rows_per_s"] >= 20_000 and f["total_s"] <= 10
                print(f"  targets (>=15k vectors/s, >=20k rows/s, <=10 s): {'MET' if ok else 'NOT MET'}")
                if backend == "lite":
                    lo, hi = DIRECT_WRITES_VECTORS_PER_S
                    print(
                        f"  vs the removed private direct-write path ({lo:,}-{hi:,} vectors/s on a quiet box): "
                        f"{f['vectors_per_s'] / hi:.0%}-{f['vectors_per_s'] / lo:.0%} of it (compare at a similar load average);\n"
                        f"  A/B per CPU-second (50k vectors, same box): "
                        + ", ".join(f"{k} {a:,}-{b:,}" for k, (a, b) in AB_PER_CPU_SECOND.items())
                        + " vectors/CPU-s: the public path costs ~2.9x the CPU per vector"
                    )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
        if args.million:
            t = time.perf_counter()
            big = write_run(str(Path(tmp) / "runs"), 1_000_000, 1000, 50_000, args.dim, seed=1)
            print(f"wrote 1M-vector run in {time.perf_counter() - t:.1f} s", flush=True)
            f = bench("1M", big, tmp)
            print(f"  vectors/s target (>=15k): {'MET' if f['vectors_per_s'] >= 15_000 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
