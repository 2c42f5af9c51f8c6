"""Unit tests stand alone: shared helpers live in tests/helpers/, never in an integration module."""

from __future__ import annotations

import re
from pathlib import Path

UNIT = Path(__file__).resolve().parent


def test_unit_tests_do_not_import_integration_modules() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+tests\.(integration|browser)\b", re.MULTILINE)
    offenders = sorted(str(p.relative_to(UNIT)) for p in UNIT.rglob("*.py") if pattern.search(p.read_text()))
    assert not offenders, f"unit tests importing integration/browser modules (move the helper to tests/helpers/): {offenders}"
