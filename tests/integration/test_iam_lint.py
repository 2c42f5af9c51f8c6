"""Issue 19: every IAM policy of the SAM-transformed stack passes parliament (unknown actions, resources or
condition keys fail CI), and the lint really catches the bug that refused every retrain: `batch:TagResource`
allowed only under the condition key `batch:CreateAction`, which AWS Batch does not have."""

from __future__ import annotations

import copy
import fnmatch
import json
from typing import Any

import pytest

from infra import iam_lint
from infra.sam_template import load_template


@pytest.fixture(scope="module", params=sorted(iam_lint.PARAMETER_SETS))
def linted(request: pytest.FixtureRequest) -> tuple[str, list[iam_lint.PolicyDoc], list[iam_lint.Finding]]:
    docs, findings = iam_lint.lint_stack(iam_lint.PARAMETER_SETS[request.param])
    return request.param, docs, findings


def _statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    policies = template["Resources"][function]["Properties"]["Policies"]
    return [s for p in policies if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]


def test_every_policy_of_the_transformed_stack_passes_the_iam_lint(linted: Any) -> None:
    label, docs, findings = linted
    failing = [str(f) for f in findings if f.fails]
    assert not failing, f"{label}:\n" + "\n".join(failing)
    # every kind of policy was collected: function roles (policy templates expanded, SAM's generated
    # SQS destination policies), the job role, trust policies and the bucket policy
    names = {d.name for d in docs}
    for fn in ("ApiFunction", "LoaderFunction", "RetrainFunction", "EventsExportFunction"):
        assert any(n.startswith(f"{fn}Role/{fn}RolePolicy") for n in names), (fn, names)
        assert f"{fn}Role/AssumeRolePolicyDocument" in names
    assert "TrainingJobRole/read-data-write-runs" in names and "ArtifactBucketPolicy/PolicyDocument" in names
    assert {d.kind for d in docs} == {"identity", "trust", "resource"}
    assert any("EventInvokeConfigOnFailureSQSPolicy" in n for n in names)
    if label == "all-features":  # policies behind a condition are linted too
        decrypt = [s for d in docs for s in d.statements() if s.get("Action") == "kms:Decrypt"]
        assert len(decrypt) == 3 and all(s["Resource"] == iam_lint.ALL_FEATURES["SecretsKmsKeyArn"] for s in decrypt)
    # every intrinsic was resolved before linting: no CloudFormation function or placeholder is left
    text = json.dumps([d.document for d in docs])
    assert "Fn::" not in text and '"Ref"' not in text and "<" not in text and "${" not in text


def test_lint_catches_the_unknown_condition_key_that_refused_every_retrain() -> None:
    """The statement as it was: the Allow never matches on AWS (moto does not evaluate IAM)."""
    template = copy.deepcopy(load_template())
    (tag,) = [s for s in _statements(template, "RetrainFunction") if s.get("Sid") == "TagJobsOnSubmit"]
    tag["Condition"] = {"StringEquals": {"batch:CreateAction": "SubmitJob"}}
    _, findings = iam_lint.lint_stack(iam_lint.DEPLOY_PARAMETERS, template)
    failing = [f for f in findings if f.fails]
    assert [(f.issue, f.policy) for f in failing] == [
        ("UNKNOWN_CONDITION_FOR_ACTION", "RetrainFunctionRole/RetrainFunctionRolePolicy1")
    ], failing
    assert "batch:CreateAction" in str(failing[0].detail) and "batch:TagResource" in str(failing[0].detail)


@pytest.mark.parametrize(
    ("change", "issue"),
    [
        ("action", "UNKNOWN_ACTION"),  # s3:HeadObject is an API call, not an IAM action (it is s3:GetObject)
        ("resource", "RESOURCE_MISMATCH"),  # s3:GetObject on the bucket ARN instead of its objects
    ],
)
def test_lint_catches_unknown_actions_and_resources_that_cannot_match(change: str, issue: str) -> None:
    template = copy.deepcopy(load_template())
    (get,) = [s for s in _statements(template, "LoaderFunction") if s["Action"] == "s3:GetObject"]
    if change == "action":
        get["Action"] = ["s3:GetObject", "s3:HeadObject"]
    else:
        get["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:s3:::graphrec-${Stage}-${AWS::AccountId}-${AWS::Region}"}
    _, findings = iam_lint.lint_stack(iam_lint.DEPLOY_PARAMETERS, template)
    failing = [f for f in findings if f.fails]
    assert [(f.issue, f.policy) for f in failing] == [(issue, "LoaderFunctionRole/LoaderFunctionRolePolicy0")]


def test_the_job_tags_the_handler_sends_satisfy_the_tag_on_create_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    """TagJobsOnSubmit allows exactly the tags `_submit_job` puts on the job (evaluated like IAM would:
    StringEquals on aws:RequestTag/<key>, ForAllValues:StringEquals on aws:TagKeys)."""
    from handlers.retrain import app
    from infra.sam_template import functions
    from shared.config.settings import clear_settings_cache

    sent: dict[str, Any] = {}

    class FakeBatch:
        def submit_job(self, **kwargs: Any) -> dict[str, Any]:
            sent.update(kwargs)
            return {"jobId": "j-1"}

    for key, value in functions()["RetrainFunction"].environment.items():
        monkeypatch.setenv(key, value)
    clear_settings_cache()
    monkeypatch.setattr(app, "_find_recent_job", lambda name: None)
    monkeypatch.setattr(app, "batch_client", lambda: FakeBatch())
    try:
        app._submit_job("k", "schedule", {"data_uri": "s3://b/d", "output_uri": "s3://b/r", "epochs": "1", "max_minutes": "5"})
    finally:
        clear_settings_cache()
    tags = sent["tags"]
    docs, _ = iam_lint.lint_stack(iam_lint.DEPLOY_PARAMETERS)
    (tag,) = [s for d in docs for s in d.statements() if s.get("Sid") == "TagJobsOnSubmit"]
    assert tag["Action"] == "batch:TagResource"
    cond = tag["Condition"]
    assert set(cond) == {"StringEquals", "ForAllValues:StringEquals"}
    for key, value in cond["StringEquals"].items():
        assert key.startswith("aws:RequestTag/") and tags[key.split("/", 1)[1]] == value
    assert set(tags) <= set(cond["ForAllValues:StringEquals"]["aws:TagKeys"])
    assert sent["propagateTags"] is True
    # and the job definition is named, not pinned to a revision (a stack update deregisters old revisions)
    assert sent["jobDefinition"] == "graphrec-prod-train"


def test_submit_job_is_allowed_on_the_job_definition_by_name_and_on_every_revision() -> None:
    from infra.sam_template import functions

    template = load_template()
    name = functions(template)["RetrainFunction"].environment["GRAPHREC_TRAINING_JOB_DEFINITION"]
    jd_name = iam_lint.PlaceholderResolver(template).resolve(
        template["Resources"]["TrainingJobDefinition"]["Properties"]["JobDefinitionName"]
    )
    assert name == jd_name == "graphrec-prod-train" and ":" not in name and "arn:" not in name
    docs, _ = iam_lint.lint_stack(iam_lint.DEPLOY_PARAMETERS)
    (submit,) = [s for d in docs for s in d.statements() if s.get("Sid") == "SubmitTrainingJobs"]
    base = "arn:aws:batch:us-east-1:123456789012:"
    for arn in (f"{base}job-definition/{name}", f"{base}job-definition/{name}:1", f"{base}job-definition/{name}:42",
                f"{base}job-queue/graphrec-prod-gpu", f"{base}job/0a1b"):  # fmt: skip
        assert any(fnmatch.fnmatchcase(arn, r) for r in submit["Resource"]), arn
    assert not any(fnmatch.fnmatchcase(f"{base}job-definition/other-train:1", r) for r in submit["Resource"])
