"""The JSON log lines a fresh Python process writes: for what happens once per process (deprecation
warnings, logger set-up), which the test process itself has long done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def json_log_lines(code: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """Run `code` in a new interpreter at the repo root with only `env` (plus PATH, PYTHONPATH); its stdout's
    lines, each parsed as JSON. Fails when the process does."""
    full = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]
