"""Data-parallel training: `train --workers 2` = two gloo CPU processes under torchrun, one model, one run.

Real torch.distributed (gloo, TCP on localhost), real DGL training: the run folder is written once (by
rank 0), verified by its manifest, records world_size 2, and the model learns the planted structure (well
above popularity). The rendezvous arithmetic for AWS Batch multi-node jobs is checked on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.contract import artifacts
from training_job.model import distributed
from training_job.synthetic.cli import generate
from training_job.train import relaunch_argv

FAST = [
    "--epochs", "2", "--batches-per-epoch", "30", "--batch-size", "256", "--threads", "1",
    "--infer-random-walks", "50", "--no-progress", "--seed", "7", "--refit-epochs", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate(out, users=500, movies=400, ratings=40_000, seed=11, profile="planted")
    return out


def test_two_gloo_processes_train_one_model_and_write_one_run(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "DGLBACKEND": "pytorch"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "training_job", "train", "--data", str(data_dir), "--output", str(out), *FAST, "--workers", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = os.listdir(out)  # exactly one run: the other rank wrote nothing
    assert proc.stdout.strip().splitlines()[-1].endswith(run)  # rank 0 printed the run URI
    reader = artifacts.RunReader(str(out / run / artifacts.MANIFEST))
    reader.verify_files()
    manifest = reader.manifest()
    assert manifest.counts.movies == 400 and manifest.counts.users == 500
    assert manifest.metrics["hr@10"] > manifest.metrics["popularity_hr@10"]
    metrics = json.loads((out / run / artifacts.METRICS).read_text())
    assert metrics["training"]["world_size"] == 2
    assert len(metrics["training"]["curve"]) == 2 and metrics["refit"]["epochs"] == 1
    config = json.loads((out / run / artifacts.CONFIG).read_text())
    assert config["batch_size"] == 256  # the global batch is recorded, each rank sampled 128
    logs = proc.stdout + proc.stderr  # JSON log lines
    assert '"world_size":2' in logs.replace(' ', '') and '"rank":1' in logs.replace(' ', '')  # both ranks joined one gloo group


def test_relaunch_drops_the_workers_flag() -> None:
    argv = ["train", "--data", "d", "--workers", "2", "--output", "o", "--workers=3"]
    assert relaunch_argv(argv) == ["train", "--data", "d", "--output", "o"]
    cmd = distributed.launch_command(relaunch_argv(argv), 2, None)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc-per-node=2" in cmd
    assert cmd[-7:] == ["-m", "training_job", "train", "--data", "d", "--output", "o"]


def test_batch_multinode_rendezvous() -> None:
    env = {
        "AWS_BATCH_JOB_NUM_NODES": "3",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "AWS_BATCH_JOB_NODE_INDEX": "2",
        "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.1.7",
    }
    r = distributed.batch_rendezvous(env, gpus=4)
    assert r == distributed.Rendezvous(3, 2, "10.0.1.7", distributed.DEFAULT_PORT, 4)
    assert "--nproc-per-node=4" in r.torchrun_args() and "--master-addr=10.0.1.7" in r.torchrun_args()
    # Batch gives the main node no address of its own: it is the master, node rank 0
    main = {k: v for k, v in env.items() if k != "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"}
    main["AWS_BATCH_JOB_NODE_INDEX"] = "0"
    r0 = distributed.batch_rendezvous(main, gpus=0)
    assert r0 is not None and (r0.node_rank, r0.master_addr, r0.nproc_per_node) == (0, "localhost", 1)
    # a main node other than 0 becomes torchrun's node rank 0; node 0 takes its place
    swapped = {**env, "AWS_BATCH_JOB_MAIN_NODE_INDEX": "1", "AWS_BATCH_JOB_NODE_INDEX": "0"}
    r1 = distributed.batch_rendezvous(swapped, gpus=1)
    assert r1 is not None and r1.node_rank == 1
    assert distributed.batch_rendezvous({"AWS_BATCH_JOB_NUM_NODES": "1"}, gpus=1) is None
    assert distributed.batch_rendezvous({}, gpus=1) is None
    with pytest.raises(SystemExit, match="MAIN_NODE_PRIVATE_IPV4_ADDRESS"):
        distributed.batch_rendezvous({k: v for k, v in env.items() if "IPV4" not in k}, gpus=1)


def test_rank_share_of_the_global_batch_and_seeds() -> None:
    shares = [distributed.Dist(rank=r, world_size=3).local_batch(1000) for r in range(3)]
    assert shares == [334, 333, 333] and sum(shares) == 1000
    seeds = {distributed.Dist(rank=r, world_size=3).seed(5) for r in range(3)}
    assert len(seeds) == 3 and distributed.Dist(rank=0, world_size=3).seed(5) == 5
    with pytest.raises(SystemExit, match="smaller than"):
        distributed.Dist(rank=0, world_size=4).local_batch(3)
