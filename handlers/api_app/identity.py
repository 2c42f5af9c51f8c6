"""Who is calling: a signed-in person's subject from a Cognito JWT (deployed) or a development token (local).

Deployed (`GRAPHREC_AUTH_MODE=cognito`): API Gateway's JWT authorizer has already checked the token's signature,
issuer, audience and expiry on the routes that need a person (template.yaml); the API reads the verified
claims Mangum passes along in `scope["aws.event"]`. A client cannot forge them: they come from API Gateway,
not from the request. A request without them on such a route is a 401.

Local (`GRAPHREC_AUTH_MODE=dev`): POST /auth/dev/sign-in hands out `dev.<payload>.<hmac>` tokens signed with
GRAPHREC_DEV_AUTH_SECRET (or a random per-process key). Settings refuses dev mode inside Lambda, so a deployed stack
cannot be switched to it. Why hand-rolled HMAC instead of a JWT library: nothing but this process ever reads
these tokens, and the API package stays free of another dependency; the comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from handlers.api_app.errors import ApiError
from shared.config.settings import Settings, get_settings
from shared.stores.mysql.people import clean_name

DEV_TOKEN_SECONDS = 12 * 3600
_BEARER = re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE)


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


@dataclass(frozen=True)
class Caller:
    """A verified person: `subject` is unique per identity provider (prefixed with it)."""

    subject: str
    name: str | None
    issued_at: float | None = None  # Unix seconds the person authenticated (auth_time) or the token was issued (iat)


_PROCESS_KEY = secrets.token_bytes(32)  # used when GRAPHREC_DEV_AUTH_SECRET is unset


def _dev_key(settings: Settings) -> bytes:
    secret = settings.dev_auth_secret
    return secret.get_secret_value().encode() if secret else _PROCESS_KEY


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_dev_token(settings: Settings, caller: Caller, now: float | None = None) -> str:
    """`iat` to the microsecond (a sign-in right after a sign-out must not look older than it)."""
    at = now or time.time()
    claims = {"sub": caller.subject, "name": caller.name, "iat": at, "exp": int(at + DEV_TOKEN_SECONDS)}
    payload = _b64(json.dumps(claims).encode())
    sig = _b64(hmac.new(_dev_key(settings), payload.encode(), hashlib.sha256).digest())
    return f"dev.{payload}.{sig}"


def _verify_dev_token(settings: Settings, token: str) -> Caller:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "dev":
        raise Unauthorized("The bearer token is not a development sign-in token; sign in again.")
    expected = _b64(hmac.new(_dev_key(settings), parts[1].encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, parts[2]):
        raise Unauthorized("The sign-in token is not valid here (the server may have restarted); sign in again.")
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise Unauthorized("The sign-in token is malformed; sign in again.") from exc
    if int(claims.get("exp", 0)) < time.time():
        raise Unauthorized("The sign-in token has expired; sign in again.")
    iat = claims.get("iat")
    return Caller(subject=str(claims["sub"]), name=claims.get("name"), issued_at=_seconds(iat))


def _seconds(value: Any) -> float | None:
    """A numeric claim (JSON number or, from API Gateway, a string) as float seconds; None when absent/bad."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _cognito_caller(request: Request) -> Caller | None:
    event: dict[str, Any] = request.scope.get("aws.event") or {}
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    sub = claims.get("sub")
    if not sub:
        return None
    name = claims.get("email") or claims.get("cognito:username") or claims.get("username")
    # auth_time (when the person signed in; ID tokens refreshed later keep it) before iat: a sign-out or
    # forget-me then also refuses tokens refreshed from the old sign-in.
    issued = _seconds(claims.get("auth_time")) or _seconds(claims.get("iat"))
    return Caller(subject=f"cognito:{sub}", name=clean_name(str(name)) if name else None, issued_at=issued)


def caller_of(request: Request, settings: Settings) -> Caller | None:
    """The signed-in person, None when the request carries no identity; 401 for a bad dev token."""
    if settings.auth_mode == "cognito":
        return _cognito_caller(request)
    header = request.headers.get("authorization")
    if not header:
        return None
    match = _BEARER.match(header.strip())
    if match is None:
        raise Unauthorized("Send the sign-in token as 'Authorization: Bearer <token>'.")
    return _verify_dev_token(settings, match.group(1))


async def optional_caller_dep(request: Request) -> Caller | None:
    return caller_of(request, get_settings())


async def caller_dep(request: Request) -> Caller:
    caller = caller_of(request, get_settings())
    if caller is None:
        raise Unauthorized("Sign in first: this needs a signed-in person (Authorization: Bearer <token>).")
    return caller


CallerDep = Annotated[Caller, Depends(caller_dep)]
OptionalCallerDep = Annotated[Caller | None, Depends(optional_caller_dep)]
