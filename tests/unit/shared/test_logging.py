"""One logging style: every module's logger is `logger = get_logger(__name__)` (a Powertools child logger
named after the module) and structured fields go in `extra={...}`, never as keyword arguments."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.logs import json_log_lines

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("handlers", "shared", "training_job")
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
NOT_FIELDS = {"extra", "exc_info", "stack_info", "stacklevel"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(p.relative_to(ROOT)), ast.parse(p.read_text(), str(p)))
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
    ]


def test_every_module_logs_through_get_logger_of_its_name() -> None:
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_logger":
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Name) and arg.id == "__name__"):
                    offenders.append(f"{path}:{node.lineno} get_logger({ast.unparse(arg) if arg else ''})")
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "get_logger"
                and ast.unparse(node.targets[0]) != "logger"
            ):
                offenders.append(f"{path}:{node.lineno} {ast.unparse(node.targets[0])} = get_logger(...)")
    assert not offenders, f"use `logger = get_logger(__name__)`: {offenders}"


def test_structured_fields_go_in_extra() -> None:
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
            ):
                fields = [k.arg for k in node.keywords if k.arg not in NOT_FIELDS]
                if fields:
                    offenders.append(f"{path}:{node.lineno} {fields}")
    assert not offenders, f"pass log fields as extra={{...}}, not keyword arguments: {offenders}"


def test_each_line_names_its_module_and_levels_are_per_module() -> None:
    code = """
import logging
from shared.config.log import get_logger
a = get_logger("handlers.loader.run")
b = get_logger("training_job.model.fit")
assert get_logger("handlers.loader.run") is a
a.info("loaded", extra={"run_id": "r1"})
logging.getLogger("graphrec.training_job.model.fit").setLevel("ERROR")
b.warning("filtered out by its module's level")
a.warning("still shown")
"""
    lines = json_log_lines(code, {"POWERTOOLS_SERVICE_NAME": "graphrec"})
    assert [(x["name"], x["message"]) for x in lines] == [
        ("graphrec.handlers.loader.run", "loaded"),
        ("graphrec.handlers.loader.run", "still shown"),
    ]
    assert lines[0]["run_id"] == "r1" and lines[0]["service"] == "graphrec"
