"""Settings come from the environment at call time, and secrets can come from Secrets Manager."""

from __future__ import annotations

import json

import boto3
import pytest

from shared.settings import clear_settings_cache, get_settings


def test_environment_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("MYSQL_PASSWORD", "hunter2")
    clear_settings_cache()
    s = get_settings()
    assert s.milvus_uri == "http://milvus:19530"
    assert s.cors_origin_list == ["https://a.example", "https://b.example"]
    assert "hunter2" not in repr(s) and s.resolved_mysql()["password"] == "hunter2"


def test_mysql_credentials_from_secrets_manager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = {"host": "db.internal", "port": 3307, "username": "app", "password": "s3cr3t", "dbname": "recs"}
    arn = boto3.client("secretsmanager").create_secret(Name="graphrec/mysql", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.setenv("MYSQL_SECRET_ARN", arn)
    clear_settings_cache()
    s = get_settings()
    conf = s.resolved_mysql()
    assert conf == {"host": "db.internal", "port": 3307, "user": "app", "password": "s3cr3t", "database": "recs"}
    assert "s3cr3t" not in repr(s)


def test_milvus_token_from_secrets_manager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="graphrec/milvus", SecretString='{"token": "tok"}')["ARN"]
    monkeypatch.setenv("MILVUS_TOKEN_SECRET_ARN", arn)
    clear_settings_cache()
    assert get_settings().resolved_milvus_token() == "tok"
