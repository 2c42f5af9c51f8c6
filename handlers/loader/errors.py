"""Loader failures that retrying cannot fix, and how to tell a store's "bad value" error from an outage."""

from __future__ import annotations

import sys


class LoadError(RuntimeError):
    """A run cannot be loaded for a reason that retrying will not fix (bad data, inconsistent counts)."""


class RunTooSmall(LoadError):
    """The run is drastically smaller than the live one: loading it needs an explicit --force."""


def is_bad_data(exc: BaseException) -> bool:
    """Errors a store raises for values it cannot hold (too long, out of range, duplicate key, invalid
    parameter): retrying the same run can never succeed, so they are permanent failures."""
    pymysql = sys.modules.get("pymysql")
    if pymysql is not None and isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError):
        return True
    exceptions = sys.modules.get("pymilvus.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.ParamError | exceptions.DataTypeNotMatchException)
