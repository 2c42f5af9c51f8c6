"""Build one Lambda function's package: the `sam build` step behind `BuildMethod: makefile`.

    python lambda_build.py ARTIFACTS_DIR          # run by the staged Makefile, from the staged folder

Why a custom build instead of SAM's PythonPipBuilder:
- Dependencies come from a lock file (requirements.txt in the staged folder, every transitive
  distribution pinned) and are installed with `--no-deps` for the Lambda platform only
  (`--platform manylinux_2_34_x86_64`: glibc 2.34 = Amazon Linux 2023, the python3.12 runtime; pip also
  accepts every older manylinux tag). No Docker, no resolver surprises, the same bytes on every machine.
- Size. pymilvus imports pandas (and so numpy) unconditionally and the loader needs pyarrow; installed as
  published they are ~390 MB, over Lambda's 250 MB limit. What is removed here is what the AWS SDK for
  pandas layer also leaves out: test suites, C/C++ headers and Cython sources, pyarrow's Flight RPC and
  the cloud filesystems it would use instead of boto3 (S3/GCS/Azure/HDFS), duplicate copies of
  libarrow_python that the wheel ships under three names, and symbol tables of shared libraries
  (`strip --strip-unneeded`; debugging info only). Nothing imported by our code is removed: the
  built-package tests import and run the handlers from the built folder alone.
- Bytecode is compiled by the target interpreter (python3.12) when one is available, so a cold start
  does not compile every module (Lambda's /var/task is read-only, nothing compiled there is kept).
  `HOT_MODULES=a,b,...` (set for the loader) instead imports those modules with python3.12 at build time
  and ships *only the third-party modules that import loads* as bytecode in place of their sources
  (sourceless .pyc; ~1 MB more than the sources they replace), leaving every other module as source:
  a full __pycache__ (~30 MB) would not fit the loader's 200 MB budget, and no bytecode at all made its
  imports take 6-7 s instead of ~1.5 s. Our own packages (handlers/, shared/) always keep their sources.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLATFORM = "manylinux_2_34_x86_64"  # Amazon Linux 2023 (glibc 2.34)
# pip does not widen --platform to older manylinux tags: list every tag a glibc 2.34 system accepts.
PLATFORMS = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)) + (
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)


def platform_args() -> list[str]:
    return [arg for tag in PLATFORMS for arg in ("--platform", tag)]
PYTHON_VERSION = "3.12"
SOURCES = ("shared", "handlers")

# Paths (relative to the package root) that are never needed at run time.
PRUNE_DIRS_ANYWHERE = ("tests", "__pycache__")
PRUNE_PATHS = (
    "bin",
    "pyarrow/include",
    "pyarrow/src",
    "pyarrow/includes",
    "numpy/_core/include",
    "numpy/f2py",
)
PRUNE_GLOBS = (
    "**/*.pyx",
    "**/*.pxd",
    "**/*.pxi",
    "**/*.pyi",
    "**/*.h",
    "**/*.hpp",
    "pyarrow/*flight*",
    "pyarrow/libarrow_s3*",
    "pyarrow/_s3fs*",
    "pyarrow/_gcsfs*",
    "pyarrow/_azurefs*",
    "pyarrow/_hdfs*",
    "pyarrow/_pyarrow_cpp_tests*",
    "pyarrow/libarrow_python.so",  # unversioned duplicates; the linker needs the .so.<abi> name only
    "pyarrow/libarrow_python*.so.*.*.*",
    "pyarrow/libarrow_python_parquet_encryption.so",
)


def install(artifacts: Path, lock: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-compile", "--only-binary=:all:",
            *platform_args(), "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--target", str(artifacts), "-r", str(lock),
        ],
        check=True,
    )  # fmt: skip


def prune(root: Path) -> int:
    """Remove what is never needed at run time; returns bytes removed."""
    before = tree_bytes(root)
    for name in PRUNE_DIRS_ANYWHERE:
        for d in sorted(root.rglob(name), reverse=True):
            if d.is_dir() and not any(p in {"shared", "handlers"} for p in d.relative_to(root).parts[:1]):
                shutil.rmtree(d, ignore_errors=True)
    for rel in PRUNE_PATHS:
        p = root / rel
        if p.is_dir():
            shutil.rmtree(p)
    for pattern in PRUNE_GLOBS:
        for p in root.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    strip = shutil.which("strip")
    if strip:
        libs = [str(p) for p in root.rglob("*.so*") if p.is_file() and not p.is_symlink()]
        for i in range(0, len(libs), 200):
            subprocess.run([strip, "--strip-unneeded", *libs[i : i + 200]], check=False, capture_output=True)
    return before - tree_bytes(root)


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def compile_bytecode(root: Path) -> str:
    """Compile with the runtime's Python version if that interpreter is here; else leave sources only."""
    exe = shutil.which(f"python{PYTHON_VERSION}")
    if exe is None:
        return f"python{PYTHON_VERSION} not on PATH: no bytecode compiled"
    subprocess.run([exe, "-m", "compileall", "-q", "-j", "0", str(root)], check=True)
    return f"bytecode compiled with {exe}"


_HOT = """
import importlib, json, os, py_compile, sys
root = os.path.realpath(sys.argv[1])
for name in sys.argv[2].split(","):
    importlib.import_module(name)
files = sorted({os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
done = 0
for f in files:
    if f.startswith(root + os.sep) and f.endswith(".py"):
        py_compile.compile(f, cfile=f + "c", doraise=True)
        os.remove(f)
        done += 1
print(done)
"""


def sourceless_hot_modules(root: Path, modules: str, sources: Path) -> str:
    """Import `modules` with python3.12 (our sources on the path too) and replace every module under `root`
    that this loaded by its bytecode (legacy .pyc beside where the .py was)."""
    exe = shutil.which(f"python{PYTHON_VERSION}")
    if exe is None:
        return f"python{PYTHON_VERSION} not on PATH: no bytecode compiled"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{root}{os.pathsep}{sources}",
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    out = subprocess.run([exe, "-S", "-s", "-c", _HOT, str(root), modules], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return f"{out.stdout.strip()} modules imported by {modules} shipped as {exe} bytecode"


def dependencies(lock: Path, bytecode: bool, hot_modules: str = "", sources: Path | None = None) -> tuple[Path, str]:
    """The installed, pruned (and compiled) dependencies of a lock, built once per content hash under
    LAMBDA_BUILD_CACHE (default ~/.cache/graphrec-lambda): SAM rebuilds makefile functions every time,
    this keeps a rebuild to a copy."""
    key = hashlib.sha256(
        lock.read_bytes() + Path(__file__).read_bytes() + f"bytecode={bytecode};hot={hot_modules}".encode()
    ).hexdigest()[:24]
    cache_root = Path(os.environ.get("LAMBDA_BUILD_CACHE", Path.home() / ".cache" / "graphrec-lambda"))
    done = cache_root / key
    if (done / ".complete").exists():
        return done, "dependencies from cache"
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache_root.mkdir(parents=True, exist_ok=True) or cache_root))
    install(tmp, lock)
    removed = prune(tmp)
    if hot_modules:
        note = sourceless_hot_modules(tmp, hot_modules, sources or Path.cwd())
    else:
        note = compile_bytecode(tmp) if bytecode else "bytecode skipped (NO_BYTECODE=1)"
    (tmp / ".complete").write_text(note)
    if done.exists():
        shutil.rmtree(done)
    tmp.rename(done)
    return done, f"{removed / 2**20:.1f} MiB pruned; {note}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    here = Path.cwd()
    artifacts = Path(argv[0]).resolve()
    hot = os.environ.get("HOT_MODULES", "")
    bytecode = os.environ.get("NO_BYTECODE") != "1"
    deps, note = dependencies(here / "requirements.txt", bytecode, hot, here)
    shutil.copytree(deps, artifacts, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns(".complete"))
    for src in SOURCES:
        if (here / src).exists():
            shutil.copytree(here / src, artifacts / src, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
            if bytecode:
                compile_bytecode(artifacts / src)
    size = tree_bytes(artifacts)
    print(f"built {artifacts}: {size / 2**20:.1f} MiB ({note})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
