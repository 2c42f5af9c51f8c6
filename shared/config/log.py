"""Structured JSON logging (Powertools Logger) shared by the handlers, the loader and the training job.

Why Powertools: one JSON line per event with service name, level, correlation id and Lambda context,
which CloudWatch Logs Insights can query; it also works outside Lambda (CLI, tests).

Every module logs through `logger = get_logger(__name__)`: a Powertools child logger named
`<service>.<module>` (what `Logger(child=True)` names it when a module creates it itself), so each line's
`name` field says which module wrote it and a module's level can be set with the standard `logging` API.
The children share their parent's handler and formatter, the one service logger per process.

One call style: structured fields go in `extra={...}` (`logger.info("run loaded", extra={"run_id": ...})`),
never as keyword arguments; tests/unit/shared/test_logging.py keeps it so.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config.names import ENV_PREFIX

LOCATION = "%(module)s.%(funcName)s:%(lineno)d"



class LogSettings(BaseSettings):
    """The two settings logging needs, declared here so that this module needs nothing of settings.py
    (which logs, through shared/config/env.py, about renamed variables): Settings inherits them, so they are
    read, documented and overridden like every other setting. Only their deprecated unprefixed spelling
    (LOG_LEVEL) is not honoured for the loggers themselves."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True
    )

    log_level: str = Field(default="INFO", description="Level of the JSON logs (DEBUG, INFO, WARNING, ERROR).")
    # A standard name (validation_alias, no prefix): Powertools reads this variable itself.
    powertools_service_name: str = Field(
        default="graphrec",
        validation_alias="POWERTOOLS_SERVICE_NAME",
        description="`service` field of every JSON log line (Powertools Logger).",
    )


_service: Logger | None = None
_loggers: dict[str, Logger] = {}


class _ModuleLogger(Logger):
    """A Powertools child logger named after the module given, not after the frame that created it."""

    def __init__(self, module: str, **kwargs: Any) -> None:
        self._module = module
        super().__init__(child=True, **kwargs)

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger(f"{self.service}.{self._module}")


def get_logger(name: str) -> Logger:
    """The logger of module `name` (pass `__name__`): a child of the process-wide service logger."""
    global _service
    logger = _loggers.get(name)
    if logger is None:
        settings = LogSettings()  # loggers are made at import time, before anyone asks for the settings
        if _service is None:
            _service = Logger(
                service=settings.powertools_service_name, level=settings.log_level, location=LOCATION,
                name="%(name)s",
            )  # fmt: skip
        # The service logger's handler, given explicitly: a package's own logger (a nearer stdlib parent)
        # must not hide it from registered_handler / append_keys.
        child = _ModuleLogger(
            name, service=_service.service, level=settings.log_level, logger_handler=_service.registered_handler
        )
        logger = _loggers.setdefault(name, child)
    return logger


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (test capture swaps it; a stale stream may be closed)."""

    def write(self, text: str) -> int:
        import sys

        return sys.stderr.write(text)

    def flush(self) -> None:
        import sys

        sys.stderr.flush()


def log_to_stderr() -> None:
    """Send every logger's lines to stderr (CLIs whose stdout carries their result, e.g. the loader's JSON)."""
    if _service is not None:
        handler = getattr(_service, "registered_handler", None)
        if handler is not None and hasattr(handler, "setStream"):
            handler.setStream(_CurrentStderr())
