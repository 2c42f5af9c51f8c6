"""infra/local_cloud.sh as a developer runs it: starts its own moto server, provisions, prints exports that
the functions (through `python -m infra.sam_local`) then work with; a second run is harmless; --stop ends it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.helpers.servers import free_port

REPO = Path(__file__).resolve().parents[3]


def _exports(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        assert line.startswith("export "), f"--quiet printed a non-export line to stdout: {line!r}"
        key, value = line[len("export ") :].split("=", 1)
        out[key] = value
    return out


def _script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "infra" / "local_cloud.sh"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


def test_local_cloud_script_provisions_everything_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "ml"
    data.mkdir()
    for name in ("movies.dat", "users.dat", "ratings.dat"):
        (data / name).write_text(f"{name}\n")
    state = tmp_path / "state"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GRAPHREC_", "MYSQL_", "MILVUS_"))}
    base_env.update({"VENV": str(Path(sys.executable).parent.parent), "GRAPHREC_MYSQL_DATABASE": "graphrec_cloud_t"})
    args = ["--port", str(free_port()), "--state-dir", str(state), "--data", str(data), "--quiet"]
    proc = _script(args, base_env)
    try:
        assert proc.returncode == 0, proc.stderr
        env = _exports(proc.stdout)
        pid = int((state / "moto.pid").read_text())
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

        def client(name: str):  # type: ignore[no-untyped-def]
            return session.client(name, endpoint_url=env["AWS_ENDPOINT_URL"])

        # data uploaded under GRAPHREC_DATA_URI
        bucket, prefix = env["GRAPHREC_DATA_URI"][len("s3://") :].split("/", 1)
        keys = {o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
        assert keys == {f"{prefix}/{n}" for n in ("movies.dat", "users.dat", "ratings.dat")}
        assert env["GRAPHREC_ARTIFACT_URI"] == f"s3://{bucket}/runs"
        # RDS-shaped MySQL secret pointing at the local database
        secret = json.loads(
            client("secretsmanager").get_secret_value(SecretId=env["GRAPHREC_MYSQL_SECRET_ARN"])["SecretString"]
        )
        assert secret["dbname"] == "graphrec_cloud_t" and {"host", "port", "username", "password"} <= set(
            secret
        )
        # idempotency table with the TTL attribute Powertools writes
        ttl = client("dynamodb").describe_time_to_live(TableName=env["GRAPHREC_IDEMPOTENCY_TABLE"])
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiration"
        # GPU job definition on the queue
        (jd,) = client("batch").describe_job_definitions(jobDefinitions=[env["GRAPHREC_TRAINING_JOB_DEFINITION"]])[
            "jobDefinitions"
        ]
        assert {"type": "GPU", "value": "1"} in jd["containerProperties"]["resourceRequirements"]

        # the functions work against it: the schedule event submits a job there
        invoke_env = {**base_env, **env, "DGLBACKEND": "pytorch"}
        inv = subprocess.run(
            [sys.executable, "-m", "infra.sam_local", "invoke", "RetrainFunction", "-e",
             "events/retrain_schedule.json"],
            capture_output=True, text=True, timeout=120, env=invoke_env, cwd=REPO,
        )  # fmt: skip
        assert inv.returncode == 0, inv.stderr[-3000:]
        jobs = client("batch").list_jobs(jobQueue=env["GRAPHREC_TRAINING_JOB_QUEUE"], jobStatus="SUCCEEDED")
        assert len(jobs["jobSummaryList"]) == 1

        # running it again reuses the server and its resources
        again = _script(args, base_env)
        assert again.returncode == 0, again.stderr
        env2 = _exports(again.stdout)
        assert int((state / "moto.pid").read_text()) == pid
        same = ("GRAPHREC_MYSQL_SECRET_ARN", "GRAPHREC_TRAINING_JOB_QUEUE", "GRAPHREC_DATA_URI")
        assert {k: env2[k] for k in same} == {k: env[k] for k in same}
    finally:
        stopped = _script(["--stop", "--state-dir", str(state)], base_env)
    assert stopped.returncode == 0 and "stopped moto server" in stopped.stderr, stopped.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (state / "moto.pid").exists()
