"""template.yaml passes cfn-lint (which understands the SAM transform) and has the shape the system relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_retrain_routes_require_iam_and_public_routes_do_not() -> None:
    template = load_template()
    assert template["Resources"]["HttpApi"]["Properties"]["Auth"]["EnableIamAuthorizer"] is True
    routes = http_routes(template)
    retrain = [r for r in routes if r[0] == "RetrainFunction"]
    assert {(m, p) for _, m, p, _ in retrain} == {("POST", "/retrain"), ("GET", "/retrain/{job_id}")}
    assert all(auth == "AWS_IAM" for *_, auth in retrain)
    assert all(auth is None for fn, *_, auth in routes if fn == "ApiFunction")


def test_loader_is_triggered_by_manifests_in_the_artifact_prefix() -> None:
    template = load_template()
    fns = functions(template)
    loader = fns["LoaderFunction"]
    (event,) = [e for e in loader.events.values() if e["Type"] == "S3"]
    assert event["Properties"]["Bucket"] == {"Ref": "ArtifactBucket"}
    rules = {r["Name"]: r["Value"] for r in event["Properties"]["Filter"]["S3Key"]["Rules"]}
    assert rules["suffix"] == "manifest.json"
    # the prefix is where ARTIFACT_URI points, in the bucket the template creates
    bucket = Resolver(template).resolve(template["Resources"]["ArtifactBucket"]["Properties"]["BucketName"])
    assert loader.environment["ARTIFACT_URI"] == f"s3://{bucket}/{rules['prefix'].rstrip('/')}"


def test_sizes_and_timeouts() -> None:
    fns = functions()
    api, loader, retrain = fns["ApiFunction"], fns["LoaderFunction"], fns["RetrainFunction"]
    assert 512 <= api.memory_size <= 1024 and api.timeout <= 29  # HTTP API integrations time out at 30 s
    assert 300 <= loader.timeout <= 900 and loader.memory_size >= 1024
    assert loader.properties["ReservedConcurrentExecutions"] == 1  # loads never interleave
    assert retrain.timeout <= 29
    assert {f.runtime for f in fns.values()} == {"python3.11"}


def test_secrets_are_referenced_never_inlined() -> None:
    for fn in functions().values():
        assert "MYSQL_PASSWORD" not in fn.environment and "MILVUS_TOKEN" not in fn.environment
    for name in ("ApiFunction", "LoaderFunction"):
        env = functions()[name].environment
        assert env["MYSQL_SECRET_ARN"] == "<MysqlSecretArn>"
    with_token = functions(parameters={"MilvusTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:1:secret:t"})
    assert with_token["ApiFunction"].environment["MILVUS_TOKEN_SECRET_ARN"].endswith(":secret:t")
    assert "MILVUS_TOKEN_SECRET_ARN" not in functions()["ApiFunction"].environment  # no secret -> unset


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
