"""The GPU image (training_job/Dockerfile) cannot be built here (no Docker engine), so its facts that can
drift from the tested code are checked by parsing: the torch/DGL pins equal pyproject.toml's `train`
extra, the CUDA flavour of the wheels matches the base image, the entrypoint runs the train CLI (in both
the bare-flags form and the `python -m training_job train ...` form AWS Batch passes), and it runs as a
non-root user with everything it COPYs present and not excluded by .dockerignore.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "training_job" / "Dockerfile"
ENTRYPOINT_SCRIPT = REPO / "training_job" / "docker-entrypoint.sh"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for op, rest in _instructions() if op == "ARG" and "=" in rest)


def _train_pins() -> dict[str, str]:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    return {m.group(1): m.group(2) for req in extra if (m := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", req))}


def test_torch_and_dgl_pins_match_pyproject() -> None:
    pins, args = _train_pins(), _args()
    assert args["TORCH_VERSION"] == pins["torch"] == "2.2.1"
    assert args["DGL_VERSION"] == pins["dgl"]
    runs = " ".join(rest for op, rest in _instructions() if op == "RUN")
    assert '"torch==${TORCH_VERSION}"' in runs and '"dgl==${DGL_VERSION}"' in runs
    assert "https://data.dgl.ai/wheels/${CUDA_TAG}/repo.html" in runs
    assert "https://download.pytorch.org/whl/${CUDA_TAG}" in runs
    assert 'pip install ".[train]"' in runs  # the rest of the train extra, same source of truth


def test_cuda_base_image_matches_the_wheels_cuda() -> None:
    (base,) = [rest for op, rest in _instructions() if op == "FROM"]
    m = re.match(r"^nvidia/cuda:(\d+)\.(\d+)\.\d+-\w+-ubuntu22\.04$", base)
    assert m, base
    assert _args()["CUDA_TAG"] == f"cu{m.group(1)}{m.group(2)}"  # cu121 wheels on a CUDA 12.1 image
    runs = " ".join(rest for op, rest in _instructions() if op == "RUN")
    assert "python3.11" in runs  # pyproject requires Python 3.11


def test_entrypoint_is_the_train_cli_and_user_is_not_root() -> None:
    ins = _instructions()
    (entry,) = [json.loads(rest) for op, rest in ins if op == "ENTRYPOINT"]
    assert entry == ["/app/training_job/docker-entrypoint.sh"]
    users = [rest for op, rest in ins if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    env = " ".join(rest for op, rest in ins if op == "ENV")
    assert "DGLBACKEND=pytorch" in env


@pytest.mark.parametrize(
    "argv",
    [
        ["--data", "s3://b/d", "--output", "s3://b/runs"],
        ["python", "-m", "training_job", "train", "--data", "s3://b/d", "--output", "s3://b/runs"],
    ],
    ids=["bare-flags", "batch-command"],
)
def test_entrypoint_script_runs_the_train_cli(argv: list[str], tmp_path: Path) -> None:
    """Run the real script with a fake `python` that prints what it was asked to run."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT_SCRIPT), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["-m", "training_job", "train", "--data", "s3://b/d", "--output", "s3://b/runs"]


def test_copied_paths_exist_and_are_in_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for op, rest in _instructions():
        if op != "COPY":
            continue
        *sources, _dest = rest.split()
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: missing from the repository"
            assert src.rstrip("/") not in ignored, f"COPY {src}: excluded by .dockerignore"
    assert os.access(ENTRYPOINT_SCRIPT, os.X_OK)
