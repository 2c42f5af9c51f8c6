"""Structured JSON logging (Powertools Logger) shared by the handlers, the loader and the training job.

Why Powertools: one JSON line per event with service name, level, correlation id and Lambda context,
which CloudWatch Logs Insights can query; it also works outside Lambda (CLI, tests).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

_loggers: dict[str, Logger] = {}


# Powertools loggers of one service share a single stdlib logger and formatter, so a per-name extra key
# would show whichever name registered first. The module is taken from each record instead.
LOCATION = "%(module)s.%(funcName)s:%(lineno)d"


def get_logger(name: str) -> Logger:
    """Return a process-wide Powertools logger; `name` only keys the cache (records carry their module)."""
    if name not in _loggers:
        from shared.settings import Settings

        settings = Settings()  # not the cached get_settings(): loggers are made at import time
        _loggers[name] = Logger(service=settings.powertools_service_name, level=settings.log_level, location=LOCATION)
    return _loggers[name]


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
    for logger in _loggers.values():
        handler = getattr(logger, "registered_handler", None)
        if handler is not None and hasattr(handler, "setStream"):
            handler.setStream(_CurrentStderr())
