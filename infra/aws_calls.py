"""Which AWS API calls each Lambda function's code can make, found by reading the code, and the IAM actions
(on which resources) its role must therefore allow.

Why a static scan: moto does not evaluate IAM, so a call the role does not allow only fails on AWS. Every
function ships the same `shared/` and `handlers/` packages (infra/stage_lambdas.py), so what a function can
call is what its handler *reaches*: the scan starts from the handler module, follows imports inside the two
packages (lazy ones too), builds a call graph by name (module functions exactly, methods by name - an
over-approximation) and collects the boto3 client calls on the way: `boto3.client("batch").submit_job`,
a client returned by a factory (`s3_client().get_object`), `get_paginator("list_objects_v2")`, and a
client handed to a library (Powertools' DynamoDB idempotency layer). `CALLS` below says, per function, which
IAM action each call needs on which resource; tests/integration/test_iam_calls.py checks that the scan and
`CALLS` agree, that the function's role (from the SAM-transformed template) allows each action on that
resource, and that docs/iam.md shows `python -m infra.aws_calls --table`.

    python -m infra.aws_calls            # per function: the calls found, and where
    python -m infra.aws_calls --table    # the markdown table of docs/iam.md
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from infra.sam_template import REPO_ROOT

PACKAGES = ("shared", "handlers")  # what infra/stage_lambdas.py ships in every function
HANDLERS = {
    "ApiFunction": "handlers.api",
    "LoaderFunction": "handlers.loader",
    "RetrainFunction": "handlers.retrain.app",
    "EventsExportFunction": "handlers.events_export.app",
}
# Libraries handed a boto3 client: the calls they make with it (read from their source).
LIBRARY_CALLS: dict[str, tuple[str, ...]] = {
    # aws_lambda_powertools/utilities/idempotency/persistence/dynamodb.py
    "DynamoDBPersistenceLayer": ("get_item", "put_item", "update_item", "delete_item"),
}
NOT_OPERATIONS = {"get_paginator", "exceptions", "meta", "can_paginate", "get_waiter", "close"}


@dataclass(frozen=True)
class Call:
    service: str  # boto3 client name: s3, batch, secretsmanager, dynamodb
    operation: str  # boto3 method: get_object, submit_job ... (paginators: the operation they page)
    where: str  # module:function that makes it


@dataclass(frozen=True)
class Need:
    """One row of docs/iam.md: a call a function makes, the IAM action it needs, on which resource."""

    service: str
    operation: str
    action: str
    resource: str  # ARN with {placeholders} filled from the function's environment in the deployed stack
    why: str = ""
    granted: bool = True  # False: an opt-in the template does not grant (the role must NOT allow it)


BUCKET = "arn:aws:s3:::{bucket}"
TABLE = "arn:aws:dynamodb:{region}:{account}:table/{table}"
JOB = "arn:aws:batch:{region}:{account}:job/JOB"
STAGING = "arn:aws:s3:::MILVUS-BUCKET/graphrec-import/RUN/part.parquet"
_SECRETS = (
    Need("secretsmanager", "get_secret_value", "secretsmanager:GetSecretValue", "{mysql_secret}", "MySQL credentials"),
    Need("secretsmanager", "get_secret_value", "kms:Decrypt", "{kms_key}", "only with SecretsKmsKeyArn (via Secrets Manager)"),
)
_MILVUS_SECRET = (
    Need("secretsmanager", "get_secret_value", "secretsmanager:GetSecretValue", "{milvus_secret}", "Milvus token (if MilvusTokenSecretArn)"),
)
_BULK = "Milvus bulk import staging: only with GRAPHREC_MILVUS_BULK_STAGING_URI, which the template does not set"
# Per function: every AWS call its code makes -> IAM action + resource. {placeholders} come from the
# function's environment in the deployed stack: {bucket} (GRAPHREC_ARTIFACT_URI), {queue},
# {job_definition}, {table}, {mysql_secret}, {milvus_secret}, plus {kms_key}, {region}, {account}.
CALLS: dict[str, tuple[Need, ...]] = {
    "ApiFunction": _SECRETS + _MILVUS_SECRET,
    "LoaderFunction": _SECRETS
    + _MILVUS_SECRET
    + (
        Need("s3", "get_object", "s3:GetObject", BUCKET + "/runs/RUN/manifest.json", "manifest and run files"),
        Need("s3", "head_object", "s3:GetObject", BUCKET + "/runs/RUN/item_embeddings.parquet", "is a run file there"),
        Need("s3", "head_object", "s3:ListBucket", BUCKET, "so that a missing file is a 404, not a 403"),
        Need("s3", "list_objects_v2", "s3:ListBucket", BUCKET, "latest run (CLI); confirm a missing key"),
        Need("s3", "put_object", "s3:PutObject", STAGING, _BULK, granted=False),
        Need("s3", "delete_objects", "s3:DeleteObject", STAGING, _BULK, granted=False),
    ),
    "RetrainFunction": (
        Need("batch", "submit_job", "batch:SubmitJob", "{queue}", "the GPU job queue"),
        Need("batch", "submit_job", "batch:SubmitJob", "{job_definition}", "the job definition, by name"),
        Need("batch", "submit_job", "batch:SubmitJob", "{job_definition}:7", "(whichever revision is latest)"),
        Need("batch", "submit_job", "batch:SubmitJob", JOB, "the job it creates"),
        Need("batch", "submit_job", "batch:TagResource", JOB, "`tags` on submit (aws:RequestTag / aws:TagKeys)"),
        Need("batch", "list_jobs", "batch:ListJobs", "*", "a job of the same name (crash after submit)"),
        Need("batch", "describe_jobs", "batch:DescribeJobs", "*", "GET /retrain/{job_id}"),
        Need("dynamodb", "get_item", "dynamodb:GetItem", TABLE, "idempotency record"),
        Need("dynamodb", "put_item", "dynamodb:PutItem", TABLE, "idempotency record"),
        Need("dynamodb", "update_item", "dynamodb:UpdateItem", TABLE, "idempotency record"),
        Need("dynamodb", "delete_item", "dynamodb:DeleteItem", TABLE, "idempotency record"),
    ),
    "EventsExportFunction": _SECRETS
    + (
        Need("s3", "upload_file", "s3:PutObject", BUCKET + "/events/events.csv", "the snapshot (multipart parts too)"),
        Need("s3", "upload_file", "s3:AbortMultipartUpload", BUCKET + "/events/events.csv", "a failed multipart upload"),
        Need("s3", "put_object", "s3:PutObject", BUCKET + "/events/events.csv.meta.json", "the snapshot's metadata"),
    ),
}
# Not from code but from the platform, for every function (managed policies SAM attaches): CloudWatch
# Logs (AWSLambdaBasicExecutionRole), X-Ray (AWSXrayWriteOnlyAccess, Tracing: Active), VPC ENIs
# (AWSLambdaVPCAccessExecutionRole) and sqs:SendMessage to AsyncFailureQueue (EventInvokeConfig).


# ----------------------------------------------------------------------------------- the scan
def _module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


@dataclass
class _Func:
    key: str  # module:qualname
    node: ast.AST
    module: str


class _Module:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.is_package = path.name == "__init__.py"
        self.imports: set[str] = set()  # our modules imported anywhere in this file
        self.aliases: dict[str, str] = {}  # local name -> module (import x.y as z / from x import y-module)
        self.names: dict[str, tuple[str, str]] = {}  # local name -> (module, attribute) from `from m import a`
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _ours(a.name):
                        self.imports.add(a.name)
                        self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node)
                if base is None or not _ours(base):
                    continue
                self.imports.add(base)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    if _module_file(sub) is not None:
                        self.imports.add(sub)
                        self.aliases[a.asname or a.name] = sub
                    else:
                        self.names[a.asname or a.name] = (base, a.name)

    def _absolute(self, node: ast.ImportFrom) -> str | None:
        if not node.level:
            return node.module
        parts = self.name.split(".")
        keep = len(parts) - node.level + (1 if self.is_package else 0)
        base = ".".join(parts[:keep])
        return f"{base}.{node.module}" if node.module else base


def _closure(root: str) -> dict[str, _Module]:
    mods: dict[str, _Module] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in mods:
            continue
        path = _module_file(name)
        if path is None:
            continue
        mods[name] = mod = _Module(name, path)
        todo += list(mod.imports)
        parts = name.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ too
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
    return mods


def _service_of(call: ast.AST) -> str | None:
    """'s3' for boto3.client("s3", ...) / boto3.session.Session().client("s3")."""
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "client"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def _registers(decorator: ast.AST) -> bool:
    """A decorator that registers the function to be called by a framework (`@app.get("/x")`,
    `@app.not_found`, `@event_source(...)`), not one that wraps it (`@lru_cache`, `@contextmanager`)."""
    fn = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(fn, ast.Attribute) or (isinstance(fn, ast.Name) and fn.id in {"event_source"})


def scan(function: str) -> tuple[set[Call], list[str]]:
    """The AWS calls `function`'s handler reaches, and how each function was reached (for debugging:
    `python -m infra.aws_calls --why LoaderFunction write_bytes`)."""
    mods = _closure(HANDLERS[function])
    funcs: dict[str, _Func] = {}
    by_name: dict[str, list[str]] = defaultdict(list)  # bare name -> keys (for method calls)
    for mname, mod in mods.items():
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        key = f"{mname}:{node.name}.{item.name}"
                        funcs[key] = _Func(key, item, mname)
                        by_name[item.name].append(key)
        for item in mod.tree.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{mname}:{item.name}"
                funcs[key] = _Func(key, item, mname)
            elif isinstance(item, ast.ClassDef):
                funcs[f"{mname}:{item.name}"] = _Func(f"{mname}:{item.name}", item, mname)  # the class body
    # client factories: functions that return boto3.client("svc")
    factories: dict[str, str] = {}
    for key, f in funcs.items():
        for node in ast.walk(f.node):
            if isinstance(node, ast.Return) and node.value is not None and _service_of(node.value):
                factories[key] = _service_of(node.value)  # type: ignore[assignment]

    def resolve_name(mod: _Module, name: str) -> list[str]:
        if f"{mod.name}:{name}" in funcs:
            return [f"{mod.name}:{name}"]
        if name in mod.names:
            m, a = mod.names[name]
            return [f"{m}:{a}"] if f"{m}:{a}" in funcs else []
        return []

    def refs_and_calls(f: _Func | None, mod: _Module, body: list[ast.AST]) -> tuple[set[str], set[Call]]:
        refs: set[str] = set()
        calls: set[Call] = set()
        bound: dict[str, str] = {}  # local variable -> service of the client it holds
        where = f.key if f else f"{mod.name}:<module>"
        nodes = [n for b in body for n in ast.walk(b)]
        for node in nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                svc = _service_of(node.value) or client_from_factory(mod, node.value)
                if svc:
                    bound[node.targets[0].id] = svc
        for node in nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                refs.update(resolve_name(mod, node.id))
            elif isinstance(node, ast.Attribute):
                if isinstance(node.value, ast.Name) and node.value.id in mod.aliases:
                    target = f"{mod.aliases[node.value.id]}:{node.attr}"
                    if target in funcs:
                        refs.add(target)
                else:
                    refs.update(by_name.get(node.attr, []))
                svc = _service_of(node.value) or client_from_factory(mod, node.value)
                if svc is None and isinstance(node.value, ast.Name):
                    svc = bound.get(node.value.id)
                if svc and node.attr not in NOT_OPERATIONS:
                    calls.add(Call(svc, node.attr, where))
            if isinstance(node, ast.Call):
                fn = node.func
                if isinstance(fn, ast.Attribute) and fn.attr == "get_paginator" and node.args:
                    svc = _service_of(fn.value) or client_from_factory(mod, fn.value)
                    if svc is None and isinstance(fn.value, ast.Name):
                        svc = bound.get(fn.value.id)
                    if svc and isinstance(node.args[0], ast.Constant):
                        calls.add(Call(svc, str(node.args[0].value), where))
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name in LIBRARY_CALLS:
                    for kw in node.keywords:
                        svc = _service_of(kw.value)
                        if svc:
                            calls.update(Call(svc, op, where) for op in LIBRARY_CALLS[name])
        return refs, calls

    def client_from_factory(mod: _Module, node: ast.AST) -> str | None:
        if isinstance(node, ast.Call):
            fn = node.func
            keys: list[str] = []
            if isinstance(fn, ast.Name):
                keys = resolve_name(mod, fn.id)
            elif isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id in mod.aliases:
                keys = [f"{mod.aliases[fn.value.id]}:{fn.attr}"]
            for k in keys:
                if k in factories:
                    return factories[k]
        return None

    # entry points: every module's top-level code (the handler object, decorators registering routes and
    # event handlers, FastAPI dependencies) and every decorated function
    todo: list[str] = []
    parent: dict[str, str] = {}
    found: set[Call] = set()
    for mod in mods.values():
        top = [n for n in mod.tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        for n in mod.tree.body:
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                top += n.decorator_list
                if any(_registers(d) for d in n.decorator_list):
                    todo.append(f"{mod.name}:{n.name}")
                    parent.setdefault(f"{mod.name}:{n.name}", "<registered by a decorator>")
        refs, calls = refs_and_calls(None, mod, top)
        for r in refs:
            parent.setdefault(r, f"{mod.name}:<module>")
        todo += list(refs)
        found |= calls
    seen: set[str] = set()
    while todo:
        key = todo.pop()
        if key in seen or key not in funcs:
            continue
        seen.add(key)
        f = funcs[key]
        body = list(f.node.body) if not isinstance(f.node, ast.ClassDef) else [
            n for n in f.node.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        if isinstance(f.node, ast.ClassDef):  # a class referenced: its constructor and validators may run
            todo += [
                k
                for k, g in funcs.items()
                if k.startswith(f"{key}.")
                and (k.endswith(("__init__", "__post_init__", "model_post_init")) or getattr(g.node, "decorator_list", []))
            ]
        refs, calls = refs_and_calls(f, mods[f.module], body)
        found |= calls
        for r in refs - seen:
            parent.setdefault(r, key)
        todo += list(refs - seen)
    chains = []
    for key in sorted(seen):
        chain, k = [key], key
        while k in parent and parent[k] not in chain:
            k = parent[k]
            chain.append(k)
        chains.append(" <- ".join(chain))
    return found, chains


# ----------------------------------------------------------------------------------- the table
def table() -> str:
    """The markdown table of docs/iam.md: function -> AWS API call -> IAM action -> resource."""
    lines = [
        "| function | AWS API call (boto3) | IAM action | resource | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fn, needs in CALLS.items():
        for n in needs:
            why = n.why if n.granted else f"**not granted**: {n.why}"
            lines.append(f"| {fn} | `{n.service}.{n.operation}` | `{n.action}` | `{n.resource}` | {why} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true", help="print docs/iam.md's table")
    parser.add_argument("--why", nargs=2, metavar=("FUNCTION", "NAME"), help="how FUNCTION reaches NAME")
    args = parser.parse_args(argv)
    if args.why:
        for chain in scan(args.why[0])[1]:
            if chain.split(" <- ")[0].endswith(args.why[1]):
                print(chain)
        return 0
    if args.table:
        print(table())
        return 0
    for fn in HANDLERS:
        calls, _ = scan(fn)
        print(f"{fn}:")
        for c in sorted(calls, key=lambda c: (c.service, c.operation, c.where)):
            print(f"  {c.service}.{c.operation:<20} {c.where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
