"""Development sign-in can never be switched on inside Lambda (issue 13)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config.settings import Settings


def test_dev_sign_in_is_refused_inside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "graphrec-prod-ApiFunction")
    monkeypatch.setenv("GRAPHREC_AUTH_MODE", "dev")
    with pytest.raises(ValidationError, match="cannot be enabled inside AWS Lambda"):
        Settings()
    monkeypatch.setenv("GRAPHREC_AUTH_MODE", "cognito")
    assert Settings().auth_mode == "cognito"


def test_dev_sign_in_works_outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("GRAPHREC_AUTH_MODE", "dev")
    assert Settings().auth_mode == "dev"
    monkeypatch.delenv("GRAPHREC_AUTH_MODE")
    assert Settings().auth_mode == "cognito"  # the safe default
