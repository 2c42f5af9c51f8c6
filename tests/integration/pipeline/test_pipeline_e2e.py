"""The whole system, driven from template.yaml: every function is imported from its Handler and invoked as
Lambda would, with the environment the template sets (endpoints pointed at moto, Milvus Lite, and a TLS-only
MariaDB reached with the template's GRAPHREC_MYSQL_SSL_MODE=VERIFY_IDENTITY; only the CA differs from AWS: the test CA).

synthetic ratings -> S3 (the data/ trigger submits a training job) -> training CLI (tiny) writes run 1 to S3 ->
S3 events routed by the template's own filters (only manifest.json reaches LoaderFunction) -> ApiFunction
answers from run 1 -> POST /retrain submits a Batch job with the template's GPU job definition and the run's
parameters -> the job's own command (Ref:: parameters substituted; Batch execution is the one emulated piece)
trains run 2 -> loader loads it while the API keeps answering -> /health reports run 2.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local_cloud import configure_moto, create_idempotency_table, upload_folder
from infra.sam_local import LambdaContext, lambda_env, load_handler, s3_put_event
from infra.sam_template import FunctionSpec, Resolver, functions, load_template
from shared.config.settings import clear_settings_cache
from tests.tls_mariadb import TlsMariaDB

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
STAGE = "e2e"
ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's default account = the resolver's pseudo parameters
BUCKET = f"graphrec-{STAGE}-{ACCOUNT}-{REGION}"  # what the template names the bucket for this stage
TINY_TRAINING = [
    "--batches-per-epoch",
    "3",
    "--batch-size",
    "64",
    "--dim",
    "16",
    "--threads",
    "1",
    "--no-progress",
]


def _event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def _camel(d: Any) -> Any:
    """CloudFormation's PascalCase Batch properties -> the Batch API's camelCase."""
    if isinstance(d, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_camel(v) for v in d]
    return d


class Cloud:
    """The deployed stack, emulated: resources created from template.yaml's own definitions."""

    def __init__(self, tmp: Path, mysql_db: str, monkeypatch: pytest.MonkeyPatch, tls: TlsMariaDB) -> None:
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        template = load_template()
        resolver = Resolver(template, {"Stage": STAGE, "TrainingImageUri": "graphrec-train:e2e"})
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        secret = {"host": tls.host, "port": tls.port, "username": tls.user, "password": tls.password,
                  "dbname": mysql_db}  # fmt: skip
        secret_arn = boto3.client("secretsmanager").create_secret(
            Name="graphrec/e2e/mysql", SecretString=json.dumps(secret)
        )["ARN"]
        table = create_idempotency_table("graphrec-e2e-idempotency")
        self.queue_arn, self.jobdef_arn = self._batch_from_template(template, resolver)
        self.params = {
            "Stage": STAGE,
            "MilvusUri": str(tmp / "milvus.db"),
            "MysqlSecretArn": secret_arn,
            "MysqlHost": tls.host,
            "MysqlDatabase": mysql_db,
            "TrainingImageUri": "graphrec-train:e2e",
        }
        self.specs = functions(
            template,
            self.params,
            {
                "TrainingJobQueue": self.queue_arn,
                "TrainingJobDefinition": self.jobdef_arn,
                "IdempotencyTable": table,
            },
        )
        self.handlers = {lid: load_handler(spec) for lid, spec in self.specs.items()}

    def _batch_from_template(self, template: dict[str, Any], resolver: Resolver) -> tuple[str, str]:
        batch = boto3.client("batch")
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="batch-e2e", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        ce = batch.create_compute_environment(
            computeEnvironmentName="e2e-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
        )["computeEnvironmentArn"]
        q = resolver.resolve(template["Resources"]["TrainingJobQueue"]["Properties"])
        queue_arn = batch.create_job_queue(
            jobQueueName=q["JobQueueName"], state="ENABLED", priority=q["Priority"],
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )["jobQueueArn"]  # fmt: skip
        jd = resolver.resolve(template["Resources"]["TrainingJobDefinition"]["Properties"])
        container = _camel(jd["ContainerProperties"])
        container["environment"] = [
            {"name": e["name"], "value": str(e["value"])} for e in container["environment"]
        ]
        jobdef_arn = batch.register_job_definition(
            jobDefinitionName=jd["JobDefinitionName"],
            type=jd["Type"],
            parameters={k: str(v) for k, v in jd["Parameters"].items()},
            containerProperties=container,
            platformCapabilities=jd["PlatformCapabilities"],
        )["jobDefinitionArn"]
        return queue_arn, jobdef_arn

    def env_for(self, logical_id: str, **overrides: str) -> None:
        """Set the process environment to what Lambda would give this function."""
        for key, value in lambda_env(self.specs[logical_id], overrides).items():
            self.monkeypatch.setenv(key, value)
        clear_settings_cache()

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        spec: FunctionSpec = self.specs[logical_id]
        return self.handlers[logical_id](event, LambdaContext.for_function(spec))

    def s3_targets(self, key: str) -> list[str]:
        """Functions whose S3 event (bucket, ObjectCreated, prefix/suffix filter) matches a new object `key`."""
        out = []
        for lid, spec in self.specs.items():
            for ev in spec.events.values():
                if ev["Type"] != "S3":
                    continue
                props = ev["Properties"]
                rules = {r["Name"]: r["Value"] for r in props["Filter"]["S3Key"]["Rules"]}
                if (
                    props["Bucket"] == {"Ref": "ArtifactBucket"}
                    and props["Events"] in ("s3:ObjectCreated:*", "s3:ObjectCreated:Put")
                    and key.startswith(rules.get("prefix", ""))
                    and key.endswith(rules.get("suffix", ""))
                ):
                    out.append(lid)
        return out

    def object_created(self, key: str, **env_overrides: str) -> dict[str, Any]:
        """What S3 does when `key` is written: invoke every function the template subscribes to it."""
        results = {}
        for lid in self.s3_targets(key):
            self.env_for(lid, **env_overrides)
            results[lid] = self.invoke(lid, s3_put_event(BUCKET, key))
        return results

    def api(self, event_file: str, **changes: Any) -> tuple[int, dict[str, Any]]:
        event = _event(event_file)
        event.update(changes)
        if "rawPath" in changes:  # API Gateway puts the path in both places
            event["requestContext"]["http"]["path"] = changes["rawPath"]
        resp = self.invoke("ApiFunction", event)
        return resp["statusCode"], json.loads(resp["body"])


@pytest.fixture
def cloud(
    moto_endpoint: str,
    tls_mariadb: TlsMariaDB,
    tls_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cloud]:
    from handlers import loader
    from handlers.api_app import deps
    from handlers.retrain import app as retrain

    configure_moto(moto_endpoint)
    monkeypatch.setenv("DGLBACKEND", "pytorch")
    # The template verifies MySQL's certificate (VERIFY_IDENTITY) against the RDS bundle; this server's
    # certificate comes from the test CA, the one setting Lambda would not need.
    monkeypatch.setenv("GRAPHREC_MYSQL_SSL_CA", str(tls_mariadb.ca))
    c = Cloud(tmp_path, tls_database, monkeypatch, tls_mariadb)
    assert c.specs["ApiFunction"].environment["GRAPHREC_MYSQL_SSL_MODE"] == "VERIFY_IDENTITY"
    # One process plays three Lambda containers: every variable they set must agree, so one env serves all.
    merged: dict[str, str] = {}
    for spec in c.specs.values():
        for k, v in spec.environment.items():
            assert merged.setdefault(k, v) == v, f"{k} differs between functions"
    loader.reset_stores()
    deps.reset_caches()
    retrain.clear_clients()
    yield c
    loader.reset_stores()
    deps.reset_caches()
    retrain.clear_clients()


def _train(data_uri: str, output_uri: str, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "training_job", "train", "--data", data_uri, "--output", output_uri, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _manifests() -> list[str]:
    objs = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("Contents", [])
    return sorted(o["Key"] for o in objs if o["Key"].endswith("/manifest.json"))


def _run_keys() -> list[str]:
    objs = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("Contents", [])
    return sorted(o["Key"] for o in objs)


def test_pipeline_from_template(cloud: Cloud, tmp_path: Path) -> None:
    env = cloud.specs["LoaderFunction"].environment
    artifact_uri, data_uri = env["GRAPHREC_ARTIFACT_URI"], env["GRAPHREC_DATA_URI"]
    assert artifact_uri == f"s3://{BUCKET}/runs" and data_uri == f"s3://{BUCKET}/data/ml-1m"

    # 1. small synthetic MovieLens data lands in the bucket's data/ prefix
    data_dir = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "training_job", "synthetic", "--out", str(data_dir),
         "--users", "120", "--movies", "80", "--ratings", "3000", "--seed", "3"],
        check=True, capture_output=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert upload_folder(data_dir, BUCKET, "data/ml-1m") == 4  # ratings, users, movies + franchises.dat (the realistic profile's ground truth)
    # ... and the template's new-ratings trigger fires once, for ratings.dat, training on that folder
    fired = {key: cloud.object_created(key) for key in ("data/ml-1m/movies.dat", "data/ml-1m/users.dat")}
    assert fired == {"data/ml-1m/movies.dat": {}, "data/ml-1m/users.dat": {}}
    on_ratings = cloud.object_created("data/ml-1m/ratings.dat")
    assert list(on_ratings) == ["RetrainFunction"]
    (data_job,) = on_ratings["RetrainFunction"]["submitted"]
    assert data_job["trigger"] == "s3" and data_job["parameters"]["data_uri"] == data_uri

    # 2. the training job (tiny) reads s3:// and writes run 1 to s3://
    _train(data_uri, artifact_uri, ["--epochs", "1", "--max-minutes", "2", *TINY_TRAINING])
    (manifest1,) = _manifests()
    run1 = manifest1.split("/")[1]

    # 3. S3 notifies for every object the run wrote; the template routes only the manifest, to the loader
    invoked = {key: cloud.object_created(key) for key in _run_keys()}
    assert {k: list(v) for k, v in invoked.items() if v} == {manifest1: ["LoaderFunction"]}
    out = invoked[manifest1]["LoaderFunction"]
    assert [r["outcome"] for r in out["results"]] == ["live"], out
    assert out["results"][0]["run_id"] == run1

    # 4. API Gateway events are answered from run 1
    cloud.env_for("ApiFunction", GRAPHREC_LIVE_RUN_CACHE_SECONDS="0.5")
    status, health = cloud.api("api_health.json")
    assert status == 200 and health["status"] == "ok" and health["run_id"] == run1
    status, movies = cloud.api(
        "api_movies_search.json", rawQueryString="sample=5", queryStringParameters={"sample": "5"}
    )
    assert status == 200 and len(movies["items"]) == 5
    liked = [m["movie_id"] for m in movies["items"][:2]]
    rec_event = _event("api_recommendations.json")
    rec_event["body"] = json.dumps({"liked": liked, "k": 5})
    resp = cloud.invoke("ApiFunction", rec_event)
    recs = json.loads(resp["body"])
    assert resp["statusCode"] == 200 and recs["run_id"] == run1
    assert 1 <= len(recs["items"]) <= 5 and not set(liked) & {r["movie_id"] for r in recs["items"]}
    mid = liked[0]
    status, similar = cloud.api(
        "api_movie_similar.json", rawPath=f"/movies/{mid}/similar", pathParameters={"movie_id": str(mid)}
    )
    assert status == 200 and similar["items"] and mid not in {r["movie_id"] for r in similar["items"]}
    status, user_recs = cloud.api("api_user_recommendations.json")  # user 1
    assert status == 200 and user_recs["run_id"] == run1 and user_recs["items"]
    # a signed-in person, as API Gateway's JWT authorizer hands the Cognito claims over (the template's
    # GRAPHREC_AUTH_MODE=cognito): their likes change their very next answer
    like = _event("api_post_events.json")
    like["body"] = json.dumps({"events": [{"movie_id": m, "type": "like", "idempotency_key": f"e2e-like-{m}"} for m in liked]})
    resp = cloud.invoke("ApiFunction", like)
    assert resp["statusCode"] == 200 and json.loads(resp["body"])["accepted"] == 2, resp
    status, mine = cloud.api("api_me_recommendations.json")
    rec_event["body"] = json.dumps({"liked": liked, "k": 10})
    same = json.loads(cloud.invoke("ApiFunction", rec_event)["body"])
    assert status == 200 and [i["movie_id"] for i in mine["items"]] == [i["movie_id"] for i in same["items"]]
    anonymous = _event("api_me_recommendations.json")
    del anonymous["requestContext"]["authorizer"]
    assert cloud.invoke("ApiFunction", anonymous)["statusCode"] == 401
    resp = cloud.invoke("ApiFunction", _event("api_root.json"))
    assert resp["statusCode"] == 200 and "html" in resp["headers"].get("content-type", "")

    # 5. POST /retrain (IAM-authorised event) submits the template's job definition on the template's queue
    cloud.env_for("RetrainFunction")
    retrain_event = _event("retrain_post.json")
    retrain_event["body"] = json.dumps({"epochs": 1, "max_minutes": 2})
    resp = cloud.invoke("RetrainFunction", retrain_event)
    assert resp["statusCode"] == 202, resp
    job_id = json.loads(resp["body"])["job_id"]
    assert json.loads(cloud.invoke("RetrainFunction", retrain_event)["body"])["job_id"] == job_id  # retried
    batch = boto3.client("batch")
    (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert job["jobQueue"] == cloud.queue_arn and job["jobDefinition"] == cloud.jobdef_arn
    assert job["jobId"] != data_job["job_id"]
    (jobdef,) = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
    assert jobdef["containerProperties"]["image"] == cloud.params["TrainingImageUri"]
    assert {"type": "GPU", "value": "1"} in jobdef["containerProperties"]["resourceRequirements"]
    assert job["parameters"] == {
        "data_uri": data_uri,
        "output_uri": artifact_uri,
        "epochs": "1",
        "max_minutes": "2",
        "events_uri": f"s3://{BUCKET}/events/events.csv",  # no export yet: the job warns, trains on base data
    }
    status_event = _event("retrain_get.json")
    status_event["pathParameters"] = {"job_id": job_id}
    status_resp = cloud.invoke("RetrainFunction", status_event)
    assert status_resp["statusCode"] == 200
    reported = json.loads(status_resp["body"])
    assert reported["job_id"] == job_id and reported["status"] == "SUCCEEDED"  # moto's emulated execution
    assert reported["parameters"] == job["parameters"]

    # 6. "Batch runs the job": the job definition's command with its Ref:: parameters substituted
    command = list(job["container"]["command"])
    for i, token in enumerate(command):
        if token.startswith("Ref::"):
            command[i] = job["parameters"][token[len("Ref::") :]]
    assert command[:4] == ["python", "-m", "training_job", "train"]
    # the job definition trains on the GPU it reserves; this machine has none, so the emulated run uses cpu
    assert command[command.index("--device") + 1] == "cuda"
    command[command.index("--device") + 1] = "cpu"
    _train(command[command.index("--data") + 1], command[command.index("--output") + 1],
           command[command.index("--output") + 2 :] + TINY_TRAINING)  # fmt: skip
    manifest2 = next(k for k in _manifests() if k != manifest1)
    run2 = manifest2.split("/")[1]

    # 7. run 2 loads while the API keeps answering; afterwards /health names run 2
    assert cloud.s3_targets(manifest2) == ["LoaderFunction"]
    cloud.env_for("LoaderFunction", GRAPHREC_LIVE_RUN_CACHE_SECONDS="0.5")
    load_result: dict[str, Any] = {}

    def load() -> None:
        try:
            load_result["out"] = cloud.invoke("LoaderFunction", s3_put_event(BUCKET, manifest2))
        except BaseException as exc:  # surfaced by the assertions below
            load_result["error"] = exc

    thread = threading.Thread(target=load)
    thread.start()
    answered, answered_during_load, seen_runs = 0, 0, set()
    while thread.is_alive() or answered < 3:
        loading = thread.is_alive()
        status, body = cloud.api("api_health.json")
        assert status == 200 and body["status"] == "ok", body
        resp = cloud.invoke("ApiFunction", rec_event)
        assert resp["statusCode"] == 200, resp["body"]
        assert json.loads(resp["body"])["items"], "empty recommendations during the switch"
        seen_runs.add(json.loads(resp["body"])["run_id"])
        answered += 1
        answered_during_load += loading and thread.is_alive()  # both calls fell inside the load
    thread.join()
    assert "error" not in load_result, load_result.get("error")
    assert [r["outcome"] for r in load_result["out"]["results"]] == ["live"]
    assert answered_during_load >= 1, "the load finished before the API was asked anything"
    assert seen_runs <= {run1, run2}
    # within live_run_cache_seconds every route names run 2
    deadline = time.monotonic() + 10
    while True:
        status, health = cloud.api("api_health.json")
        resp = cloud.invoke("ApiFunction", rec_event)
        assert status == 200 and resp["statusCode"] == 200
        latest = {health["run_id"], json.loads(resp["body"])["run_id"]}
        if latest == {run2} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert latest == {run2}
    # the redelivered S3 event for run 1 does not take the live model back
    again = cloud.invoke("LoaderFunction", s3_put_event(BUCKET, manifest1))
    assert [r["outcome"] for r in again["results"]] != ["live"]
    assert cloud.api("api_health.json")[1]["run_id"] == run2
