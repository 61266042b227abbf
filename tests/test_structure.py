"""The package's shape: no import cycle (``TYPE_CHECKING`` imports count), no long module.

The checks read the source with :mod:`ast` (nothing is imported), so an import that only
the type checker follows counts like any other: it still ties the two modules together.
Each check is also run on a small tree made here to show that it can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tap_partner_billing"
MAX_MODULE_LINES = 400
# Only entry points may import the tap: everything else gets what it needs passed in.
TAP_MODULE = "tap_partner_billing.tap"
TAP_IMPORTERS = {"tap_partner_billing.__main__"}


def _module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    """Module name → file, for every ``.py`` file under ``root`` (a package)."""
    return {_module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The names an import statement asks for, absolute (``from a import b`` gives ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports, anywhere in its source.

    ``from x import y`` is an edge to ``x.y`` when that is a module, else to ``x``. Imports
    inside functions and under ``if TYPE_CHECKING:`` are edges too.
    """
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            wanted = _imported(node, name, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                submodules = [w for w in wanted[1:] if w in modules]
                targets = submodules or [wanted[0]]
            else:
                targets = wanted
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def import_cycles(root: Path) -> list[list[str]]:
    """Every set of modules that import each other in a cycle, each sorted, the list sorted.

    The cycles are the strongly connected components (Tarjan) of more than one module.
    """
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def sandbox_imports_of_the_tap(root: Path) -> dict[str, set[str]]:
    """Sandbox module → the package's modules outside the sandbox it imports.

    The sandbox stands in for Microsoft: it spells the scopes, audiences, paths and header
    names itself, so that a wrong literal in the tap meets the sandbox's refusal instead of
    agreeing with itself.
    """
    sandbox = f"{root.name}.sandbox"
    inside = (sandbox, f"{sandbox}.")
    return {
        name: outside
        for name, imports in import_graph(root).items()
        if name.startswith(inside)
        and (outside := {m for m in imports if not (m == sandbox or m.startswith(f"{sandbox}."))})
    }


def tap_reaches(root: Path) -> list[str]:
    """``module:line`` of every ``._tap`` (the SDK's private link from a stream to its tap)."""
    found: list[str] = []
    for name, path in _modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found.extend(
            f"{name}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "_tap"
        )
    return sorted(found)


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """Module → its line count, for the modules over ``limit`` lines."""
    counts = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules(root).items()
    }
    return {name: count for name, count in counts.items() if count > limit}


def test_no_module_imports_another_in_a_cycle() -> None:
    assert import_cycles(PACKAGE) == []


def test_only_entry_points_import_the_tap() -> None:
    importers = {name for name, imports in import_graph(PACKAGE).items() if TAP_MODULE in imports}
    assert importers <= TAP_IMPORTERS


def test_no_stream_reaches_into_the_tap() -> None:
    assert tap_reaches(PACKAGE) == []


def test_the_sandbox_imports_nothing_from_the_tap() -> None:
    assert sandbox_imports_of_the_tap(PACKAGE) == {}


def test_no_module_is_over_the_line_budget() -> None:
    assert long_modules(PACKAGE) == {}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from pkg.b import B\n",
                "b.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"
                ),
            },
            [["pkg.a", "pkg.b"]],
            id="under-TYPE_CHECKING",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from pkg import b\n",
                "b.py": "from . import c\n",
                "c.py": "def f() -> None:\n    import pkg.a\n",
                "d.py": "import pkg.a\n",
            },
            [["pkg.a", "pkg.b", "pkg.c"]],
            id="three-modules-relative-and-in-a-function",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "sub/__init__.py": "from .x import X\n",
                "sub/x.py": "from pkg.sub import helper\n",
                "sub/helper.py": "",
            },
            [],
            id="no-cycle",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "sub/__init__.py": "from .x import X\n",
                "sub/x.py": "from pkg.sub import Y\n",
            },
            [["pkg.sub", "pkg.sub.x"]],
            id="a-package-and-its-module",
        ),
    ],
)
def test_the_cycle_check_finds_cycles(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    assert import_cycles(_tree(tmp_path, files)) == expected


def test_the_line_budget_check_finds_a_long_module(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "short.py": "x = 1\n" * MAX_MODULE_LINES,
            "long.py": "x = 1\n" * (MAX_MODULE_LINES + 1),
        },
    )
    assert long_modules(root) == {"pkg.long": MAX_MODULE_LINES + 1}


def test_the_tap_reach_check_finds_one(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "s.py": "class S:\n    def f(self) -> object:\n        return self._tap.services\n",
        },
    )
    assert tap_reaches(root) == ["pkg.s:3"]


def test_the_sandbox_import_check_finds_a_literal_taken_from_the_tap(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "auth.py": "SCOPE = 'x'\n",
            "sandbox/__init__.py": "",
            "sandbox/server.py": "from pkg.sandbox import tokens\n",
            "sandbox/tokens.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.auth import SCOPE\n"
            ),
        },
    )
    assert sandbox_imports_of_the_tap(root) == {"pkg.sandbox.tokens": {"pkg.auth"}}
