"""What AWS does with the template, read off the stack the real SAM transform produces (both linters pass on
every mistake listed here, so each one is checked on the transformed output or resolved values):

1. the GPU compute environment uses the Amazon Linux 2023 NVIDIA AMI (AL2 AMIs are being retired);
2. the HTTP API's CORS block survives the transform as a real CORS configuration;
3. MySQL is reached over TLS verified against a CA bundle the package ships (and the template asks for it);
4. the loader's reserved concurrency is a parameter; stuck RUNNABLE jobs are cancelled; failed asynchronous
   loads/retrains land in an alarmed queue; the job's attempt timeout covers the largest budget
   (tests/integration/retrain); a rollback of the first deploy does not leave the fixed-name bucket behind;
   the number of Milvus collections a deploy needs is bounded by KeepRuns.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.sam_template import Resolver, functions, load_template
from tests.integration.test_template_lint import DEPLOY_PARAMETERS, _sam_transform

ORIGINS = ["https://a.example", "https://b.example"]


def _transform(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The SAM transform as CloudFormation runs it: a CommaDelimitedList parameter arrives as a list."""
    import tests.integration.test_template_lint as lint

    monkeypatch.setattr(lint, "DEPLOY_PARAMETERS", {**DEPLOY_PARAMETERS, "CorsOrigins": list(ORIGINS)})
    return _sam_transform(template, monkeypatch)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    try:
        return _transform(load_template(), mp)
    finally:
        mp.undo()


def _of_type(stack: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in stack["Resources"].items() if v["Type"] == type_}


def test_gpu_compute_environment_uses_the_al2023_nvidia_ami(stack: dict[str, Any]) -> None:
    (ce,) = _of_type(stack, "AWS::Batch::ComputeEnvironment").values()
    images = [c["ImageType"] for c in ce["Properties"]["ComputeResources"]["Ec2Configuration"]]
    assert images == ["ECS_AL2023_NVIDIA"]
    assert not any("AL2_" in i or i == "ECS_AL2" for i in images)


def test_http_api_cors_is_a_full_cors_configuration(stack: dict[str, Any]) -> None:
    (api,) = _of_type(stack, "AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["Body"]["x-amazon-apigateway-cors"]
    # the whole block, not an intrinsic standing in for it
    assert set(cors) >= {"allowOrigins", "allowMethods", "allowHeaders", "maxAge"}, cors
    assert cors["allowOrigins"] == ORIGINS  # SAM substitutes the parameter's value: a list of origins
    assert {m.upper() for m in cors["allowMethods"]} == {"GET", "POST", "DELETE"}
    assert {"content-type", "idempotency-key", "authorization"} <= {h.lower() for h in cors["allowHeaders"]}
    assert cors["maxAge"] == 600
    assert stack["Parameters"]["CorsOrigins"]["Type"] == "CommaDelimitedList"
    # the app gets the same origins as a comma-separated string
    env = functions(parameters={"CorsOrigins": "https://a.example,https://b.example"})["ApiFunction"].environment
    assert env["GRAPHREC_CORS_ORIGINS"] == "https://a.example,https://b.example"


def test_a_split_origin_list_would_have_lost_the_cors_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: the template's old `!Split` form transforms into an intrinsic only."""
    import copy

    template = copy.deepcopy(load_template())
    template["Parameters"]["CorsOrigins"]["Type"] = "String"
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    cors["AllowOrigins"] = {"Fn::Split": [",", {"Ref": "CorsOrigins"}]}
    out = _transform(template, monkeypatch)
    (api,) = _of_type(out, "AWS::ApiGatewayV2::Api").values()
    broken = api["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert "allowMethods" not in broken


def test_functions_connect_to_mysql_with_verified_tls(stack: dict[str, Any]) -> None:
    from shared.config.settings import RDS_CA_BUNDLE, Settings

    for name in ("ApiFunction", "LoaderFunction"):
        env = stack["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["GRAPHREC_MYSQL_SSL_MODE"] == {"Ref": "MysqlSslMode"}
    assert stack["Parameters"]["MysqlSslMode"]["Default"] == "VERIFY_IDENTITY"
    assert "DISABLED" not in stack["Parameters"]["MysqlSslMode"]["AllowedValues"]
    tls = Settings(mysql_ssl_mode="VERIFY_IDENTITY").mysql_tls()["ssl"]
    assert tls.check_hostname is True
    subjects = [dict(x[0] for x in c["subject"]).get("commonName", "") for c in tls.get_ca_certs()]
    assert any("Amazon RDS" in s and "Root CA RSA2048 G1" in s for s in subjects)
    assert RDS_CA_BUNDLE.is_file()


def test_loader_reserved_concurrency_is_a_parameter(stack: dict[str, Any]) -> None:
    (loader,) = [
        v
        for v in _of_type(stack, "AWS::Lambda::Function").values()
        if "loader" in str(v["Properties"].get("Handler", ""))
    ]
    rce = loader["Properties"]["ReservedConcurrentExecutions"]
    assert rce == {"Fn::If": ["ReserveLoaderConcurrency", {"Ref": "LoaderReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    template = load_template()
    for value, expected in ((1, 1), (0, None)):
        r = Resolver(template, parameters={**DEPLOY_PARAMETERS, "LoaderReservedConcurrency": value})
        resolved = r.resolve(template["Resources"]["LoaderFunction"]["Properties"]["ReservedConcurrentExecutions"])
        assert (resolved if isinstance(resolved, int) else None) == expected


def test_stuck_runnable_training_jobs_are_cancelled(stack: dict[str, Any]) -> None:
    (queue,) = _of_type(stack, "AWS::Batch::JobQueue").values()
    actions = queue["Properties"]["JobStateTimeLimitActions"]
    assert all(a["State"] == "RUNNABLE" and a["Action"] == "CANCEL" for a in actions)
    reasons = {a["Reason"] for a in actions}
    assert reasons == {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    }
    param = stack["Parameters"]["RunnableTimeoutSeconds"]
    assert param["MinValue"] >= 600 and param["MaxValue"] <= 86400  # Batch's bounds for maxTimeSeconds


def test_failed_async_invocations_go_to_an_alarmed_queue(stack: dict[str, Any]) -> None:
    configs = _of_type(stack, "AWS::Lambda::EventInvokeConfig")
    by_function = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"] for c in configs.values()}
    assert set(by_function) == {"LoaderFunction", "RetrainFunction", "EventsExportFunction"}
    (queue_id,) = _of_type(stack, "AWS::SQS::Queue")
    for fn, props in by_function.items():
        assert props["MaximumRetryAttempts"] == 2
        dest = props["DestinationConfig"]["OnFailure"]["Destination"]
        assert dest == {"Fn::GetAtt": [queue_id, "Arn"]}, fn
        # SAM grants the function's role the right to send there
        role = stack["Resources"][f"{fn}Role"]["Properties"]
        policies = str(role.get("Policies", []))
        assert "sqs:SendMessage" in policies and queue_id in policies, fn
    alarms = _of_type(stack, "AWS::CloudWatch::Alarm").values()
    on_queue = [
        a
        for a in alarms
        if a["Properties"]["Namespace"] == "AWS/SQS"
        and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue_id, "QueueName"]}
    ]
    assert on_queue and on_queue[0]["Properties"]["Threshold"] == 0


def test_bucket_is_retained_except_when_its_creation_rolls_back(stack: dict[str, Any]) -> None:
    (bucket,) = _of_type(stack, "AWS::S3::Bucket").values()
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    assert bucket["UpdateReplacePolicy"] == "Retain"


def test_milvus_collections_fit_a_zilliz_free_cluster_by_default(stack: dict[str, Any]) -> None:
    """Collections in use = live + loading + GRAPHREC_KEEP_RUNS retired; a Zilliz Cloud free cluster allows 5."""
    keep = int(stack["Parameters"]["KeepRuns"]["Default"])
    assert keep + 2 < 5  # one spare: a partial collection kept for a retry after a transient failure
    env = stack["Resources"]["LoaderFunction"]["Properties"]["Environment"]["Variables"]
    assert env["GRAPHREC_KEEP_RUNS"] == {"Ref": "KeepRuns"}


PERSON_ROUTES = {
    "get /users/me",
    "delete /users/me",
    "post /events",
    "get /users/me/events",
    "get /users/me/recommendations",
    "post /auth/sign-out",
}


def test_person_routes_need_a_cognito_token_checked_by_api_gateway(stack: dict[str, Any]) -> None:
    """Issue 13: API Gateway's JWT authorizer (the Cognito pool's issuer, the web client as audience) guards
    every route that reads or writes a person's data, and the function is told to trust only its claims."""
    (api,) = _of_type(stack, "AWS::ApiGatewayV2::Api").values()
    body = api["Properties"]["Body"]
    schemes = body["components"]["securitySchemes"]
    jwt = schemes["CognitoJwt"]["x-amazon-apigateway-authorizer"]
    assert jwt["type"] == "jwt" and jwt["identitySource"] == "$request.header.Authorization"
    assert jwt["jwtConfiguration"]["audience"] == [{"Ref": "UserPoolWebClient"}]
    assert "UserPool" in str(jwt["jwtConfiguration"]["issuer"])
    guarded = {
        f"{method} {path}"
        for path, ops in body["paths"].items()
        for method, op in ops.items()
        if any("CognitoJwt" in sec for sec in op.get("security", []))
    }
    assert guarded == PERSON_ROUTES
    (client,) = _of_type(stack, "AWS::Cognito::UserPoolClient").values()
    assert client["Properties"]["GenerateSecret"] is False
    env = stack["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert next(v for k, v in env.items() if k.endswith("GRAPHREC_AUTH_MODE")) == "cognito"
