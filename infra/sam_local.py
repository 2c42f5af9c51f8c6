"""`sam local invoke` without Docker: run a template.yaml function in this Python, the way Lambda would.

Reads the function's Handler and its resolved Environment from template.yaml, lets variables already set
in your shell (e.g. from `eval "$(bash infra/local_cloud.sh --quiet)"`) or `--env K=V` override them,
imports the handler and calls it with the event file and a Lambda-like context; prints the JSON result.

    python -m infra.sam_local invoke LoaderFunction -e events/loader_s3_manifest.json
    python -m infra.sam_local invoke ApiFunction -e events/api_health.json
    python -m infra.sam_local list

`generate-event s3` writes an S3 put notification for a real bucket/key (what `sam local generate-event s3 put`
does), so a run the training job just wrote can be loaded:

    python -m infra.sam_local generate-event s3 --bucket graphrec-local --key runs/<run_id>/manifest.json \
      | python -m infra.sam_local invoke LoaderFunction -e -
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.sam_template import REPO_ROOT, FunctionSpec, functions

S3_EVENT_TEMPLATE = REPO_ROOT / "events" / "loader_s3_manifest.json"


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 128
    timeout_seconds: int = 30
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))

    @classmethod
    def for_function(cls, spec: FunctionSpec) -> LambdaContext:
        return cls(
            function_name=spec.logical_id, memory_limit_in_mb=spec.memory_size, timeout_seconds=spec.timeout
        )


def lambda_env(spec: FunctionSpec, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's environment for `spec`, with `overrides` replacing same-named variables."""
    env = dict(spec.environment)
    env["AWS_LAMBDA_FUNCTION_NAME"] = spec.logical_id
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(spec.memory_size)
    env.update(overrides or {})
    return env


def load_handler(spec: FunctionSpec) -> Callable[[dict[str, Any], Any], Any]:
    """Import `module.attribute` from the Handler string (the staged CodeUri holds the same packages)."""
    module = importlib.import_module(spec.module)
    fn = getattr(module, spec.attribute)
    if not callable(fn):
        raise TypeError(f"{spec.handler} is not callable")
    return fn  # type: ignore[no-any-return]


def s3_put_event(
    bucket: str, key: str, size: int = 1024, etag: str = "0123456789abcdef0123456789abcdef"
) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification for bucket/key, shaped like events/loader_s3_manifest.json.

    The key is URL-encoded the way S3 encodes it in notifications (handlers decode it)."""
    event: dict[str, Any] = json.loads(S3_EVENT_TEMPLATE.read_text())
    rec = event["Records"][0]["s3"]
    rec["bucket"]["name"] = bucket
    rec["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    rec["object"].update({"key": urllib.parse.quote_plus(key, safe="/"), "size": size, "eTag": etag})
    return event


def _read_event(path: Path) -> Any:
    return json.loads(sys.stdin.read() if str(path) == "-" else path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    inv = sub.add_parser("invoke", help="invoke one function with an event file")
    inv.add_argument("function", help="logical id in template.yaml, e.g. LoaderFunction")
    inv.add_argument("-e", "--event", type=Path, required=True, help="event JSON (see events/), - for stdin")
    inv.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="override an environment variable"
    )
    inv.add_argument("--param", action="append", default=[], metavar="K=V", help="template parameter value")
    sub.add_parser("list", help="list functions with handler and environment")
    gen = sub.add_parser("generate-event", help="print a sample event (like `sam local generate-event`)")
    gen.add_argument("service", choices=["s3"])
    gen.add_argument("--bucket", required=True)
    gen.add_argument("--key", required=True)
    args = parser.parse_args(argv)

    if args.cmd == "generate-event":
        print(json.dumps(s3_put_event(args.bucket, args.key), indent=2))
        return 0

    if args.cmd == "list":
        for spec in functions().values():
            print(f"{spec.logical_id}: {spec.handler} ({spec.code_uri}) env={sorted(spec.environment)}")
        return 0
    params = dict(p.split("=", 1) for p in args.param)
    specs = functions(parameters=params)
    if args.function not in specs:
        parser.error(f"unknown function {args.function}; one of {sorted(specs)}")
    spec = specs[args.function]
    shell = {k: os.environ[k] for k in spec.environment if k in os.environ}
    env = lambda_env(spec, {**shell, **dict(e.split("=", 1) for e in args.env)})
    os.environ.update(env)
    result = load_handler(spec)(_read_event(args.event), LambdaContext.for_function(spec))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
