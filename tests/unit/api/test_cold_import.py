"""The API Lambda's import stays small: no training/dataframe stacks, and no store clients at import time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ["torch", "dgl", "pandas", "pyarrow", "awswrangler"]


def _modules_after(code: str) -> dict[str, bool]:
    script = f"import json, sys\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY + ['pymilvus', 'pymysql']!r}}}))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_handlers_api_loads_no_heavy_modules() -> None:
    loaded = _modules_after("import handlers.api\nassert callable(handlers.api.handler)")
    assert [m for m in HEAVY if loaded[m]] == []
    # store clients are created on the first request, not at import
    assert not loaded["pymilvus"] and not loaded["pymysql"]


def test_building_the_openapi_schema_loads_no_heavy_modules() -> None:
    loaded = _modules_after("import handlers.api\nhandlers.api.app.openapi()")
    assert [m for m in HEAVY if loaded[m]] == []
