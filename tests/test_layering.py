"""The parts of zoodeploy import one another one way only: no cycle among the subpackages (and the
top-level modules), counting imports inside functions and the registries' "module:function" names
(passes, runtimes, sources), which load a module as surely as an import statement does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "zoodeploy"
NAMED = re.compile(r"^zoodeploy\.([a-z_0-9.]+)(?::[A-Za-z_]\w*)?$")  # "zoodeploy.optimize.fuse:run_pass"


def part(module: str) -> str:
    """`zoodeploy.optimize.fuse` -> `optimize`, `zoodeploy.card` -> `card`."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def edges(me: str, tree: ast.AST) -> set[tuple[str, str, int]]:
    """(part `me`, the part it reaches, line) for every import and every registry name in `tree`."""
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names] * (node.module == "zoodeploy")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED.match(node.value):
            names = ["zoodeploy." + NAMED.match(node.value).group(1)]
        elif isinstance(node, ast.JoinedStr):  # f"{_O}.fuse:run_pass" with _O = "zoodeploy.optimize"
            continue
        for name in names:
            if name.startswith("zoodeploy.") and part(name) != me:
                found.add((me, part(name), node.lineno))
    return found


def registry_prefixes(tree: ast.AST) -> dict[str, str]:
    """Module-level `_X = "zoodeploy.part"` constants that registries build names from."""
    out = {}
    for node in getattr(tree, "body", []):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and node.value.value.startswith("zoodeploy.")):
            out.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return out


def graph(src: Path = SRC) -> dict[str, dict[str, str]]:
    """part -> {part it reaches: where (file:line)}."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        me = part("zoodeploy." + ".".join(path.relative_to(src).with_suffix("").parts))
        found = edges(me, tree)
        for name, prefix in registry_prefixes(tree).items():  # f"{_O}.fuse:run_pass" reaches _O's part
            if part(prefix) != me and any(isinstance(n, ast.JoinedStr) and any(
                    isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id == name
                    for v in n.values) for n in ast.walk(tree)):
                found.add((me, part(prefix), 0))
        for a, b, line in found:
            out.setdefault(a, {}).setdefault(b, f"{path.relative_to(src.parent)}:{line}")
    return out


def find_cycle(g: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as a list of parts (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, {})):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycle_among_the_parts():
    g = graph()
    cycle = find_cycle(g)
    where = [f"{a} -> {b} ({g[a][b]})" for a, b in zip(cycle, cycle[1:])] if cycle else []
    assert cycle is None, "import cycle: " + "; ".join(where)


def test_the_check_sees_function_level_imports_and_registry_names(tmp_path):
    pkg = tmp_path / "zoodeploy"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    (pkg / "low" / "a.py").write_text("def f():\n    from zoodeploy.high import b\n")
    (pkg / "high" / "b.py").write_text("import zoodeploy.low.a\n")
    assert find_cycle(graph(pkg)) == ["high", "low", "high"]
    (pkg / "low" / "a.py").write_text('_H = "zoodeploy.high"\nREG = {"x": f"{_H}.b:run"}\n')
    assert find_cycle(graph(pkg)) == ["high", "low", "high"]
    (pkg / "low" / "a.py").write_text('REG = {"x": "zoodeploy.high.b:run"}\n')
    assert find_cycle(graph(pkg)) == ["high", "low", "high"]
    (pkg / "low" / "a.py").write_text("X = 1\n")
    assert find_cycle(graph(pkg)) is None


@pytest.mark.parametrize("name", ["zoodeploy.optimize.fuse:run_pass", "zoodeploy.runtime.ort"])
def test_registry_names_are_read(name):
    assert NAMED.match(name)
