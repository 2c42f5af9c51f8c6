"""Settings come from the environment at call time, and secrets can come from Secrets Manager."""

from __future__ import annotations

import json

import boto3
import pytest
from pydantic import Field, ValidationError

from shared.config.settings import Settings, clear_settings_cache, env_var, get_settings, renamed_variables
from tests.helpers.logs import json_log_lines


def test_environment_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHREC_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("GRAPHREC_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("GRAPHREC_MYSQL_PASSWORD", "hunter2")
    clear_settings_cache()
    s = get_settings()
    assert s.milvus_uri == "http://milvus:19530"
    assert s.cors_origin_list == ["https://a.example", "https://b.example"]
    assert "hunter2" not in repr(s) and s.resolved_mysql()["password"] == "hunter2"


def test_mysql_credentials_from_secrets_manager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = {"host": "db.internal", "port": 3307, "username": "app", "password": "s3cr3t", "dbname": "recs"}
    arn = boto3.client("secretsmanager").create_secret(Name="graphrec/mysql", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.setenv("GRAPHREC_MYSQL_SECRET_ARN", arn)
    clear_settings_cache()
    s = get_settings()
    conf = s.resolved_mysql()
    assert conf == {"host": "db.internal", "port": 3307, "user": "app", "password": "s3cr3t", "database": "recs"}
    assert "s3cr3t" not in repr(s)


def test_milvus_token_from_secrets_manager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="graphrec/milvus", SecretString='{"token": "tok"}')["ARN"]
    monkeypatch.setenv("GRAPHREC_MILVUS_TOKEN_SECRET_ARN", arn)
    clear_settings_cache()
    assert get_settings().resolved_milvus_token() == "tok"


# ------------------------------------------------------------------ GRAPHREC_ prefix and the old names
def test_old_unprefixed_name_still_works_and_the_new_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAPHREC_MILVUS_URI")  # set by the autouse fixture
    monkeypatch.setenv("MILVUS_URI", "http://old:19530")
    monkeypatch.setenv("KEEP_RUNS", "7")  # parsed as the GRAPHREC_ name would be (an int)
    s = Settings()
    assert (s.milvus_uri, s.keep_runs) == ("http://old:19530", 7)
    monkeypatch.setenv("GRAPHREC_MILVUS_URI", "http://new:19530")
    monkeypatch.setenv("GRAPHREC_KEEP_RUNS", "")  # set, even empty: the new name wins
    monkeypatch.setenv("KEEP_RUNS", "9")
    with pytest.raises(ValidationError, match="keep_runs"):
        Settings()
    monkeypatch.setenv("GRAPHREC_KEEP_RUNS", "2")
    assert (Settings().milvus_uri, Settings().keep_runs) == ("http://new:19530", 2)


def test_standard_names_keep_no_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools and boto3 read these variables themselves: one name for both."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5050")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "svc")
    s = Settings()
    assert (s.aws_endpoint_url, s.powertools_service_name) == ("http://127.0.0.1:5050", "svc")
    assert env_var("aws_endpoint_url") == "AWS_ENDPOINT_URL" and env_var("milvus_uri") == "GRAPHREC_MILVUS_URI"
    assert "AWS_ENDPOINT_URL" not in renamed_variables() and renamed_variables()["MILVUS_URI"] == "GRAPHREC_MILVUS_URI"


def test_a_field_added_later_gets_the_prefix_and_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    class Later(Settings):
        brand_new: int = Field(default=1, description="added after the prefix")

    monkeypatch.setenv("GRAPHREC_BRAND_NEW", "5")
    assert Later().brand_new == 5
    monkeypatch.delenv("GRAPHREC_BRAND_NEW")
    monkeypatch.setenv("BRAND_NEW", "6")
    assert Later().brand_new == 6


def test_each_old_name_is_logged_once_as_deprecated() -> None:
    """In a fresh process (the warning is once per process): one JSON warning per old name, naming the new one;
    an old name shadowed by its new one is reported as ignored."""
    code = "from shared.config.settings import Settings\nfor _ in range(3): Settings()\n"
    env = {"MILVUS_URI": "old.db", "KEEP_RUNS": "4", "MYSQL_HOST": "old-host", "GRAPHREC_MYSQL_HOST": "new-host"}
    lines = json_log_lines(code, env)
    assert [(x["level"], x["message"]) for x in lines] == [
        ("WARNING", "KEEP_RUNS is deprecated: rename it GRAPHREC_KEEP_RUNS"),
        ("WARNING", "MILVUS_URI is deprecated: rename it GRAPHREC_MILVUS_URI"),
        ("WARNING", "MYSQL_HOST is ignored: GRAPHREC_MYSQL_HOST is set"),
    ]
    assert lines[1]["variable"] == "MILVUS_URI" and lines[1]["renamed_to"] == "GRAPHREC_MILVUS_URI"
    assert lines[1]["name"] == "graphrec.shared.config.env"
