"""Stage each Lambda's CodeUri folder (build/lambda/<name>/) before `sam build`.

Why staging: SAM has no ignore file, and pointing CodeUri at the repository root would copy .venv,
training_job/ and the tests into every function. Each staged folder holds only the `shared` and `handlers`
packages, the function's lock file as requirements.txt (infra/lambda/<name>.lock: every distribution
pinned for the Lambda platform), a Makefile and infra/lambda_build.py: the template builds every function
with `BuildMethod: makefile`, which installs the lock with `--no-deps` for manylinux_2_34 / CPython 3.12
(the python3.12 runtime, Amazon Linux 2023) and prunes what is never imported (see lambda_build.py).
The API package never carries torch, DGL, pyarrow or awswrangler; the retrain package is just
pydantic-settings + Powertools (boto3 is in the Lambda runtime), the events export's that plus pymysql.
The same table drives the drift tests.

    python -m infra.stage_lambdas            # writes build/lambda/{api,loader,retrain,events_export}/
    python -m infra.stage_lambdas --check    # only verifies that template.yaml's CodeUris are known
    python -m infra.stage_lambdas --lock     # re-resolves infra/lambda/*.lock from pyproject.toml
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from infra.sam_template import REPO_ROOT, functions

LOCK_DIR = REPO_ROOT / "infra" / "lambda"
BUILD_SCRIPT = REPO_ROOT / "infra" / "lambda_build.py"

SOURCES = ("shared", "handlers")
# Distributions the Lambda Python runtime already provides (never listed in requirements.txt).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer"}
)
# Never a requirement of a Lambda package (heavy, or training-only). pandas still arrives with pymilvus,
# which imports it unconditionally; tests/unit/infra/test_lambda_locks.py checks the resolved locks.
FORBIDDEN = frozenset({"torch", "dgl", "pandas", "awswrangler", "torchdata", "scipy", "matplotlib"})


@dataclass(frozen=True)
class Package:
    name: str
    extras: tuple[str, ...]  # pyproject optional-dependency groups to include (base deps always included)
    drop: frozenset[str]  # distributions from those groups this function does not need
    add: tuple[str, ...] = ()  # Lambda-only requirements (extras of a dependency, e.g. pymysql[rsa])
    bytecode: bool = True  # ship .pyc compiled by python3.12 (faster cold start, ~15% more bytes)
    hot_modules: tuple[str, ...] = ()  # instead: ship only what importing these loads, as sourceless .pyc

    @property
    def code_uri(self) -> str:
        return f"build/lambda/{self.name}/"

    @property
    def lock_file(self) -> Path:
        return LOCK_DIR / f"{self.name}.lock"


PACKAGES: dict[str, Package] = {
    p.code_uri: p
    for p in (
        # milvus-lite is the embedded engine for local runs; Lambda talks to Milvus/Zilliz over the network.
        Package("api", ("serve",), frozenset({"milvus-lite", "uvicorn", "tqdm", "pyarrow"})),
        # A full __pycache__ (~30 MB) would not fit the loader's 200 MB: only what the loader imports is
        # shipped as bytecode (instead of its sources), the rest as source (see lambda_build.py).
        Package(
            "loader",
            ("serve",),
            frozenset({"milvus-lite", "uvicorn", "fastapi", "mangum"}),
            hot_modules=("handlers.loader", "pyarrow.parquet", "pyarrow.compute", "pymysql", "pymilvus", "numpy"),
        ),
        Package("retrain", (), frozenset()),
        # The events export reads MySQL and writes one object: pymysql (+ cryptography) beyond the base.
        Package(
            "events_export",
            ("serve",),
            frozenset({"fastapi", "mangum", "pymilvus", "milvus-lite", "pyarrow", "uvicorn", "tqdm"}),
        ),
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


def makefile(logical_ids: list[str], package: Package) -> str:
    """The Makefile `sam build` runs for BuildMethod: makefile (target build-<LogicalId>)."""
    env = f"HOT_MODULES={','.join(package.hot_modules)} " if package.hot_modules else ""
    env += "" if package.bytecode else "NO_BYTECODE=1 "
    out = ["# Generated by python -m infra.stage_lambdas; sam build runs `make build-<LogicalId>`.",
           "PYTHON ?= python3", ""]  # fmt: skip
    for lid in logical_ids:
        out += [f"build-{lid}:", f"\t{env}$(PYTHON) lambda_build.py \"$(ARTIFACTS_DIR)\"", ""]
    return "\n".join(out)


def read_lock(package: Package) -> dict[str, str]:
    """{distribution: version} from the function's lock file."""
    pins: dict[str, str] = {}
    for line in package.lock_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_dist_name(name)] = version.strip()
    return pins


def resolve_lock(package: Package) -> str:
    """Resolve the function's requirements for the Lambda platform (pip's resolver, --dry-run --report)."""
    sys.path.insert(0, str(BUILD_SCRIPT.parent))
    from infra import lambda_build

    # boto3 takes part in the resolution (so python-dateutil, urllib3... stay within what the runtime's
    # botocore accepts: /var/task comes first on sys.path and would shadow the runtime's copies), then
    # the runtime-provided distributions are left out of the lock.
    reqs = requirements(package) + list(package.add) + ["boto3"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--only-binary=:all:", *lambda_build.platform_args(),
             "--python-version", lambda_build.PYTHON_VERSION, "--implementation", "cp",
             "--report", str(report), *reqs],
            check=True,
        )  # fmt: skip
        items = json.loads(report.read_text())["install"]
    pins = sorted(
        (_dist_name(i["metadata"]["name"]), i["metadata"]["version"])
        for i in items
        if _dist_name(i["metadata"]["name"]) not in RUNTIME_PROVIDED
    )
    header = (
        f"# {package.name}: every distribution the function ships, resolved for CPython "
        f"{lambda_build.PYTHON_VERSION} on {lambda_build.PLATFORM}\n"
        "# (Lambda python3.12 = Amazon Linux 2023). Regenerate: python -m infra.stage_lambdas --lock\n"
    )
    return header + "".join(f"{n}=={v}\n" for n, v in pins)


def stage(package: Package, root: Path = REPO_ROOT, dest_root: Path | None = None) -> Path:
    """Copy the sources, the lock (as requirements.txt), lambda_build.py and a Makefile into
    dest_root/<code_uri>; returns that folder."""
    dest = (dest_root or root) / package.code_uri
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for src in SOURCES:
        shutil.copytree(root / src, dest / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(package.lock_file, dest / "requirements.txt")
    shutil.copy(BUILD_SCRIPT, dest / "lambda_build.py")
    ids = sorted(fn.logical_id for fn in functions().values() if package_for(fn.code_uri) is package)
    (dest / "Makefile").write_text(makefile(ids, package))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check template.yaml's CodeUris")
    parser.add_argument("--dest", type=Path, default=None, help="stage under this folder instead of the repo")
    parser.add_argument("--lock", action="store_true", help="re-resolve infra/lambda/<name>.lock and exit")
    args = parser.parse_args(argv)
    if args.lock:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for pkg in PACKAGES.values():
            pkg.lock_file.write_text(resolve_lock(pkg))
            print(f"{pkg.lock_file.relative_to(REPO_ROOT)}: {len(read_lock(pkg))} pins")
        return 0
    for fn in functions().values():
        pkg = package_for(fn.code_uri)
        if not args.check:
            path = stage(pkg, dest_root=args.dest)
            print(f"{fn.logical_id}: staged {path} ({len(read_lock(pkg))} pinned distributions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
