"""The package layout: the coordinator imports nothing from the agent, jfsmilvus.common imports neither daemon, no
module-level import cycle among the modules of agent/, coordinator/ and jfsmilvus.common (imports under
`if TYPE_CHECKING:` and inside functions do not count), no file in agent/ or coordinator/ over 500 lines and no
function over 60 lines, a table excepted."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = {
    "agent": REPO / "agent",
    "coordinator": REPO / "coordinator",
    "jfsmilvus.common": REPO / "proto/jfsmilvus/common",
}


def _modules() -> dict[str, Path]:
    out = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imported(ast.parse(path.read_text())) if m in modules and m != name}
        for name, path in modules.items()
    }


def _all_imports(package: str) -> set[tuple[str, str]]:
    """(module, what it imports) for every import anywhere in the package, functions included."""
    out = set()
    for name, path in _modules().items():
        if name == package or name.startswith(package + "."):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    out.update((name, alias.name) for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    out.add((name, node.module))
    return out


def test_coordinator_imports_nothing_from_the_agent() -> None:
    bad = sorted((m, i) for m, i in _all_imports("coordinator") if i == "agent" or i.startswith("agent."))
    assert not bad, bad


def test_common_imports_neither_daemon() -> None:
    bad = sorted((m, i) for m, i in _all_imports("jfsmilvus.common") if i.split(".")[0] in ("agent", "coordinator"))
    assert not bad, bad


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [])
    assert not cycles, [" -> ".join(c) for c in cycles]


MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
# Functions that are tables (one row a line), allowed to be longer: (module path, function name).
TABLES: set[tuple[str, str]] = set()


def test_no_file_over_500_lines_in_the_daemons() -> None:
    long = sorted(
        f"{path.relative_to(REPO)}: {n} lines"
        for root in (ROOTS["agent"], ROOTS["coordinator"])
        for path in root.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES
    )
    assert not long, long


def test_no_function_over_60_lines_except_a_table() -> None:
    long = []
    for root in (ROOTS["agent"], ROOTS["coordinator"], ROOTS["jfsmilvus.common"]):
        for path in root.rglob("*.py"):
            rel = str(path.relative_to(REPO))
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (rel, node.name) not in TABLES:
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert not long, sorted(long)
