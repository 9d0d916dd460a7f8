"""The package's architecture (docs/layout.md's table): subpackages by role, each layer
importing only those below it, and no import cycles, lazy imports included."""

from __future__ import annotations

import ast
import importlib.util
import re

from conftest import ROOT

PACKAGE = ROOT / "lrcodec"
_spec = importlib.util.spec_from_file_location("layout", ROOT / "scripts" / "layout.py")
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)
RANK = {name: rank for rank, names in enumerate(layout.LAYERS) for name in names}


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of ``lrcodec``, ``lrcodec.NAME`` or a module of the subpackage NAME."""
    parts = module.split(".")
    return 0 if parts == ["lrcodec"] else RANK[parts[1]]


def imports() -> dict[str, set[str]]:
    """Every lrcodec module's imports of lrcodec modules, at any depth of the code."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # "from . import codec" names a module
                    full = f"{target}.{alias.name}"
                    found.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("_REGISTRY", "_MATCHERS"):
                # the families' registry imports its modules by name (importlib)
                values = node.value.values if isinstance(node.value, ast.Dict) else node.value.elts
                for value in values:
                    first = value.elts[0] if isinstance(value, ast.Tuple) else value
                    found.add(f"{package}.{first.value}")
        graph[name] = {m for m in found if m.startswith("lrcodec") and m != name and m in modules}
    return graph


def test_every_module_belongs_to_a_layer():
    assert not layout.unplaced()
    for name in imports():
        layer(name)  # a KeyError names a module no layer holds


def test_no_module_imports_a_layer_above_it():
    upward = [(name, m) for name, targets in imports().items() for m in targets if layer(m) > layer(name)]
    assert not upward


def test_there_are_no_import_cycles():
    graph, state = imports(), {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", " -> ".join(path + [node])
        state[node] = "open"
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])


def test_the_layout_table_is_the_package():
    """docs/layout.md's table lists every subpackage and module, each with the first line of
    its docstring (``python scripts/layout.py --write`` regenerates it)."""
    readme = (ROOT / "docs" / "layout.md").read_text()
    table = re.search(re.escape(layout.START) + r"\n(.*?)\n" + re.escape(layout.END), readme, re.S)
    assert table and table.group(1).strip() == layout.table().strip()
