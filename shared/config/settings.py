"""One settings object for every component, read from the environment.

Read through the cached `get_settings()` rather than at import time, so tests (and Lambda) can set the
environment first. Secrets (MySQL password, Milvus token) may come from AWS Secrets Manager when
`GRAPHREC_MYSQL_SECRET_ARN` / `GRAPHREC_MILVUS_TOKEN_SECRET_ARN` are set; they are fetched once per container.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.config import env
from shared.config.env import RenamedVariables
from shared.config.log import LogSettings
from shared.config.names import ENV_PREFIX, LIVE_ALIAS
from shared.errors import StoreUnavailable

LOCAL_DIR = Path(".local")
# Amazon RDS / Aurora CA certificates (scripts/update_rds_ca.sh), shipped inside every Lambda package.
RDS_CA_BUNDLE = Path(__file__).resolve().parents[1] / "certs" / "rds-ca-bundle.pem"


class Settings(LogSettings):
    """Environment variables: GRAPHREC_<FIELD NAME>, or the field's `validation_alias` (a standard name that
    other software reads too: AWS_ENDPOINT_URL, POWERTOOLS_SERVICE_NAME, ...). shared/config/env.py maps
    names; the names before the prefix (MILVUS_URI, ...) still work there, deprecated (RenamedVariables).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: the GRAPHREC_ names over the old ones.
        return init_settings, env_settings, RenamedVariables(settings_cls), dotenv_settings, file_secret_settings

    # --- object storage -------------------------------------------------------------------
    artifact_uri: str = Field(
        default=str(LOCAL_DIR / "runs"),
        description="Where training runs are written/read: a local folder or s3://bucket/prefix; also the retrain "
        "default `output_uri`.",
    )
    data_uri: str = Field(
        default=str(LOCAL_DIR / "data" / "ml-1m"),
        description="Where MovieLens-format ratings data lives (folder, ml-1m.zip or s3:// prefix); the retrain "
        "default `data_uri`.",
    )

    # --- Milvus ---------------------------------------------------------------------------
    milvus_uri: str = Field(
        default=str(LOCAL_DIR / "milvus.db"),
        description="Milvus Lite file path, or http(s)://host:19530 / Zilliz Cloud endpoint.",
    )
    milvus_token: SecretStr | None = Field(
        default=None,
        description="Milvus/Zilliz token (user:password or API key). Local use; deployed stacks use the secret.",
    )
    milvus_token_secret_arn: str | None = Field(
        default=None, description='Secrets Manager ARN of {"token": "..."}; wins over GRAPHREC_MILVUS_TOKEN.'
    )
    milvus_alias: str = Field(default=LIVE_ALIAS, description="Milvus alias that names the live run's collection (switched atomically on load).")
    milvus_timeout: float = Field(
        default=3.0, gt=0, description="gRPC deadline of every serving-side Milvus call (ping, count, get, search, load) and of the "
        "first connection to a server.",
    )

    # --- MySQL ----------------------------------------------------------------------------
    mysql_host: str = Field(default="127.0.0.1", description="MySQL host, used when the secret has no `host`.")
    mysql_port: int = Field(default=3306, description="MySQL port (the secret's `port` wins).")
    mysql_user: str = Field(default="root", description="MySQL user when no secret is configured.")
    mysql_password: SecretStr = Field(
        default=SecretStr(""), description="MySQL password when no secret is configured (never set in the template)."
    )
    mysql_database: str = Field(
        default="graphrec",
        description="Database name (the secret's `dbname` wins); must exist, tables are created on first load.",
    )
    mysql_secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager ARN of an RDS-shaped JSON secret (username, password, optional host, port, "
        "dbname); its values override the MYSQL_* variables.",
    )
    mysql_ssl_mode: Literal["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"] = Field(
        default="PREFERRED",
        description="TLS to MySQL, as the mysql client's --ssl-mode: DISABLED, PREFERRED (TLS when offered), REQUIRED "
        "(TLS, certificate not checked), VERIFY_CA, VERIFY_IDENTITY (certificate and host name checked against "
        "GRAPHREC_MYSQL_SSL_CA).",
    )
    mysql_ssl_ca: str | None = Field(
        default=None,
        description="PEM CA bundle for VERIFY_*; unset = shared/certs/rds-ca-bundle.pem (every Amazon RDS/Aurora "
        "region CA plus the RDS Proxy roots; scripts/update_rds_ca.sh regenerates it).",
    )
    # Bounded time on every store call (issue 10): the API Lambda times out at 29 s, so a hung store must
    # turn into a JSON 503 long before that. The loader overrides the read/write budget (loader_store_timeout).
    mysql_connect_timeout: float = Field(default=2.0, gt=0, description="Seconds to open a MySQL connection.")
    mysql_read_timeout: float = Field(
        default=3.0, gt=0, description="Seconds one MySQL statement may take: per socket read, and a whole-call watchdog that "
        "closes the socket of a call running longer (a server trickling bytes).",
    )
    mysql_write_timeout: float = Field(default=3.0, gt=0, description="Seconds to send one MySQL statement.")

    # --- loader -----------------------------------------------------------------------------
    keep_runs: int = Field(
        default=3,
        description="Retired runs kept (for --rollback) before their Milvus collection and MySQL rows are dropped.",
    )
    load_batch_size: int = Field(default=5000, description="Rows per insert batch when loading a run.")
    loader_store_timeout: float = Field(
        default=300.0, gt=0, description="The loader's per-statement budget for MySQL and Milvus (bulk writes need more than the "
        "API's few seconds).",
    )
    loader_min_size_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A run with fewer movies/vectors/users than this share of the live run's needs --force.",
    )
    loader_retry_base_seconds: float = Field(
        default=0.5,
        ge=0,
        description="First back-off delay when a store call fails transiently (doubles per attempt, 5 attempts).",
    )
    milvus_bulk_staging_uri: str = Field(
        default="",
        description="s3:// prefix in the bucket your Milvus server imports from; when set (and the target is a "
        "server, not Lite), large runs are loaded with Milvus bulk import instead of row inserts. Not set by the "
        "template; the loader's role would also need write access there.",
    )
    milvus_bulk_min_rows: int = Field(
        default=200_000, description="Minimum vectors in a run before bulk import is used."
    )
    milvus_searchable_timeout: float = Field(
        default=300.0, gt=0, description="How long the loader waits, after flushing a run's vectors, for a Milvus server to "
        "have them indexed, loaded and visible to a search at the collection's (Bounded) consistency before the run may "
        "go live; a run not fully searchable by then fails with a count mismatch.",
    )

    # --- API ------------------------------------------------------------------------------
    cors_origins: str = Field(
        default="http://127.0.0.1:8000,http://localhost:8000",
        description="Comma-separated origins allowed cross-origin; never '*'. The template also gives them to API "
        "Gateway's CORS configuration.",
    )
    live_run_cache_seconds: float = Field(
        default=5.0,
        description="How long an API container caches the live run id; a new run is served at most this long "
        "after it goes live.",
    )
    live_run_stale_seconds: float = Field(
        default=60.0,
        ge=0,
        description="While MySQL cannot be asked, keep serving the last known live run for this long.",
    )
    api_request_timeout: float = Field(
        default=3.5, gt=0, description="Per-request deadline (s): store work still running then is abandoned and the caller gets a "
        "503 with Retry-After.",
    )
    api_max_body_bytes: int = Field(default=65536, gt=0, description="Largest request body accepted (413 above).")
    api_store_threads: int = Field(default=64, gt=0, description="Worker threads for blocking store calls.")
    api_mysql_connections: int = Field(
        default=8, gt=0, description="MySQL connections per API process; a call that finds all busy waits at most "
        "GRAPHREC_MYSQL_READ_TIMEOUT.",
    )
    api_local_index_max: int = Field(
        default=50_000,
        ge=0,
        description="Catalogues up to this many vectors are searched exactly in an in-memory copy inside the API; "
        "larger ones (or 0) are searched in Milvus.",
    )

    # --- people: sign-in and events (issue 13) ---------------------------------------------------
    auth_mode: Literal["cognito", "dev"] = Field(
        default="cognito",
        description="How a person is identified. `cognito`: API Gateway's JWT authorizer checked a Cognito token "
        "and the API reads its claims (the deployed stack). `dev`: development sign-in by name at POST "
        "/auth/dev/sign-in, for local use and tests; refused inside AWS Lambda.",
    )
    dev_auth_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of development sign-in tokens; unset = a random key per process (tokens end "
        "with the process).",
    )
    cognito_hosted_ui_url: str = Field(
        default="", description="Cognito hosted UI base URL the web page signs in with (set by the template)."
    )
    cognito_client_id: str = Field(default="", description="Cognito app client id of the web page (set by the template).")
    events_per_minute: int = Field(
        default=300, gt=0, description="Events one person may send per minute (POST /events answers 429 above)."
    )
    events_realtime_max: int = Field(
        default=500,
        gt=0,
        description="A person's latest events folded into their recommendations at request time (older ones "
        "reach the model through the export and the next training run).",
    )
    aws_lambda_function_name: str | None = Field(
        default=None,
        validation_alias="AWS_LAMBDA_FUNCTION_NAME",
        description="Set by Lambda itself; used only to refuse GRAPHREC_AUTH_MODE=dev inside Lambda.",
    )

    # --- retraining -------------------------------------------------------------------------
    training_job_queue: str = Field(
        default="graphrec-gpu",
        description="Batch job queue (name or ARN) retrain jobs are submitted to; GET /retrain/{id} only reports "
        "jobs on it.",
    )
    training_job_definition: str = Field(
        default="graphrec-train",
        description="Batch job definition. Jobs are submitted by its name (the latest active revision), also when "
        "this is a name:revision or an ARN: a stack update deregisters old revisions.",
    )
    batch_job_queue: str = Field(
        default="graphrec-cpu",
        description="Batch job queue (name or ARN) batch-recommend array jobs and their commit job are submitted to.",
    )
    batch_job_definition: str = Field(
        default="graphrec-batch-recommend",
        description="CPU job definition of `python -m training_job batch-recommend` / `batch-commit`.",
    )
    batch_shards: int = Field(
        default=4, ge=1, le=10000, description="Array size of a batch-recommend job (users split into this many shards)."
    )
    batch_k: int = Field(default=20, ge=1, le=100, description="Movies per user / per movie a batch-recommend run writes.")
    batch_output_uri: str = Field(
        default="",
        description="Where batch-recommend writes `batch/<run_id>/` (s3://bucket/prefix); empty = GRAPHREC_ARTIFACT_URI.",
    )
    batch_glue_database: str = Field(
        default="",
        description="Glue Data Catalog database the batch-recommend tables are registered in; empty = not registered.",
    )
    training_default_epochs: int = Field(
        default=1000,
        description="`epochs` for retrain jobs whose request gives none (the time budget and --patience decide).",
    )
    training_max_minutes: float = Field(
        default=120.0, gt=0, description="`max_minutes` for retrain jobs whose request gives none."
    )
    idempotency_table: str = Field(
        default="graphrec-idempotency",
        description="DynamoDB table of the retrain function's Powertools idempotency records (key `id`, TTL "
        "attribute `expiration`).",
    )
    retrain_idempotency_seconds: int = Field(
        default=3600,
        gt=0,
        description="How long a retrain request/event is remembered: a retry inside this window returns the "
        "first job instead of submitting again.",
    )
    events_export_uri: str = Field(
        default="",
        description="Where the events export writes its snapshot of every interaction event (CSV, overwritten "
        "whole; local file or s3:// object; unset = `events/events.csv` beside GRAPHREC_ARTIFACT_URI). When set, retrain "
        "jobs are given it as `--events-uri`, so training merges the events with the base ratings "
        "(docs/events.md).",
    )

    # --- movie details (issue 13; `python -m training_job enrich`, docs/movie-details.md) -----------
    omdb_api_key: SecretStr | None = Field(
        default=None,
        description="OMDb API key for `python -m training_job enrich`; unset = no lookups (details already cached are "
        "still stored, every other movie shows the placeholder). Never logged.",
    )
    omdb_base_url: str = Field(
        default="https://www.omdbapi.com/",
        description="Base URL of the OMDb API (`?apikey=…&t=TITLE&y=YEAR` is appended); tests point it at a local "
        "imitation.",
    )
    details_cache_uri: str = Field(
        default=str(LOCAL_DIR / "movie-details"),
        description="Folder or s3:// prefix where `enrich` caches looked-up movie details as JSON lines, so a rerun only "
        "asks for movies not yet cached.",
    )

    # --- logging and AWS --------------------------------------------------------------------
    service_name: str = Field(default="graphrec", description="Value of the `service` tag on submitted Batch jobs.")
    # Standard names (validation_alias, no prefix): boto3 reads these variables itself. log_level and
    # powertools_service_name come from LogSettings (shared/config/log.py).
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL",
        description="Send AWS calls to this endpoint (moto, LocalStack); boto3 honours it for every service.",
    )
    aws_endpoint_url_s3: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL_S3",
        description="Endpoint for S3 only (run folders, training data); overrides AWS_ENDPOINT_URL.",
    )

    @model_validator(mode="after")
    def _no_dev_sign_in_in_lambda(self) -> Settings:
        if self.auth_mode == "dev" and self.aws_lambda_function_name:
            raise ValueError(
                "GRAPHREC_AUTH_MODE=dev (development sign-in) cannot be enabled inside AWS Lambda "
                f"(function {self.aws_lambda_function_name}); deployed stacks sign in with Cognito."
            )
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def mysql_tls(self) -> dict[str, Any]:
        """pymysql TLS kwargs for mysql_ssl_mode. PREFERRED is pymysql's default (TLS when the server
        offers it); REQUIRED and VERIFY_* refuse a server without TLS; VERIFY_* check its certificate
        against mysql_ssl_ca (default: the Amazon RDS CA bundle in shared/certs/), VERIFY_IDENTITY also
        its host name."""
        import ssl

        mode = self.mysql_ssl_mode
        if mode == "DISABLED":
            return {"ssl_disabled": True}
        if mode == "PREFERRED":
            return {}
        if mode == "REQUIRED":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return {"ssl": ctx}
        ca = self.mysql_ssl_ca or str(RDS_CA_BUNDLE)
        if not Path(ca).is_file():
            raise ValueError(f"GRAPHREC_MYSQL_SSL_CA {ca} is not a file")
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = mode == "VERIFY_IDENTITY"
        return {"ssl": ctx}

    def resolved_mysql(self, *, refresh: bool = False) -> dict[str, Any]:
        """pymysql connect kwargs; pulls credentials from Secrets Manager when an ARN is configured
        (refresh=True fetches the secret again instead of using this container's cached copy)."""
        if refresh and self.mysql_secret_arn:
            _fetch_secret_json.cache_clear()
        conf: dict[str, Any] = {
            "host": self.mysql_host,
            "port": self.mysql_port,
            "user": self.mysql_user,
            "password": self.mysql_password.get_secret_value(),
            "database": self.mysql_database,
        }
        if self.mysql_secret_arn:
            secret = _fetch_secret_json(self.mysql_secret_arn)
            conf["host"] = secret.get("host", conf["host"])
            conf["port"] = int(secret.get("port", conf["port"]))
            conf["user"] = secret.get("username", secret.get("user", conf["user"]))
            conf["password"] = secret.get("password", conf["password"])
            conf["database"] = secret.get("dbname", secret.get("database", conf["database"]))
        return conf | self.mysql_tls()

    def resolved_milvus_token(self) -> str | None:
        if self.milvus_token_secret_arn:
            secret = _fetch_secret_json(self.milvus_token_secret_arn)
            return str(secret.get("token") or secret.get("milvus_token") or "") or None
        return self.milvus_token.get_secret_value() if self.milvus_token else None


# Secrets Manager calls get short timeouts: boto3's defaults (60 s connect, 60 s read, retried) are longer
# than the API function's 29 s timeout, so an in-VPC function without a route to Secrets Manager would
# hang until Lambda kills it instead of answering 503.
SECRETS_CONNECT_TIMEOUT = 2.0
SECRETS_READ_TIMEOUT = 5.0
SECRETS_MAX_ATTEMPTS = 2


@lru_cache(maxsize=8)
def _fetch_secret_json(arn: str) -> dict[str, Any]:
    """Fetch a JSON secret once per container (boto3 honours AWS_ENDPOINT_URL). Unreachable or refused ->
    StoreUnavailable naming the secret and the error class, never the value."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(
        connect_timeout=SECRETS_CONNECT_TIMEOUT,
        read_timeout=SECRETS_READ_TIMEOUT,
        retries={"max_attempts": SECRETS_MAX_ATTEMPTS, "mode": "standard"},
    )
    try:
        value = boto3.client("secretsmanager", config=config).get_secret_value(SecretId=arn)["SecretString"]
    except (BotoCoreError, ClientError) as exc:
        raise StoreUnavailable(f"cannot read secret {arn}: {type(exc).__name__}: {exc}") from exc
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"secret {arn} is not a JSON object")
    return parsed


def env_var(field: str, settings_cls: type[BaseSettings] | None = None) -> str:
    """The environment variable of a Settings field (of `settings_cls`, default Settings)."""
    return env.env_var(field, settings_cls or Settings)


def renamed_variables(settings_cls: type[BaseSettings] | None = None) -> dict[str, str]:
    """Old (unprefixed) name -> GRAPHREC_ name, for every field of `settings_cls` (default Settings)."""
    return env.renamed_variables(settings_cls or Settings)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def clear_settings_cache() -> None:
    """For tests: forget settings and fetched secrets after changing the environment."""
    get_settings.cache_clear()
    _fetch_secret_json.cache_clear()
