"""The package's shape: layers by sub-package, no import cycle, no stray long module.

The main check is the direction of imports between the sub-packages (``MAY_IMPORT``, drawn
in docs/architecture.md): records and emission import neither Singer nor HTTP, blob reading
never imports auth, only the Singer layer imports the SDK seam, the sandbox imports nothing
of the tap. The checks read the source with :mod:`ast` (nothing is imported), so an import
that only the type checker follows counts like any other: it still ties the two modules
together. Only the third-party rules look at runtime imports alone, followed through the
package: they are about what a process loads. Each check is also run on a small tree made
here to show that it can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tap_partner_billing"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
# A smell detector, not a design rule: a module this long probably holds two concerns.
MAX_MODULE_LINES = 500
# The layers, bottom to top: what each may import besides itself (a layer, or one module
# of a layer). Keep docs/architecture.md's picture in step.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),  # errors, redact, dates, the version
    "records": frozenset({"core"}),
    "service": frozenset({"core", "records"}),
    # blob reading: the transport and URL policy, the manifest's blob list; never auth
    "blobs": frozenset(
        {"core", "records", "service.transport", "service.url_policy", "service.manifest"}
    ),
    # emission: rows, the blob types, the manifest's data; no client of any service
    "emission": frozenset({"core", "records", "blobs.content", "service.manifest"}),
    "config": frozenset({"core", "records", "service", "blobs", "emission"}),
    # one run's composition: loads no Singer, so not the settings (declared with the SDK)
    "sync": frozenset({"core", "records", "service", "blobs", "emission"}),
    "singer": frozenset({"core", "records", "service", "blobs", "emission", "config", "sync"}),
    "sandbox": frozenset(),  # it spells Microsoft's literals itself
}
CORE_MODULES = {"", "errors", "redact", "dates"}  # the package's own __init__ is ""
SINGER_MODULES = {"tap", "cli", "__main__", "streams"}
# HTTP: the clients the tap uses, and the standard library's own (urllib.parse is fine).
SINGER, HTTP = {"singer_sdk"}, {"requests", "urllib3", "msal", "http", "socket", "ssl"}
# Third-party packages a layer's modules may not load, directly or through the package.
MAY_NOT_LOAD: dict[str, set[str]] = {
    "core": SINGER | HTTP,
    "records": SINGER | HTTP,
    "emission": SINGER | HTTP,
    "service": SINGER,
    "blobs": SINGER | {"msal"},
    "sync": SINGER,
}
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


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:`` (never run)."""
    hidden: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            hidden.update(inner for stmt in node.body for inner in ast.walk(stmt))
    return hidden


def _imports(tree: ast.Module, *, runtime_only: bool) -> list[ast.Import | ast.ImportFrom]:
    hidden = _type_checking_only(tree) if runtime_only else set()
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and node not in hidden
    ]


def import_graph(root: Path, *, runtime_only: bool = False) -> dict[str, set[str]]:
    """Module → the package's modules it imports, anywhere in its source.

    ``from x import y`` is an edge to ``x.y`` when that is a module, else to ``x``. Imports
    inside functions and under ``if TYPE_CHECKING:`` are edges too, unless ``runtime_only``.
    """
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _imports(tree, runtime_only=runtime_only):
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


def layer_of(root: Path, module: str) -> str:
    """The layer of a module of the package ``root`` (see ``MAY_IMPORT``).

    Raises:
        ValueError: The module is in no layer (a new top-level module must be placed).
    """
    inside = module.split(".")[1:]
    head = inside[0] if inside else ""
    if head in CORE_MODULES and len(inside) <= 1:
        return "core"
    if head in SINGER_MODULES:
        return "singer"
    if head in MAY_IMPORT:
        return head
    msg = f"{module} belongs to no layer: place it in a sub-package (tests/test_structure.py)"
    raise ValueError(msg)


def wrong_way_imports(root: Path) -> list[str]:
    """``importer → imported`` for every import ``MAY_IMPORT`` does not allow, sorted."""
    found = []
    for name, imports in import_graph(root).items():
        layer = layer_of(root, name)
        for target in sorted(imports):
            target_layer = layer_of(root, target)
            inside = target.split(".", 1)[1] if "." in target else ""
            allowed = target_layer == layer or any(
                entry in {target_layer, inside} or inside.startswith(f"{entry}.")
                for entry in MAY_IMPORT[layer]
            )
            if not allowed:
                found.append(f"{name} ({layer}) → {target} ({target_layer})")
    return sorted(found)


def _third_party(root: Path) -> dict[str, set[str]]:
    """Module → the top-level names of the other packages it imports when it runs."""
    found: dict[str, set[str]] = {}
    for name, path in _modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found[name] = {
            alias.split(".")[0]
            for node in _imports(tree, runtime_only=True)
            if not getattr(node, "level", 0)
            for alias in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            if alias.split(".")[0] != root.name
        }
    return found


def forbidden_loads(root: Path) -> list[str]:
    """``module loads package (through a → b)`` for each ``MAY_NOT_LOAD`` breach, sorted."""
    graph, third_party = import_graph(root, runtime_only=True), _third_party(root)
    found: list[str] = []
    for name in sorted(graph):
        banned = MAY_NOT_LOAD.get(layer_of(root, name), set())
        if not banned:
            continue
        paths, queue = {name: [name]}, [name]
        while queue:  # breadth first: the shortest chain to each module it loads
            current = queue.pop(0)
            chain = " → ".join(paths[current])
            found.extend(
                f"{name} loads {loaded} (through {chain})"
                for loaded in sorted(third_party[current] & banned)
            )
            for nxt in sorted(graph[current] - paths.keys()):
                paths[nxt] = [*paths[current], nxt]
                queue.append(nxt)
    return sorted(found)


def architecture_paths(text: str) -> set[str]:
    """The module paths in the first column of docs/architecture.md's tables."""
    return {
        match
        for line in text.splitlines()
        if line.startswith("| `")
        for match in re.findall(r"`([\w/]+\.py)`", line.split("|")[1])
    }


def package_paths(root: Path) -> set[str]:
    """Every module file of the package, relative to it (``__init__.py`` files too)."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*.py")}


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


def test_every_import_goes_down_the_layers() -> None:
    assert wrong_way_imports(PACKAGE) == []


def test_no_layer_loads_what_it_must_not() -> None:
    assert forbidden_loads(PACKAGE) == []


def test_blob_reading_never_reaches_auth() -> None:
    graph = import_graph(PACKAGE)
    assert "tap_partner_billing.service.auth" in graph  # the check names a module that exists
    reached: set[str] = set()
    queue = [m for m in graph if layer_of(PACKAGE, m) == "blobs"]
    while queue:
        for nxt in graph[queue.pop()] - reached:
            reached.add(nxt)
            queue.append(nxt)
    assert "tap_partner_billing.service.auth" not in reached


def test_only_the_singer_layer_imports_the_sdk_seam() -> None:
    importers = {
        name
        for name, imports in import_graph(PACKAGE).items()
        if "tap_partner_billing.streams.sdk_seam" in imports
    }
    assert importers
    assert {layer_of(PACKAGE, name) for name in importers} == {"singer"}


def test_the_architecture_document_lists_every_module() -> None:
    listed = architecture_paths(ARCHITECTURE.read_text(encoding="utf-8"))
    assert listed == package_paths(PACKAGE)


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


def test_the_layer_check_finds_a_wrong_way_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "records/__init__.py": "",
            "records/rows.py": "from pkg.errors import E\n",
            "service/__init__.py": "",
            "service/auth.py": "",
            "service/transport.py": "from pkg.records import rows\n",
            "blobs/__init__.py": "",
            "blobs/download.py": (
                "from typing import TYPE_CHECKING\n"
                "from pkg.service.transport import send\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.service.auth import TokenProvider\n"
            ),
        },
    )
    assert wrong_way_imports(root) == ["pkg.blobs.download (blobs) → pkg.service.auth (service)"]


def test_the_layer_check_places_every_module(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"__init__.py": "", "helpers.py": "x = 1\n"})
    with pytest.raises(ValueError, match=r"pkg\.helpers belongs to no layer"):
        wrong_way_imports(root)


def test_the_load_check_follows_runtime_imports_through_the_package(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "service/__init__.py": "",
            "service/transport.py": "import requests\n",
            "service/manifest.py": "from pkg.service import transport\n",
            "records/__init__.py": "",
            "records/rows.py": "from pkg.service.manifest import Manifest\n",
            "emission/__init__.py": "",
            "emission/ledger.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.service.manifest import Manifest\n"
            ),
        },
    )
    chain = "pkg.records.rows → pkg.service.manifest → pkg.service.transport"
    assert forbidden_loads(root) == [f"pkg.records.rows loads requests (through {chain})"]


def test_the_architecture_check_sees_a_missing_module(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"__init__.py": "", "a/__init__.py": "", "a/b.py": ""})
    text = "| path | what |\n|---|---|\n| `__init__.py`, `a/__init__.py` | x |\n| `a/c.py` | y |\n"
    assert architecture_paths(text) ^ package_paths(root) == {"a/b.py", "a/c.py"}
