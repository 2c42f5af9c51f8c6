"""Bring up a local AWS for development: moto's server (default) or LocalStack, with everything provisioned.

What it creates (names printed as `export` lines to paste or `eval`):
- the artefact bucket (runs/, data/ and events/), optionally uploading a ratings folder to data/ml-1m/
- Secrets Manager secrets: MySQL (RDS-shaped JSON pointing at the local MariaDB) and a Milvus token
- the DynamoDB idempotency table used by the retrain function
- an AWS Batch compute environment, GPU job queue and job definition (moto records jobs but, with
  `use_docker` off, never runs them: jobs go straight to SUCCEEDED - Batch execution is the one thing emulated)

    bash infra/local_cloud.sh                       # moto on 127.0.0.1:5050, prints exports
    bash infra/local_cloud.sh --data .local/data/ml-1m
    bash infra/local_cloud.sh --localstack          # LocalStack in Docker (needs a Docker engine)
    bash infra/local_cloud.sh --stop                # stop the moto server this script started
                                                    # (LocalStack: docker stop graphrec-localstack)
    eval "$(bash infra/local_cloud.sh --quiet)"     # start + export in the current shell

Everything AWS-facing in the project honours AWS_ENDPOINT_URL, so the loader, API and retrain handlers and
the training job then talk to this local cloud (see `python -m infra.sam_local` to invoke functions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".local" / "cloud"  # moto.pid + moto.log of the server this script started
REGION = "us-east-1"
DEFAULT_BUCKET = "graphrec-local"
DEFAULT_QUEUE = "graphrec-gpu"
DEFAULT_JOB_DEFINITION = "graphrec-train"
DEFAULT_TABLE = "graphrec-idempotency"
DEFAULT_IMAGE = "graphrec-train:local"


# ----------------------------------------------------------------------------------- provisioning
def configure_moto(endpoint: str) -> None:
    """Make moto's Batch record jobs without trying to run them in Docker (there is no engine here)."""
    import requests

    resp = requests.post(f"{endpoint}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=10)
    resp.raise_for_status()


def create_bucket(name: str) -> None:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=name)


def create_secret(name: str, value: dict[str, Any]) -> str:
    """Create or update a JSON secret; returns its ARN."""
    import boto3

    sm = boto3.client("secretsmanager", region_name=REGION)
    try:
        return str(sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"])
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(value))
        return str(sm.describe_secret(SecretId=name)["ARN"])


def create_idempotency_table(name: str = DEFAULT_TABLE) -> str:
    """The Powertools idempotency table (same key schema and TTL attribute as template.yaml)."""
    import boto3

    ddb = boto3.client("dynamodb", region_name=REGION)
    try:
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.get_waiter("table_exists").wait(TableName=name)
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
        )
    except ddb.exceptions.ResourceInUseException:
        pass
    return name


def create_batch_resources(
    queue: str = DEFAULT_QUEUE,
    job_definition: str = DEFAULT_JOB_DEFINITION,
    image: str = DEFAULT_IMAGE,
    data_uri: str = f"s3://{DEFAULT_BUCKET}/data/ml-1m",
    output_uri: str = f"s3://{DEFAULT_BUCKET}/runs",
    events_uri: str = f"s3://{DEFAULT_BUCKET}/events/events.csv",
) -> dict[str, str]:
    """Compute environment + job queue + GPU job definition shaped like template.yaml's; returns ARNs."""
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    batch = boto3.client("batch", region_name=REGION)
    try:
        role_arn = iam.create_role(
            RoleName="graphrec-batch-service",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "batch.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName="graphrec-batch-service")["Role"]["Arn"]
    envs = batch.describe_compute_environments(computeEnvironments=[f"{queue}-ce"])["computeEnvironments"]
    ce_arn = (
        envs[0]["computeEnvironmentArn"]
        if envs
        else batch.create_compute_environment(
            computeEnvironmentName=f"{queue}-ce", type="UNMANAGED", state="ENABLED", serviceRole=role_arn
        )["computeEnvironmentArn"]
    )
    queues = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    queue_arn = (
        queues[0]["jobQueueArn"]
        if queues
        else batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}],
        )["jobQueueArn"]
    )
    jd_arn = batch.register_job_definition(
        jobDefinitionName=job_definition,
        type="container",
        platformCapabilities=["EC2"],
        parameters={
            "data_uri": data_uri,
            "output_uri": output_uri,
            "epochs": "20",
            "max_minutes": "120",
            "events_uri": events_uri,
        },
        containerProperties={
            "image": image,
            "command": [
                "python",
                "-m",
                "training_job",
                "train",
                "--data",
                "Ref::data_uri",
                "--output",
                "Ref::output_uri",
                "--epochs",
                "Ref::epochs",
                "--max-minutes",
                "Ref::max_minutes",
                "--events-uri",
                "Ref::events_uri",
                "--device",
                "cuda",
                "--no-progress",
            ],  # fmt: skip
            "resourceRequirements": [
                {"type": "GPU", "value": "1"},
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "14336"},
            ],
            "environment": [{"name": "DGLBACKEND", "value": "pytorch"}],
        },
    )["jobDefinitionArn"]
    return {"compute_environment": ce_arn, "job_queue": queue_arn, "job_definition": jd_arn}


def upload_folder(folder: Path, bucket: str, prefix: str) -> int:
    """Upload every file of `folder` under s3://bucket/prefix/ (ratings.dat last: it is the retrain trigger)."""
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name == "ratings.dat", str(p))
    )
    for path in files:
        s3.upload_file(str(path), bucket, f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}")
    return len(files)


def provision(
    bucket: str,
    data: Path | None,
    mysql: dict[str, Any],
    milvus_token: str | None,
    batch_optional: bool = False,
) -> dict[str, str]:
    """Create everything and return the environment variables the project's components read.

    batch_optional: LocalStack's community edition has no Batch API; everything else still works there,
    only the retrain function cannot submit (it then answers 502 "could not reach AWS Batch")."""
    create_bucket(bucket)
    env: dict[str, str] = {
        "GRAPHREC_ARTIFACT_URI": f"s3://{bucket}/runs",
        "GRAPHREC_DATA_URI": f"s3://{bucket}/data/ml-1m",
        "GRAPHREC_MYSQL_SECRET_ARN": create_secret("graphrec/mysql", mysql),
        "GRAPHREC_IDEMPOTENCY_TABLE": create_idempotency_table(DEFAULT_TABLE),
        "GRAPHREC_EVENTS_EXPORT_URI": f"s3://{bucket}/events/events.csv",
    }
    if milvus_token:
        env["GRAPHREC_MILVUS_TOKEN_SECRET_ARN"] = create_secret("graphrec/milvus", {"token": milvus_token})
    try:
        arns = create_batch_resources(
            data_uri=env["GRAPHREC_DATA_URI"], output_uri=env["GRAPHREC_ARTIFACT_URI"], events_uri=env["GRAPHREC_EVENTS_EXPORT_URI"]
        )
    except Exception as exc:  # botocore ClientError / EndpointConnectionError from an emulator without Batch
        if not batch_optional:
            raise
        print(f"# AWS Batch unavailable here ({type(exc).__name__}); retrain cannot submit", file=sys.stderr)
    else:
        env["GRAPHREC_TRAINING_JOB_QUEUE"] = arns["job_queue"]
        env["GRAPHREC_TRAINING_JOB_DEFINITION"] = arns["job_definition"]
    if data is not None:
        n = upload_folder(data, bucket, "data/ml-1m")
        print(f"# uploaded {n} files from {data} to s3://{bucket}/data/ml-1m/", file=sys.stderr)
    return env


# ----------------------------------------------------------------------------------- servers
def _wait_http(url: str, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.3)


def start_moto(host: str, port: int, state_dir: Path = STATE_DIR) -> str:
    """Start `moto_server` in the background (pid in state_dir/moto.pid) unless ours already answers."""
    endpoint = f"http://{host}:{port}"
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file = state_dir / "moto.pid"
    if pid_file.exists():
        try:
            _wait_http(f"{endpoint}/moto-api/", timeout=1)
            return endpoint
        except TimeoutError:
            pid_file.unlink()
    log = open(state_dir / "moto.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    _wait_http(f"{endpoint}/moto-api/")
    return endpoint


def stop_moto(state_dir: Path = STATE_DIR, timeout: float = 10.0) -> bool:
    """Stop the moto server whose pid this script recorded (only that process) and wait for it to exit."""
    pid_file = state_dir / "moto.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child (only when called in-process)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise TimeoutError(f"moto server {pid} did not exit within {timeout:.0f}s")


def start_localstack(port: int) -> str:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True).returncode != 0
    ):
        raise SystemExit("--localstack needs a running Docker engine; use the default moto server instead")
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", "graphrec-localstack", "-p", f"{port}:4566",
         "-e", "SERVICES=s3,secretsmanager,dynamodb,batch,iam,lambda,events", "localstack/localstack"],
        check=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    _wait_http(f"{endpoint}/_localstack/health", timeout=90)
    return endpoint


# ----------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--localstack", action="store_true", help="use LocalStack in Docker instead of moto")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050, help="moto port (LocalStack: 4566 unless given)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--data", type=Path, default=None, help="ratings folder to upload to data/ml-1m/")
    parser.add_argument("--milvus-token", default=None, help="store this token as the Milvus secret")
    parser.add_argument("--stop", action="store_true", help="stop the moto server started by this script")
    parser.add_argument("--quiet", action="store_true", help="print only the export lines")
    parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="where moto.pid and moto.log are kept"
    )
    args = parser.parse_args(argv)

    if args.stop:
        print(
            "stopped moto server" if stop_moto(args.state_dir) else "no moto server started by this script",
            file=sys.stderr,
        )
        return 0
    if args.localstack:
        endpoint = start_localstack(args.port if args.port != 5050 else 4566)
    else:
        endpoint = start_moto(args.host, args.port, args.state_dir)
        configure_moto(endpoint)
    aws_env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    os.environ.update(aws_env)
    from shared.config.settings import Settings

    s = Settings()  # GRAPHREC_MYSQL_* of this shell (or their deprecated old names)
    mysql = {
        "host": s.mysql_host,
        "port": s.mysql_port,
        "username": s.mysql_user,
        "password": s.mysql_password.get_secret_value(),
        "dbname": s.mysql_database,
    }
    env = {
        **aws_env,
        **provision(args.bucket, args.data, mysql, args.milvus_token, batch_optional=args.localstack),
    }
    if not args.quiet:
        print(
            f"# local cloud at {endpoint} ({'LocalStack' if args.localstack else 'moto'}); export:",
            file=sys.stderr,
        )
    for k, v in env.items():
        print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
