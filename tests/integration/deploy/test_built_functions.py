"""The functions as `sam build` builds them (`.aws-sam/build/`), not as the repository's venv runs them.

- Each built function fits Lambda with margin: <= 200 MiB unzipped (Lambda refuses > 250 MiB,
  262,144,000 bytes, function plus layers; the template uses no layers).
- Nothing from training (torch, DGL, awswrangler) or from local development (milvus_lite) is shipped.
- The built loader, run by python3.12 (the Lambda runtime) with only its build folder plus the runtime's
  boto3 on sys.path, loads a run from S3 (moto) into MariaDB and the Milvus *server* from an S3 event.
- The built API, run the same way with only its build folder, answers the sample events in events/
  about that run; its cold start (import + first answer) is measured.
- The built events export, run the same way from its sample schedule event, writes the database's events
  to S3 (moto).

`scripts/test.sh` builds first (scripts/sam_build.sh) and sets GRAPHREC_SAM_BUILT=1; run alone, the
`built` fixture builds (cached) itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.sam_template import REPO_ROOT
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, milvus_database
from tests.helpers.factories import make_run

BUILD = REPO_ROOT / ".aws-sam" / "build"
FUNCTIONS = ("ApiFunction", "LoaderFunction", "RetrainFunction", "EventsExportFunction")
MAX_MIB = 200
LAMBDA_LIMIT_BYTES = 262_144_000  # 250 MiB: function + layers, unzipped
EVENTS = REPO_ROOT / "events"


def _python312() -> str:
    out = subprocess.run(
        ["bash", "-c", f"source {REPO_ROOT}/scripts/_common.sh && find_python312"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        pytest.fail("python3.12 (the Lambda runtime's Python) is needed: run bash scripts/setup.sh")
    return out.stdout.strip()


@pytest.fixture(scope="module")
def built() -> Path:
    if os.environ.get("GRAPHREC_SAM_BUILT") != "1":
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "sam_build.sh"), "--no-lint"], check=True)
    assert (BUILD / "template.yaml").exists(), "sam build left no .aws-sam/build/template.yaml"
    return BUILD


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_every_function_is_built_for_python312_without_layers(built: Path) -> None:
    from infra.sam_template import load_template

    tpl = load_template(built / "template.yaml")
    fns = {k: v for k, v in tpl["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(fns) == set(FUNCTIONS)
    runtime = tpl["Globals"]["Function"]["Runtime"]
    assert runtime == "python3.12"
    for name, res in fns.items():
        assert not res["Properties"].get("Layers"), f"{name}: layers count against the 250 MB too"
        assert (built / res["Properties"]["CodeUri"]).is_dir()
        assert (built / name / "handlers").is_dir() and (built / name / "shared").is_dir()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_built_function_fits_lambda_with_margin(built: Path, name: str) -> None:
    size = _tree_bytes(built / name)
    print(f"{name}: {size / 2**20:.1f} MiB unzipped")
    assert size <= MAX_MIB * 2**20, f"{name} is {size / 2**20:.1f} MiB unzipped (budget {MAX_MIB} MiB)"
    assert size < LAMBDA_LIMIT_BYTES


@pytest.mark.parametrize("name", FUNCTIONS)
def test_built_function_ships_no_training_or_local_only_packages(built: Path, name: str) -> None:
    shipped = {p.name for p in (built / name).iterdir()}
    assert not shipped & {"torch", "dgl", "awswrangler", "milvus_lite", "uvicorn", "boto3", "botocore"}
    if name == "ApiFunction":
        assert "pyarrow" not in shipped and "fastapi" in shipped
    if name == "LoaderFunction":
        assert {"pyarrow", "pymilvus", "pymysql"} <= shipped
    if name == "RetrainFunction":
        assert not shipped & {"pymilvus", "pandas", "numpy", "pyarrow"}
    if name == "EventsExportFunction":
        assert "pymysql" in shipped and not shipped & {"pymilvus", "pandas", "numpy", "pyarrow", "fastapi"}
    # compiled for the runtime: every extension module is CPython 3.12 (or abi3), none for 3.11
    exts = [p.name for p in (built / name).rglob("*.so") if "cpython-" in p.name]
    assert all("cpython-312" in e for e in exts), [e for e in exts if "cpython-312" not in e][:5]


# ----------------------------------------------------------------------------------- running them
def _runtime_sdk(tmp: Path) -> Path:
    """What the Lambda runtime itself provides on sys.path: boto3/botocore/s3transfer (pure Python)."""
    import boto3
    import botocore
    import s3transfer

    sdk = tmp / "lambda-runtime-sdk"
    sdk.mkdir(exist_ok=True)
    for mod in (boto3, botocore, s3transfer):
        link = sdk / mod.__name__
        if not link.exists():
            link.symlink_to(Path(mod.__file__).parent)
    return sdk


_INVOKE = """
import json, sys, time
t0 = time.perf_counter()
import importlib
module_name, attr = sys.argv[1].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attr)
t_import = time.perf_counter() - t0
forbidden = sorted(m for m in ("torch", "dgl", "awswrangler", "milvus_lite") if m in sys.modules)
out = []
for path in sys.argv[2:]:
    event = json.load(open(path))
    t = time.perf_counter()
    resp = handler(event, None)
    out.append({"response": resp, "seconds": time.perf_counter() - t})
print(json.dumps({"import_seconds": t_import, "calls": out, "forbidden": forbidden,
                  "executable": sys.executable, "version": list(sys.version_info[:2]), "path": sys.path}))
"""


def _invoke_built(
    fn_dir: Path, handler: str, events: list[Path], env: dict[str, str], extra_path: list[Path] = ()
) -> dict[str, Any]:
    """Run a built handler in a fresh python3.12 with only fn_dir (+ extra_path) importable: -S drops
    site-packages, -s the user site; PYTHONPATH is the Lambda task root."""
    full_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([str(fn_dir), *map(str, extra_path)]),
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only on Lambda
        "GRAPHREC_LOG_LEVEL": "WARNING",
        **env,
    }
    proc = subprocess.run(
        [_python312(), "-S", "-s", "-c", _INVOKE, handler, *map(str, events)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["version"] == [3, 12]
    assert not any("site-packages" in p for p in result["path"]), result["path"]
    assert result["forbidden"] == []
    return result


@pytest.fixture(scope="module")
def deployed_like(
    built: Path, milvus_server: str, _moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A run on S3 (moto), a fresh MariaDB database and a fresh database on the Milvus server; the
    environment the template gives the functions (secrets aside: plain GRAPHREC_MYSQL_* here)."""
    import boto3
    import pymysql

    from shared.config.settings import clear_settings_cache
    from shared.contract import objectstore

    tmp = tmp_path_factory.mktemp("deployed")
    aws = {
        "AWS_ENDPOINT_URL": _moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    mp = pytest.MonkeyPatch()
    for k, v in aws.items():
        mp.setenv(k, v)
    objectstore.s3_client.cache_clear()
    clear_settings_cache()
    bucket = f"graphrec-built-{os.getpid()}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    run = make_run(f"s3://{bucket}/runs", n_movies=300, n_users=60, dim=16, seed=11)
    dbname = f"graphrec_built_{os.getpid()}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{dbname}` CHARACTER SET utf8mb4")  # generated name
    try:
        with milvus_database(milvus_server) as milvus_uri:
            env = {
                **aws,
                "GRAPHREC_MILVUS_URI": milvus_uri,
                "GRAPHREC_MYSQL_HOST": MYSQL_HOST,
                "GRAPHREC_MYSQL_PORT": str(MYSQL_PORT),
                "GRAPHREC_MYSQL_USER": MYSQL_USER,
                "GRAPHREC_MYSQL_PASSWORD": MYSQL_PASSWORD,
                "GRAPHREC_MYSQL_DATABASE": dbname,
                "GRAPHREC_ARTIFACT_URI": f"s3://{bucket}/runs",
            }
            yield {"env": env, "run": run, "bucket": bucket, "tmp": tmp}
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{dbname}`")
        conn.close()
        mp.undo()
        objectstore.s3_client.cache_clear()
        clear_settings_cache()


def _s3_event(bucket: str, key: str, tmp: Path) -> Path:
    event = json.loads((EVENTS / "loader_s3_manifest.json").read_text())
    rec = event["Records"][0]["s3"]
    rec["bucket"]["name"], rec["bucket"]["arn"] = bucket, f"arn:aws:s3:::{bucket}"
    rec["object"]["key"] = key
    path = tmp / "loader_event.json"
    path.write_text(json.dumps(event))
    return path


def test_built_loader_and_api_serve_a_run_over_the_milvus_server(built: Path, deployed_like: dict[str, Any]) -> None:
    env, run, tmp = deployed_like["env"], deployed_like["run"], deployed_like["tmp"]
    key = run.manifest_uri.split(f"s3://{deployed_like['bucket']}/", 1)[1]

    # the loader, from events/loader_s3_manifest.json pointed at this run
    loaded = _invoke_built(
        built / "LoaderFunction",
        "handlers.loader.handler",
        [_s3_event(deployed_like["bucket"], key, tmp)],
        env,
        extra_path=[_runtime_sdk(tmp)],
    )
    (result,) = loaded["calls"][0]["response"]["results"]
    assert result["outcome"] == "live", result
    assert result["run_id"] == run.run_id

    # the API, from the sample events in events/, with only its build folder importable
    names = ["api_recommendations.json", "api_health.json", "api_movie_similar.json", "api_user_recommendations.json"]
    started = time.perf_counter()
    served = _invoke_built(built / "ApiFunction", "handlers.api.handler", [EVENTS / n for n in names], env)
    wall = time.perf_counter() - started
    by_name = dict(zip(names, served["calls"], strict=True))
    for name, call in by_name.items():
        resp = call["response"]
        assert resp["statusCode"] == 200, (name, resp)
        body = json.loads(resp["body"])
        assert body["run_id"] == run.run_id, (name, body)
    recs = json.loads(by_name["api_recommendations.json"]["response"]["body"])["items"]
    liked = set(json.loads(json.loads((EVENTS / "api_recommendations.json").read_text())["body"])["liked"])
    assert len(recs) == 10 and not {r["movie_id"] for r in recs} & liked
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    health = json.loads(by_name["api_health.json"]["response"]["body"])
    assert health["stores"] == {"metadata": "ok", "vectors": "ok"}
    cold = served["import_seconds"] + served["calls"][0]["seconds"]
    print(
        f"built API cold start (python3.12, build folder only, Milvus server): import {served['import_seconds']:.2f} s"
        f" + first answer {served['calls'][0]['seconds']:.2f} s = {cold:.2f} s; process wall {wall:.2f} s"
    )


def test_built_events_export_writes_the_events_to_s3(built: Path, deployed_like: dict[str, Any]) -> None:
    import boto3

    from shared.stores.mysql.events_export import EventsReader

    env = dict(deployed_like["env"])
    uri = f"s3://{deployed_like['bucket']}/events/events.csv"
    database = next(v for k, v in env.items() if k.upper().endswith("MYSQL_DATABASE"))
    reader = EventsReader(
        {"host": MYSQL_HOST, "port": MYSQL_PORT, "user": MYSQL_USER, "password": MYSQL_PASSWORD, "database": database}
    )
    reader.ensure_schema()
    reader._execute(
        "INSERT INTO events (user_id, movie_id, type, rating, idempotency_key) VALUES (%s, %s, %s, %s, %s)"
        " ON DUPLICATE KEY UPDATE seq=seq",
        (1_000_000_000, 1, "rated", 4.5, "built-export"),
    )
    reader.close()
    out = _invoke_built(
        built / "EventsExportFunction",
        "handlers.events_export.app.handler",
        [EVENTS / "events_export_schedule.json"],
        {**env, "GRAPHREC_EVENTS_EXPORT_URI": uri},
        extra_path=[_runtime_sdk(deployed_like["tmp"])],
    )
    result = out["calls"][0]["response"]
    assert result["uri"] == uri and result["rows"] >= 1
    body = boto3.client("s3").get_object(Bucket=deployed_like["bucket"], Key="events/events.csv")["Body"].read()
    header, first = body.decode().splitlines()[:2]
    assert header == "seq,user_id,movie_id,type,rating,timestamp"
    assert first.split(",")[1:5] == ["1000000000", "1", "rated", "4.5"]


def test_sam_cli_is_installed_where_setup_puts_it() -> None:
    sam = Path(sys.prefix) / "sam-cli" / "bin" / "sam"
    assert sam.exists() or shutil.which("sam"), "aws-sam-cli missing: bash scripts/setup.sh installs it"
