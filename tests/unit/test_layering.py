"""The folder layout draws the architecture; these tests keep the picture true.

Data flows one way: training_job -> run folder -> handlers -> shared. Inside shared/, the numpy-only query
logic (serving/) and the run contract (contract/) never reach for a store client (stores/), so evaluation
can import them without a database driver. Nothing imports bench/ or tests/. And no import circle, counting
the imports inside functions too (a lazy import is still a dependency): only `if TYPE_CHECKING:` blocks are
left out, because they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "handlers", "training_job")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports at run time (`from pkg import mod` counts as pkg.mod)."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    files = {
        _module_name(p): p for pkg in (*PACKAGES, "bench", "tests", "infra") for p in sorted((ROOT / pkg).rglob("*.py"))
    }
    known = set(files)
    return {name: _imports(path, known) - {name} for name, path in files.items()}


GRAPH = _graph()


def _offenders(source_prefixes: tuple[str, ...], target_prefixes: tuple[str, ...]) -> list[str]:
    def under(mod: str, prefixes: tuple[str, ...]) -> bool:
        return any(mod == p or mod.startswith(p + ".") for p in prefixes)

    return sorted(
        f"{src} -> {dst}"
        for src, deps in GRAPH.items()
        if under(src, source_prefixes)
        for dst in deps
        if under(dst, target_prefixes)
    )


def test_serving_and_contract_never_import_stores() -> None:
    assert _offenders(("shared.serving", "shared.contract"), ("shared.stores",)) == []


def test_serving_and_contract_never_import_handlers_or_training() -> None:
    assert _offenders(("shared",), ("handlers", "training_job")) == []


def test_handlers_never_import_training_job() -> None:
    assert _offenders(("handlers",), ("training_job",)) == []


def test_nothing_in_the_product_imports_bench_or_tests() -> None:
    assert _offenders(PACKAGES, ("bench", "tests")) == []
    assert _offenders(("infra",), ("bench", "tests")) == []


def test_no_import_circles() -> None:
    product = {m: {d for d in deps if d.split(".")[0] in PACKAGES} for m, deps in GRAPH.items() if m.split(".")[0] in PACKAGES}
    # A package's __init__ importing its own modules is not a circle of concerns: collapse nothing, but
    # ignore edges from a package to its own children (re-exports).
    for mod, deps in product.items():
        product[mod] = {d for d in deps if not d.startswith(mod + ".") and not mod.startswith(d + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(product.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for mod in sorted(product):
        if mod not in state:
            visit(mod)
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_graph_sees_the_imports() -> None:
    """The checks above mean something only if the scanner finds real edges."""
    assert "shared.config.settings" in GRAPH["handlers.api_app.deps"]
    assert "shared.serving.recipe" in GRAPH["training_job.evaluation.served"]
