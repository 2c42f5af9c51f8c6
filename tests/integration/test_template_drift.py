"""Code and infrastructure cannot drift apart: handlers, settings, routes, events and the training CLI
are checked against template.yaml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from infra import stage_lambdas
from infra.local_cloud import create_batch_resources  # noqa: F401 - imported to prove it stays importable
from infra.sam_template import REPO_ROOT, functions, http_routes, load_template
from shared.config.settings import Settings, env_var

EVENTS = REPO_ROOT / "events"

# Environment variables a function may set that are not Settings fields, with who reads them (none today:
# GRAPHREC_IDEMPOTENCY_TABLE, GRAPHREC_RETRAIN_IDEMPOTENCY_SECONDS, GRAPHREC_TRAINING_MAX_MINUTES,
# POWERTOOLS_SERVICE_NAME are Settings).
DOCUMENTED_EXTRAS: dict[str, str] = {}
# Served locally only. Development sign-in is not even routed by API Gateway (and refused inside Lambda).
FASTAPI_ROUTES_NOT_EXPOSED = {"/docs/oauth2-redirect", "/redoc", "/auth/dev/sign-in"}


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_function_environment_variable_is_a_setting_or_documented_extra() -> None:
    from handlers.retrain import app as retrain

    fields = {env_var(name) for name in Settings.model_fields}  # GRAPHREC_* (or a standard name): no old names
    assert set(retrain.EXTRA_ENV_VARS) <= set(DOCUMENTED_EXTRAS)
    for fn in functions().values():
        unknown = sorted(set(fn.environment) - fields - set(DOCUMENTED_EXTRAS))
        assert not unknown, f"{fn.logical_id} sets {unknown}: not Settings fields nor documented extras"


def test_functions_get_the_settings_they_need() -> None:
    fns = functions()
    for name in ("ApiFunction", "LoaderFunction"):
        env = fns[name].environment
        assert {
            "GRAPHREC_MILVUS_URI",
            "GRAPHREC_MYSQL_SECRET_ARN",
            "GRAPHREC_MYSQL_HOST",
            "GRAPHREC_MYSQL_DATABASE",
            "GRAPHREC_MILVUS_ALIAS",
        } <= set(env)
    assert "GRAPHREC_ARTIFACT_URI" in fns["LoaderFunction"].environment
    retrain_env = fns["RetrainFunction"].environment
    assert {
        "GRAPHREC_TRAINING_JOB_QUEUE",
        "GRAPHREC_TRAINING_JOB_DEFINITION",
        "GRAPHREC_IDEMPOTENCY_TABLE",
        "GRAPHREC_DATA_URI",
        "GRAPHREC_ARTIFACT_URI",
        "GRAPHREC_EVENTS_EXPORT_URI",
    } <= set(retrain_env)
    # the export writes where retraining reads, in the bucket's events/ prefix (not runs/: not a run)
    export_env = fns["EventsExportFunction"].environment
    assert {
        "GRAPHREC_MYSQL_SECRET_ARN",
        "GRAPHREC_MYSQL_HOST",
        "GRAPHREC_MYSQL_DATABASE",
        "GRAPHREC_MYSQL_SSL_MODE",
    } <= set(export_env)
    assert export_env["GRAPHREC_EVENTS_EXPORT_URI"] == retrain_env["GRAPHREC_EVENTS_EXPORT_URI"]
    assert export_env["GRAPHREC_EVENTS_EXPORT_URI"].endswith("/events/events.csv")
    # the values parse as Settings would parse them
    field_of = {env_var(name): name for name in Settings.model_fields}
    for fn in fns.values():
        Settings(**{field_of[k]: v for k, v in fn.environment.items() if k in field_of})


def test_code_uris_are_staged_packages_without_training_dependencies() -> None:
    for fn in functions().values():
        pkg = stage_lambdas.package_for(fn.code_uri)
        names = {stage_lambdas._dist_name(r) for r in stage_lambdas.requirements(pkg)}
        assert not names & stage_lambdas.FORBIDDEN, (fn.logical_id, names & stage_lambdas.FORBIDDEN)
    assert "fastapi" in {
        stage_lambdas._dist_name(r)
        for r in stage_lambdas.requirements(stage_lambdas.PACKAGES["build/lambda/api/"])
    }


_IMPORT_PROBE = """
import importlib, json, sys
before = set(sys.modules)  # interpreter start-up (site, .pth hooks) is not the handler's doing
mod_name, attr = sys.argv[1], sys.argv[2]
mod = importlib.import_module(mod_name)
fn = getattr(mod, attr)
staged = sys.argv[3]
print(json.dumps({
    "callable": callable(fn),
    "file": mod.__file__,
    "modules": sorted({m.split(".")[0] for m, v in list(sys.modules.items())
                       if m not in before and getattr(v, "__file__", None) and "site-packages" in (v.__file__ or "")}),
}))
"""


def _requirement_closure(requirements: list[str]) -> set[str]:
    """Every distribution pip would install for these requirements (as installed in this venv)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            deps = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for d in deps:
            r = Requirement(d)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r)
    return seen


@pytest.mark.parametrize("logical_id", ["ApiFunction", "LoaderFunction", "RetrainFunction", "EventsExportFunction"])
def test_handler_imports_from_its_own_staged_package(logical_id: str, tmp_path: Path) -> None:
    """Stage the CodeUri as `sam build` would see it, import the Handler from there in a fresh interpreter,
    and check every third-party module it pulls in is covered by that package's requirements.txt."""
    fn = functions()[logical_id]
    pkg = stage_lambdas.package_for(fn.code_uri)
    staged = stage_lambdas.stage(pkg, dest_root=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GRAPHREC_", "MYSQL_", "MILVUS_"))}
    env.update(fn.environment)
    env.update({"PYTHONPATH": str(staged), "AWS_DEFAULT_REGION": "us-east-1", "DGLBACKEND": "pytorch"})
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, fn.module, fn.attribute, str(staged)],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{fn.handler} does not import from {fn.code_uri}:\n{proc.stderr[-3000:]}"
    probe: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert probe["callable"], f"{fn.handler} is not callable"
    assert probe["file"].startswith(str(staged)), probe["file"]
    allowed = _requirement_closure(stage_lambdas.requirements(pkg)) | stage_lambdas.RUNTIME_PROVIDED
    allowed |= _requirement_closure(sorted(stage_lambdas.RUNTIME_PROVIDED))
    dists = metadata.packages_distributions()
    missing = {}
    for module in probe["modules"]:
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        if owners and not owners & allowed:
            missing[module] = sorted(owners)
    assert not missing, f"{logical_id} imports modules its package does not install: {missing}"


def _app_routes(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    """(METHOD, path) of every route, walking included routers (newer FastAPI nests them)."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out |= _app_routes(inner.routes, prefix + route.include_context.prefix)
            continue
        path = getattr(route, "path", None)
        if path is None or prefix + path in FASTAPI_ROUTES_NOT_EXPOSED:
            continue
        for m in (getattr(route, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"}:
            out.add((m, _norm(prefix + path)))
    return out


def test_api_routes_in_template_match_the_fastapi_app() -> None:
    from handlers.api import app

    app_routes = _app_routes(list(app.routes))
    assert ("GET", "/health") in app_routes
    template_routes = {(m, _norm(p)) for fn, m, p, _ in http_routes() if fn == "ApiFunction"}
    assert app_routes - template_routes == set(), "FastAPI routes the HTTP API does not route"
    assert template_routes - app_routes == set(), "template routes no FastAPI route answers"


def test_sample_events_target_real_routes_and_triggers() -> None:
    routes = {(m, p) for _, m, p, _ in http_routes()}
    template = load_template()
    fns = functions(template)
    s3_filters = []
    for fn in fns.values():
        for ev in fn.events.values():
            if ev["Type"] == "S3":
                rules = {r["Name"]: r["Value"] for r in ev["Properties"]["Filter"]["S3Key"]["Rules"]}
                s3_filters.append((fn.logical_id, rules["prefix"], rules["suffix"]))
    files = sorted(EVENTS.glob("*.json"))
    assert len(files) >= 10
    seen_functions = set()
    for path in files:
        event = json.loads(path.read_text())
        if "routeKey" in event:
            method, route_path = event["routeKey"].split(" ", 1)
            assert (method, route_path) in routes, f"{path.name}: {event['routeKey']} is not a template route"
            assert event["requestContext"]["http"]["method"] == method
            owner = next(fn for fn, m, p, _ in http_routes() if (m, p) == (method, route_path))
        elif "Records" in event:
            key = event["Records"][0]["s3"]["object"]["key"]
            owners = [fn for fn, pre, suf in s3_filters if key.startswith(pre) and key.endswith(suf)]
            assert len(owners) == 1, f"{path.name}: key {key} matches {owners}"
            owner = owners[0]
        else:
            assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
            scheduled = [
                fn.logical_id
                for fn in fns.values()
                if any(e["Type"] == "Schedule" for e in fn.events.values())
                and path.name.split("_")[0] in fn.logical_id.lower()
            ]
            assert len(scheduled) == 1, f"{path.name}: no single scheduled function named like it ({scheduled})"
            owner = scheduled[0]
        assert path.name.split("_")[0] in owner.lower(), f"{path.name} should be named after {owner}"
        seen_functions.add(owner)
    assert seen_functions == set(fns), "every function has at least one sample event"


def test_training_job_definition_matches_the_training_cli() -> None:
    """Every `--flag Ref::param` of the Batch command is a flag of `python -m training_job train`, and every
    Ref:: parameter is one the retrain handler passes (with the template's environment) and the job
    definition defaults."""
    from handlers.retrain.app import RetrainRequest, resolve_request
    from shared.config.settings import clear_settings_cache

    retrain_env = functions()["RetrainFunction"].environment
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in retrain_env.items():
                mp.setenv(key, value)
            clear_settings_cache()
            passed = set(resolve_request(RetrainRequest()))
            mp.delenv("GRAPHREC_EVENTS_EXPORT_URI")
            clear_settings_cache()
            without_export = set(resolve_request(RetrainRequest()))
    finally:
        clear_settings_cache()
    assert passed - without_export == {"events_uri"}  # passed only when GRAPHREC_EVENTS_EXPORT_URI is set

    jd = load_template()["Resources"]["TrainingJobDefinition"]["Properties"]
    command = jd["ContainerProperties"]["Command"]
    assert command[:4] == ["python", "-m", "training_job", "train"]
    refs = {
        command[i + 1][len("Ref::") :]: command[i]
        for i in range(4, len(command) - 1)
        if command[i + 1].startswith("Ref::")
    }
    assert set(refs) == set(jd["Parameters"]) == passed
    proc = subprocess.run(
        [sys.executable, "-m", "training_job", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "DGLBACKEND": "pytorch"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    flags = [t for t in command[4:] if t.startswith("--")]
    assert set(refs.values()) <= set(flags)
    for flag in flags:
        assert re.search(rf"(^|\s|\[){re.escape(flag)}\b", proc.stdout), f"training CLI has no {flag}"
    # the job reserves a GPU, so it must train on it (the CLI's default device is cpu)
    assert {"Type": "GPU", "Value": "1"} in jd["ContainerProperties"]["ResourceRequirements"]
    assert command[command.index("--device") + 1] == "cuda"
    # the local/moto job definition used by infra/local_cloud.py runs the same command
    import inspect

    from infra import local_cloud

    src = inspect.getsource(local_cloud.create_batch_resources)
    for token in command:
        assert f'"{token}"' in src, f"infra/local_cloud.py job definition lacks {token!r}"
