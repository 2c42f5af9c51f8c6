"""template.yaml passes cfn-lint, before and after the real SAM transform, and has the shape the system relies on."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.sam_template import TEMPLATE_PATH, Resolver, functions, http_routes, load_template


def test_cfn_lint_is_clean() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    proc = subprocess.run([str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint test above can fail: the same check on a template with a typo reports it."""
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE_PATH.read_text().replace("MemorySize: 1024", "MemorySize: 99999", 1))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    proc = subprocess.run([str(cfn_lint), str(broken)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "99999" in proc.stdout


PERSON_ROUTES = {
    ("GET", "/users/me"),
    ("DELETE", "/users/me"),
    ("POST", "/events"),
    ("GET", "/users/me/events"),
    ("GET", "/users/me/recommendations"),
    ("POST", "/auth/sign-out"),
}


def test_retrain_routes_require_iam_person_routes_a_cognito_token_and_public_routes_nothing() -> None:
    template = load_template()
    assert template["Resources"]["HttpApi"]["Properties"]["Auth"]["EnableIamAuthorizer"] is True
    routes = http_routes(template)
    retrain = [r for r in routes if r[0] == "RetrainFunction"]
    assert {(m, p) for _, m, p, _ in retrain} == {("POST", "/retrain"), ("GET", "/retrain/{job_id}")}
    assert all(auth == "AWS_IAM" for *_, auth in retrain)
    api = {(m, p): auth for fn, m, p, auth in routes if fn == "ApiFunction"}
    assert {route for route, auth in api.items() if auth == "CognitoJwt"} == PERSON_ROUTES
    assert all(auth is None for route, auth in api.items() if route not in PERSON_ROUTES)


def test_loader_is_triggered_by_manifests_in_the_artifact_prefix() -> None:
    template = load_template()
    fns = functions(template)
    loader = fns["LoaderFunction"]
    (event,) = [e for e in loader.events.values() if e["Type"] == "S3"]
    assert event["Properties"]["Bucket"] == {"Ref": "ArtifactBucket"}
    rules = {r["Name"]: r["Value"] for r in event["Properties"]["Filter"]["S3Key"]["Rules"]}
    assert rules["suffix"] == "manifest.json"
    # the prefix is where GRAPHREC_ARTIFACT_URI points, in the bucket the template creates
    bucket = Resolver(template).resolve(template["Resources"]["ArtifactBucket"]["Properties"]["BucketName"])
    assert loader.environment["GRAPHREC_ARTIFACT_URI"] == f"s3://{bucket}/{rules['prefix'].rstrip('/')}"


def test_sizes_and_timeouts() -> None:
    fns = functions()
    api, loader, retrain = fns["ApiFunction"], fns["LoaderFunction"], fns["RetrainFunction"]
    assert 512 <= api.memory_size <= 1024 and api.timeout <= 29  # HTTP API integrations time out at 30 s
    assert 300 <= loader.timeout <= 900 and loader.memory_size >= 1024
    # no reservation by default (reserving needs 100 unreserved executions left in the account); 1 is opt-in
    resolved = Resolver(load_template()).resolve(loader.properties["ReservedConcurrentExecutions"])
    assert not isinstance(resolved, int)
    assert retrain.timeout <= 29
    export = fns["EventsExportFunction"]
    assert 60 <= export.timeout <= 900 and export.properties["EphemeralStorage"]["Size"] >= 1024
    assert {f.runtime for f in fns.values()} == {"python3.12"}  # Amazon Linux 2023 (manylinux_2_28 wheels)


def test_secrets_are_referenced_never_inlined() -> None:
    for fn in functions().values():
        assert "GRAPHREC_MYSQL_PASSWORD" not in fn.environment and "GRAPHREC_MILVUS_TOKEN" not in fn.environment
    for name in ("ApiFunction", "LoaderFunction"):
        env = functions()[name].environment
        assert env["GRAPHREC_MYSQL_SECRET_ARN"] == "<MysqlSecretArn>"
    with_token = functions(parameters={"MilvusTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:1:secret:t"})
    assert with_token["ApiFunction"].environment["GRAPHREC_MILVUS_TOKEN_SECRET_ARN"].endswith(":secret:t")
    assert "GRAPHREC_MILVUS_TOKEN_SECRET_ARN" not in functions()["ApiFunction"].environment  # no secret -> unset


def test_least_privilege() -> None:
    resources = load_template()["Resources"]
    api_policies = str(resources["ApiFunction"]["Properties"]["Policies"])
    assert "S3" not in api_policies and "batch" not in api_policies.lower()  # the API only reads the stores
    retrain = resources["RetrainFunction"]["Properties"]["Policies"]
    statements = [s for p in retrain if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    submit = [s for s in statements if s["Action"] == "batch:SubmitJob"]
    assert submit and all(r != "*" for s in submit for r in s["Resource"])
    job_role = str(resources["TrainingJobRole"]["Properties"]["Policies"])
    assert "s3:DeleteObject" not in job_role and "s3:*" not in job_role
    # the events export may only write objects under events/ (no read, no list, no other prefix)
    export = resources["EventsExportFunction"]["Properties"]["Policies"]
    s3 = [s for p in export if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    assert len(s3) == 1 and set(s3[0]["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    assert s3[0]["Resource"]["Fn::Sub"].endswith("-${AWS::Region}/events/*")
    assert "S3" not in str([p for p in export if isinstance(p, dict) and "Statement" not in p])


# --------------------------------------------------------------------------- the expanded (transformed) stack
# cfn-lint alone validates the SAM resources as written; the S3 notifications, permissions, event rules and
# roles SAM generates only exist after the transform, and that is where circular dependencies appear (an S3
# event on a bucket makes the bucket depend on the function). So: run the real SAM translator, then cfn-lint.
DEPLOY_PARAMETERS = {
    "TrainingImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/graphrec-train:1",
    "MilvusUri": "https://in03-example.serverless.aws-eu-central-1.cloud.zilliz.com",
    "MysqlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:graphrec/mysql-AbCdEf",
    "MysqlHost": "graphrec.cluster-abc.us-east-1.rds.amazonaws.com",
    "SubnetIds": ["subnet-0123456789abcdef0"],
    "SecurityGroupIds": ["sg-0123456789abcdef0"],
}


class _ManagedPolicies:
    """The managed policies SAM attaches (the real loader would ask IAM for the full list)."""

    def load(self) -> dict[str, str]:
        return {
            name: f"arn:aws:iam::aws:policy/{path}{name}"
            for path, name in (
                ("service-role/", "AWSLambdaBasicExecutionRole"),
                ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
                ("", "AWSXrayWriteOnlyAccess"),
            )
        }


def _sam_transform(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator needs a region for ARNs
    template = copy.deepcopy(template)
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":  # what `sam package` puts there after upload
            res["Properties"]["CodeUri"] = "s3://graphrec-sam-artifacts/code.zip"
    return transform(template, dict(DEPLOY_PARAMETERS), _ManagedPolicies())  # type: ignore[arg-type]


def _lint(template: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "transformed.json"
    path.write_text(json.dumps(template))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True, timeout=300)


def test_transformed_stack_is_lint_clean_and_acyclic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _sam_transform(load_template(), monkeypatch)
    proc = _lint(out, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = out["Resources"]
    # both S3 triggers ended up on the artefact bucket, with non-overlapping filters
    configs = res["ArtifactBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    by_fn = {
        c["Function"]["Fn::GetAtt"][0]: {r["Name"]: r["Value"] for r in c["Filter"]["S3Key"]["Rules"]}
        for c in configs
    }
    assert by_fn == {
        "LoaderFunction": {"prefix": "runs/", "suffix": "manifest.json"},
        "RetrainFunction": {"prefix": "data/", "suffix": "ratings.dat"},
    }
    # the schedule's on/off parameter really reaches the rule
    rules = {k: r for k, r in res.items() if r["Type"] == "AWS::Events::Rule"}
    assert set(rules) == {"RetrainFunctionScheduled", "EventsExportFunctionDaily"}
    rule = rules["RetrainFunctionScheduled"]
    assert rule["Properties"]["State"] == {"Fn::If": ["RetrainScheduleOn", "ENABLED", "DISABLED"]}
    assert rules["EventsExportFunctionDaily"]["Properties"]["ScheduleExpression"] == {"Ref": "EventsExportSchedule"}
    # VPC functions got ENI permissions; the retrain function (not in the VPC) did not
    in_vpc_by_fn = {"ApiFunction": True, "LoaderFunction": True, "RetrainFunction": False, "EventsExportFunction": True}
    for fn, in_vpc in in_vpc_by_fn.items():
        arns = str(res[f"{fn}Role"]["Properties"]["ManagedPolicyArns"])
        assert ("AWSLambdaVPCAccessExecutionRole" in arns) is in_vpc, fn


def test_transformed_lint_catches_a_circular_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: with RetrainFunction naming the job definition by !Ref (its revision ARN,
    as it once did), naming the bucket by !GetAtt in the training role closes the loop
    bucket notification -> RetrainFunction -> job definition -> job role -> bucket."""
    template = load_template()
    env = template["Resources"]["RetrainFunction"]["Properties"]["Environment"]["Variables"]
    env["GRAPHREC_TRAINING_JOB_DEFINITION"] = {"Ref": "TrainingJobDefinition"}
    statements = template["Resources"]["TrainingJobRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    statements["Statement"][0]["Resource"] = {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    proc = _lint(_sam_transform(template, monkeypatch), tmp_path)
    assert proc.returncode != 0 and "E3004" in proc.stdout, proc.stdout
