"""Stage each Lambda's CodeUri folder (build/lambda/<name>/) before `sam build`.

Why staging: SAM has no ignore file, and pointing CodeUri at the repository root would copy .venv,
training_job/ and the tests into every function. Each staged folder holds only the `shared` and `handlers`
packages plus a requirements.txt derived from pyproject.toml, so the API package never carries torch,
DGL, pandas or awswrangler, and the retrain package is just pydantic-settings + Powertools (boto3 is in the
Lambda runtime). The same table drives the template drift tests.

    python -m infra.stage_lambdas            # writes build/lambda/{api,loader,retrain}/
    python -m infra.stage_lambdas --check    # only verifies that template.yaml's CodeUris are known
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from infra.sam_template import REPO_ROOT, functions

SOURCES = ("shared", "handlers")
# Distributions the Lambda Python runtime already provides (never listed in requirements.txt).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
)
# Never in a Lambda package (heavy, or training-only).
FORBIDDEN = frozenset({"torch", "dgl", "pandas", "awswrangler", "torchdata", "scipy", "matplotlib"})


@dataclass(frozen=True)
class Package:
    name: str
    extras: tuple[str, ...]  # pyproject optional-dependency groups to include (base deps always included)
    drop: frozenset[str]  # distributions from those groups this function does not need

    @property
    def code_uri(self) -> str:
        return f"build/lambda/{self.name}/"


PACKAGES: dict[str, Package] = {
    p.code_uri: p
    for p in (
        # milvus-lite is the embedded engine for local runs; Lambda talks to Milvus/Zilliz over the network.
        Package("api", ("serve",), frozenset({"milvus-lite", "uvicorn", "tqdm", "pyarrow"})),
        Package("loader", ("serve",), frozenset({"milvus-lite", "uvicorn", "fastapi", "mangum"})),
        Package("retrain", (), frozenset()),
    )
}


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def requirements(package: Package, pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """Requirement lines for one function, taken from pyproject.toml so versions never drift."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs: list[str] = list(project.get("dependencies", []))
    for extra in package.extras:
        reqs += project.get("optional-dependencies", {})[extra]
    out, seen = [], set()
    for r in reqs:
        name = _dist_name(r)
        if name in seen or name in package.drop or name in RUNTIME_PROVIDED:
            continue
        seen.add(name)
        out.append(r)
    bad = sorted({_dist_name(r) for r in out} & FORBIDDEN)
    if bad:
        raise ValueError(f"Lambda package {package.name} would carry {bad}")
    return out


def package_for(code_uri: str) -> Package:
    key = code_uri if code_uri.endswith("/") else code_uri + "/"
    if key not in PACKAGES:
        raise KeyError(f"CodeUri {code_uri!r} is not a staged package ({sorted(PACKAGES)})")
    return PACKAGES[key]


def stage(package: Package, root: Path = REPO_ROOT, dest_root: Path | None = None) -> Path:
    """Copy the sources and write requirements.txt into dest_root/<code_uri>; returns that folder."""
    dest = (dest_root or root) / package.code_uri
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for src in SOURCES:
        shutil.copytree(root / src, dest / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "requirements.txt").write_text("\n".join(requirements(package)) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check template.yaml's CodeUris")
    parser.add_argument("--dest", type=Path, default=None, help="stage under this folder instead of the repo")
    args = parser.parse_args(argv)
    for fn in functions().values():
        pkg = package_for(fn.code_uri)
        if not args.check:
            path = stage(pkg, dest_root=args.dest)
            print(f"{fn.logical_id}: staged {path} ({len(requirements(pkg))} requirements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
