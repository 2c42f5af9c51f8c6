"""IAM lint of the stack as CloudFormation receives it: every policy document in the SAM-transformed
template, with intrinsics resolved to placeholder ARNs, checked by parliament (an IAM policy linter that
knows every service's actions, resource ARN formats and condition keys).

Why: `sam validate --lint` and cfn-lint check a policy's *shape*, not whether its action, resource or
condition key exists. A condition on a key AWS never sets (the retrain role's old `batch:CreateAction`)
makes an Allow that never matches - every SubmitJob refused - and moto, which does not evaluate IAM, can
never show it. parliament reports it at once:
`UNKNOWN_CONDITION_FOR_ACTION Unknown condition batch:CreateAction for action batch:TagResource`.

    python -m infra.iam_lint            # lint template.yaml under each parameter set; exit 1 on a failing finding
    python -m infra.iam_lint --all      # also print the accepted findings, with the reason each is accepted

The same checks run in CI (tests/integration/test_iam_lint.py); docs/iam.md lists what each role may do.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from infra.sam_template import PSEUDO_PARAMETERS, Resolver, load_template

ACCOUNT = PSEUDO_PARAMETERS["AWS::AccountId"]
REGION = PSEUDO_PARAMETERS["AWS::Region"]

# What a user passes to `sam deploy` (required parameters), as in tests/integration/test_template_lint.py.
DEPLOY_PARAMETERS: dict[str, Any] = {
    "TrainingImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/graphrec-train:1",
    "MilvusUri": "https://in03-example.serverless.aws-eu-central-1.cloud.zilliz.com",
    "MysqlSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:graphrec/mysql-AbCdEf",
    "MysqlHost": "graphrec.cluster-abc.us-east-1.rds.amazonaws.com",
    "SubnetIds": ["subnet-0123456789abcdef0"],
    "SecurityGroupIds": ["sg-0123456789abcdef0"],
}
# Every optional feature switched on, so that policies behind a condition are linted too.
ALL_FEATURES: dict[str, Any] = {
    **DEPLOY_PARAMETERS,
    "MilvusTokenSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:graphrec/milvus-AbCdEf",
    "SecretsKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
    "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:graphrec-alarms",
    "LoaderReservedConcurrency": 1,
}
PARAMETER_SETS: dict[str, dict[str, Any]] = {"defaults": DEPLOY_PARAMETERS, "all-features": ALL_FEATURES}

# Findings that fail the lint: a name AWS does not know (action, service prefix, condition key, operator,
# principal), a value of the wrong type for its key, a resource that cannot be the action's resource, a
# malformed document or ARN - each one is a statement that does not do what it says.
FAILING = frozenset(
    {
        "EXCEPTION",
        "MALFORMED_JSON",
        "MALFORMED",
        "DUPLICATE_SID",
        "UNKNOWN_ACTION",
        "UNKNOWN_PREFIX",
        "UNKNOWN_CONDITION_FOR_ACTION",
        "UNKNOWN_OPERATOR",
        "UNKNOWN_PRINCIPAL",
        "UNKNOWN_FEDERATION_SOURCE",
        "MISMATCHED_TYPE",
        "MISMATCHED_TYPE_OPERATION_TO_NULL",
        "RESOURCE_MISMATCH",
        "INVALID_ARN",
        "INVALID_VERSION",
        "BAD_PATTERN_FOR_MFA",
    }
)
# Findings that are printed (--all) but do not fail, and why.
NOT_FAILING: dict[str, str] = {
    "NO_VERSION": "SAM writes the policies it generates (policy templates, EventInvokeConfig destinations) "
    "without a Version; IAM then applies 2008-10-17, which differs only in policy variables - none are used.",
    "OLD_VERSION": "as NO_VERSION",
    "RESOURCE_STAR": "only where the action has no resource-level permissions (batch:DescribeJobs/ListJobs) "
    "or in a trust policy, which names no resource",
    "RESOURCE_EFFECTIVELY_STAR": "as RESOURCE_STAR",
    "INVALID_SID": "a Sid is a label only",
    "MISMATCHED_TYPE_BUT_USABLE": "IAM converts the value",
}


@dataclass(frozen=True)
class Accepted:
    """A failing-class finding accepted anyway, and why (matched on issue, policy name and detail)."""

    issue: str
    policy: str  # regex on PolicyDoc.name
    detail: str  # regex on the finding's detail, as text
    reason: str


# None today: every policy passes. An entry needs the reason the finding is wrong or harmless.
ACCEPTED: tuple[Accepted, ...] = ()

# Resource properties that hold an IAM policy document (identity, trust or resource policy).
POLICY_KEYS = ("PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy", "ResourcePolicy")


@dataclass
class PolicyDoc:
    name: str  # e.g. RetrainFunctionRole/RetrainFunctionRolePolicy1, ArtifactBucketPolicy/PolicyDocument
    resource: str  # logical id of the resource that holds it
    kind: str  # identity | trust | resource
    document: dict[str, Any]

    def statements(self) -> list[dict[str, Any]]:
        st = self.document.get("Statement", [])
        return list(st) if isinstance(st, list) else [st]


@dataclass
class Finding:
    policy: str
    issue: str
    detail: Any
    accepted_because: str | None = None

    @property
    def fails(self) -> bool:
        return self.issue in FAILING and self.accepted_because is None

    def __str__(self) -> str:
        why = self.accepted_because or NOT_FAILING.get(self.issue)
        tail = f"  ({'accepted' if self.accepted_because else 'not failing'}: {why})" if why else ""
        return f"{self.issue} {self.policy}: {self.detail}{tail}"


# ----------------------------------------------------------------------------------- the transformed stack
class _ManagedPolicies:
    """The AWS-managed policies SAM may attach (the real loader would ask IAM for the full list)."""

    def load(self) -> dict[str, str]:
        return {
            name: f"arn:aws:iam::aws:policy/{path}{name}"
            for path, name in (
                ("service-role/", "AWSLambdaBasicExecutionRole"),
                ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
                ("", "AWSXrayWriteOnlyAccess"),
            )
        }


def sam_transform(template: dict[str, Any] | None = None, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """template.yaml through the real SAM translator, as CloudFormation expands it on deploy."""
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(template if template is not None else load_template())
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":  # what `sam package` puts there after upload
            res["Properties"]["CodeUri"] = "s3://graphrec-sam-artifacts/code.zip"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION  # the translator needs a region for ARNs
    try:
        return transform(template, dict(parameters or DEPLOY_PARAMETERS), _ManagedPolicies())  # type: ignore[no-any-return]
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


class PlaceholderResolver(Resolver):
    """Resolves Ref/GetAtt of resources to values shaped like the real ones (ARNs by resource type), so
    that the linter can check each resource against the ARN format its action requires."""

    def _name(self, lid: str, prop: str | None) -> str:
        props = self.template["Resources"][lid].get("Properties", {})
        if prop and prop in props:
            return str(self.resolve(props[prop]))
        return f"graphrec-{lid}-PLACEHOLDER"

    def ref(self, name: str) -> Any:
        res = self.template.get("Resources", {}).get(name)
        if res is None or name in self.resource_refs:
            return super().ref(name)
        type_ = res["Type"]
        arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"
        if type_ == "AWS::S3::Bucket":
            return self._name(name, "BucketName")
        if type_ == "AWS::Batch::JobQueue":
            return arn.format("batch", f"job-queue/{self._name(name, 'JobQueueName')}")
        if type_ == "AWS::Batch::JobDefinition":
            return arn.format("batch", f"job-definition/{self._name(name, 'JobDefinitionName')}:1")
        if type_ == "AWS::Batch::ComputeEnvironment":
            return arn.format("batch", f"compute-environment/{self._name(name, 'ComputeEnvironmentName')}")
        if type_ == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self._name(name, 'QueueName')}"
        if type_ == "AWS::SNS::Topic":
            return arn.format("sns", self._name(name, "TopicName"))
        if type_ == "AWS::Cognito::UserPool":
            return f"{REGION}_PLACEHOLDER"
        if type_ == "AWS::DynamoDB::Table":
            return self._name(name, "TableName")
        if type_ == "AWS::Lambda::Function":
            return self._name(name, "FunctionName")
        if type_ == "AWS::IAM::Role":
            return self._name(name, "RoleName")
        return f"{name}-PLACEHOLDER"

    def get_att(self, target: str) -> Any:
        lid, _, attr = target.partition(".")
        res = self.template.get("Resources", {}).get(lid)
        if res is None:
            return super().get_att(target)
        type_ = res["Type"]
        arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"
        if attr == "Arn":
            if type_ == "AWS::S3::Bucket":
                return f"arn:aws:s3:::{self.ref(lid)}"
            if type_ == "AWS::SQS::Queue":
                return arn.format("sqs", self._name(lid, "QueueName"))
            if type_ == "AWS::DynamoDB::Table":
                return arn.format("dynamodb", f"table/{self.ref(lid)}")
            if type_ == "AWS::Lambda::Function":
                return arn.format("lambda", f"function:{self.ref(lid)}")
            if type_ == "AWS::IAM::Role":
                return f"arn:aws:iam::{ACCOUNT}:role/{self.ref(lid)}"
            if type_ == "AWS::IAM::InstanceProfile":
                return f"arn:aws:iam::{ACCOUNT}:instance-profile/{lid}-PLACEHOLDER"
            if type_ == "AWS::Logs::LogGroup":
                return arn.format("logs", f"log-group:{self._name(lid, 'LogGroupName')}:*")
            if type_ == "AWS::Cognito::UserPool":
                return arn.format("cognito-idp", f"userpool/{self.ref(lid)}")
            if type_ == "AWS::KMS::Key":
                return arn.format("kms", "key/00000000-0000-0000-0000-000000000000")
        if type_ == "AWS::SQS::Queue" and attr == "QueueName":
            return self._name(lid, "QueueName")
        return f"{target}-PLACEHOLDER"


def policy_documents(stack: dict[str, Any], parameters: dict[str, Any]) -> list[PolicyDoc]:
    """Every policy document held by any resource of the transformed stack, intrinsics resolved (Fn::If
    evaluated for `parameters`: a policy behind a false condition is not there)."""
    resolver = PlaceholderResolver(stack, dict(parameters))
    out: list[PolicyDoc] = []
    for lid, res in stack["Resources"].items():
        if "Condition" in res and not resolver.condition(res["Condition"]):
            continue
        props = resolver.resolve(res.get("Properties", {}))

        def walk(node: Any, path: str, lid: str = lid, res: dict[str, Any] = res) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in POLICY_KEYS and isinstance(value, dict):
                        name = node.get("PolicyName", key) if key == "PolicyDocument" else key
                        kind = (
                            "trust"
                            if key == "AssumeRolePolicyDocument"
                            else "resource"
                            if res["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
                            else "identity"
                        )
                        out.append(PolicyDoc(f"{lid}/{name}", lid, kind, value))
                    else:
                        walk(value, f"{path}.{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{path}[{i}]")

        walk(props, lid)
    return out


def managed_policy_arns(stack: dict[str, Any], parameters: dict[str, Any]) -> dict[str, list[str]]:
    """role logical id -> the AWS-managed policies attached to it (not linted: AWS maintains them)."""
    resolver = PlaceholderResolver(stack, dict(parameters))
    return {
        lid: list(resolver.resolve(res["Properties"].get("ManagedPolicyArns", [])))
        for lid, res in stack["Resources"].items()
        if res["Type"] == "AWS::IAM::Role"
    }


# ----------------------------------------------------------------------------------- linting
def lint_document(doc: PolicyDoc) -> list[Finding]:
    from parliament import analyze_policy_string

    document = doc.document
    if doc.kind == "trust":
        # parliament analyses identity/resource policies; a trust policy names no Resource
        document = {**document, "Statement": [{**s, "Resource": "*"} for s in doc.statements()]}
    policy = analyze_policy_string(json.dumps(document))
    findings = []
    for f in policy.findings:
        finding = Finding(doc.name, f.issue, f.detail)
        for acc in ACCEPTED:
            if acc.issue == f.issue and re.fullmatch(acc.policy, doc.name) and re.search(acc.detail, str(f.detail)):
                finding.accepted_because = acc.reason
        findings.append(finding)
    return findings


def lint_stack(parameters: dict[str, Any], template: dict[str, Any] | None = None) -> tuple[list[PolicyDoc], list[Finding]]:
    stack = sam_transform(template, parameters)
    docs = policy_documents(stack, parameters)
    return docs, [f for d in docs for f in lint_document(d)]


# ----------------------------------------------------------------------------------- what a role allows
def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


@dataclass
class Grant:
    """One Allow statement of a role: actions, resources and (unevaluated) conditions."""

    policy: str
    actions: list[str]
    resources: list[str]
    condition: dict[str, Any] = field(default_factory=dict)

    def allows(self, action: str, resource: str) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in self.actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in self.resources
        )


def role_grants(docs: list[PolicyDoc], role: str) -> list[Grant]:
    """The Allow statements of the identity policies attached to `role` (no Deny exists in them: checked)."""
    grants = []
    for doc in docs:
        if doc.resource != role or doc.kind != "identity":
            continue
        for st in doc.statements():
            if st.get("Effect") != "Allow":
                raise ValueError(f"{doc.name}: only Allow statements are evaluated here ({st})")
            grants.append(
                Grant(doc.name, [str(a) for a in _as_list(st["Action"])], [str(r) for r in _as_list(st["Resource"])],
                      st.get("Condition", {}))
            )  # fmt: skip
    return grants


# ----------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="also print accepted and non-failing findings")
    args = parser.parse_args(argv)
    failed = 0
    for label, params in PARAMETER_SETS.items():
        docs, findings = lint_stack(params)
        bad = [f for f in findings if f.fails]
        failed += len(bad)
        print(f"# {label}: {len(docs)} policy documents, {len(bad)} failing finding(s)")
        for f in findings if args.all else bad:
            print(("FAIL " if f.fails else "     ") + str(f))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
