"""Data-parallel training with torch.distributed: who am I (rank, world size), how ranks meet, how they agree.

One model is trained by N processes with DistributedDataParallel: every rank samples its own training
examples (a rank-dependent seed stream), gradients are all-reduced (averaged) after every backward pass, so
all ranks hold the same parameters and Adam state after every step. `--batch-size` is the GLOBAL batch: each
rank samples batch_size / N, so one process and N processes take the same optimiser steps over the same number
of examples. Rank 0 alone validates, evaluates and writes the run; the others follow its decisions (best
epoch, stop) through a broadcast and exit cleanly when training is done.

How the processes are started:
- one machine: `torchrun --nproc-per-node N -m training_job train ...`, or `train --workers N`, which
  re-launches itself through torch.distributed.run (`launch_command`);
- AWS Batch multi-node parallel jobs: every node runs the same container command; `batch_rendezvous` turns
  AWS_BATCH_JOB_NUM_NODES / AWS_BATCH_JOB_NODE_INDEX / AWS_BATCH_JOB_MAIN_NODE_INDEX /
  AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS into torchrun's --nnodes / --node-rank / --master-addr, with
  one process per GPU (NCCL) or one per node on CPU (gloo). Batch sets the main node's address only on the
  other nodes: on the main node itself the master is this host.

With world size 1 (no RANK in the environment) every method here is a no-op, so the single-process job is
unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from shared.config.log import get_logger

logger = get_logger(__name__)

DEFAULT_PORT = 29500
# Seeds of rank r's streams: seed + r * SEED_STRIDE (rank 0 keeps the single-process seed).
SEED_STRIDE = 7919


@dataclass(frozen=True)
class Rendezvous:
    """torchrun's multi-node arguments for this node."""

    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int
    nproc_per_node: int

    def torchrun_args(self) -> list[str]:
        return [
            f"--nnodes={self.nnodes}",
            f"--node-rank={self.node_rank}",
            f"--master-addr={self.master_addr}",
            f"--master-port={self.master_port}",
            f"--nproc-per-node={self.nproc_per_node}",
        ]


def batch_rendezvous(env: Mapping[str, str], gpus: int) -> Rendezvous | None:
    """The rendezvous of an AWS Batch multi-node parallel job, or None outside one (or with one node).

    `gpus` = GPUs visible on this node: one process each (NCCL); 0 = one CPU process (gloo).
    """
    nodes = int(env.get("AWS_BATCH_JOB_NUM_NODES", "0") or 0)
    if nodes <= 1:
        return None
    try:
        node = int(env["AWS_BATCH_JOB_NODE_INDEX"])
        main = int(env["AWS_BATCH_JOB_MAIN_NODE_INDEX"])
    except KeyError as e:
        raise SystemExit(f"multi-node Batch job without {e.args[0]} in the environment") from None
    if node == main:
        addr = env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS") or "localhost"
    else:
        addr = env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "")
        if not addr:
            raise SystemExit("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a child node")
    # torchrun's node ranks must be 0..nnodes-1 with the master as 0: swap main and node 0 if main != 0
    rank = 0 if node == main else (main if node == 0 else node)
    port = int(env.get("GRAPHREC_DIST_PORT", DEFAULT_PORT))
    return Rendezvous(nodes, rank, addr, port, max(gpus, 1))


def launch_command(argv: Sequence[str], workers: int, rdzv: Rendezvous | None) -> list[str]:
    """The torch.distributed.run command that runs `python -m training_job <argv>` on every rank."""
    runner = [sys.executable, "-m", "torch.distributed.run"]
    if rdzv is not None:
        runner += rdzv.torchrun_args()
    else:
        runner += ["--standalone", f"--nproc-per-node={workers}"]
    return [*runner, "-m", "training_job", *argv]


def under_launcher(env: Mapping[str, str] | None = None) -> bool:
    """True inside a torchrun-started process (it sets RANK and WORLD_SIZE)."""
    e = os.environ if env is None else env
    return "RANK" in e and "WORLD_SIZE" in e


@dataclass
class Dist:
    """This process's place in the group; world_size 1 = no process group, every call a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed for its sampling streams (rank 0: `seed` itself)."""
        return seed + self.rank * SEED_STRIDE

    def local_batch(self, global_batch: int) -> int:
        """This rank's share of the global batch (the first ranks take the remainder)."""
        base, extra = divmod(global_batch, self.world_size)
        if base == 0:
            raise SystemExit(f"--batch-size {global_batch} is smaller than the {self.world_size} ranks")
        return base + (1 if self.rank < extra else 0)

    def device(self, device: str) -> str:
        """cuda -> this rank's GPU (one process per GPU)."""
        if self.enabled and device == "cuda":
            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return device

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around `model` (it broadcasts rank 0's parameters first)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        dev = next(model.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any (the time budget: all ranks stop at the same step)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def from_main(self, values: list[int]) -> list[int]:
        """Rank 0's `values` on every rank (decisions only rank 0 can make: improved, stop)."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.int64, device=self._comm_device())
        dist.broadcast(t, src=0)
        return [int(v) for v in t.tolist()]

    def sum(self, value: float) -> float:
        """Sum of `value` over the ranks (examples seen)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t.item())

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


_current = Dist()


def current() -> Dist:
    """The process's Dist (world size 1 until `init_from_env` ran under a launcher)."""
    return _current


def init_from_env(device: str, timeout_minutes: float = 60.0) -> Dist:
    """Join the process group torchrun described in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Backend: NCCL when training on GPUs, gloo on CPU. The timeout bounds how long ranks wait for each other
    (rank 0's per-epoch validation runs while the others wait at the next collective).
    """
    global _current
    if not under_launcher():
        _current = Dist()
        return _current
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    _current = Dist(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=backend,
    )
    logger.info(
        "joined the process group",
        extra={"rank": _current.rank, "world_size": _current.world_size, "backend": backend},
    )
    return _current


def shutdown() -> None:
    """Leave the process group (every rank, after the last collective)."""
    global _current
    if _current.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    _current = Dist()


def module_of(model: Any) -> Any:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)
