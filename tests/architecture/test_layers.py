"""The package's layers: each module imports only from its own layer or below.

The layers, bottom to top (``LAYERS``): ``_core`` (the protocol, lifting
per-array maths to trees, per-array maths, validation, placement), then the
combinators (structure only: chain, masks, partitions), the schedules and
linear algebra, the primitives (``transforms``), the wrappers, the optimizers
(aliases), the Optax-contrib optimizers, precision (compensated and 8-bit
state), the engines (packing, the fused step, the native kernel), and the
utilities on top (sharding, checkpoint, second order, tree namespaces).

Two more rules: no import cycle between modules, and no implementation module
imports a package's ``__init__`` (the public facades, which re-export across
layers the way Optax's namespaces do); it imports the submodule that defines
the name. The checker is a plain AST walk over ``gradtx/``, so it sees every
``import`` statement, including those inside functions.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "gradtx"

# Bottom to top. A module belongs to the first entry that prefixes its name.
LAYERS = [
    ("gradtx._core",),
    ("gradtx.combinators",),
    ("gradtx.schedules", "gradtx.linalg"),
    ("gradtx.transforms",),
    ("gradtx.wrappers",),
    ("gradtx.optimizers",),
    ("gradtx.contrib",),
    ("gradtx.precision",),
    ("gradtx.engines",),
    (
        "gradtx.sharding",
        "gradtx.checkpoint",
        "gradtx.second_order",
        "gradtx.microbatching",
        "gradtx.tree",
        "gradtx.tree_utils",
    ),
]


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_facade(module: str) -> bool:
    """A package ``__init__`` (or the top level): the public re-exports."""
    return (ROOT.parent / module.replace(".", "/") / "__init__.py").exists()


def layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def imports(path: pathlib.Path, module: str) -> set[str]:
    """The gradtx modules that ``path`` imports (``from pkg import submodule``
    counts as importing the submodule)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("gradtx"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                sub_path = ROOT.parent / sub.replace(".", "/")
                if sub_path.with_suffix(".py").exists() or sub_path.is_dir():
                    found.add(sub)
                else:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gradtx")}
    return found


def graph() -> dict[str, set[str]]:
    return {
        module_name(p): imports(p, module_name(p)) for p in sorted(ROOT.rglob("*.py"))
    }


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import that breaks a rule, as ``"importer -> imported: why"``."""
    out = []
    for src, targets in sorted(edges.items()):
        if src == "gradtx":
            continue  # the flat public API re-exports everything
        for dst in sorted(targets):
            if dst == "gradtx":
                out.append(f"{src} -> {dst}: imports the top-level package")
            elif is_facade(dst) and not is_facade(src):
                out.append(f"{src} -> {dst}: imports a facade; import its submodule")
            elif not is_facade(src) and layer(dst) > layer(src):
                out.append(
                    f"{src} -> {dst}: upward import (layer {layer(src)} -> "
                    f"{layer(dst)})"
                )
    return out + cycles(edges)


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """One line per import cycle found by a depth-first search."""
    out, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges or is_facade(nxt):
                continue
            if state.get(nxt) == "open":
                out.append("cycle: " + " -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state and not is_facade(node):
            visit(node, [node])
    return out


def test_every_module_is_in_a_layer():
    for module in graph():
        if module != "gradtx" and not is_facade(module):
            layer(module)


def test_no_upward_import_no_facade_import_no_cycle():
    assert violations(graph()) == []


@pytest.mark.parametrize(
    "edge,why",
    [
        (("gradtx.transforms.adam", "gradtx.engines.pack"), "upward import"),
        (("gradtx._core.base", "gradtx.transforms.adam"), "upward import"),
        (("gradtx.transforms.adam", "gradtx.transforms"), "imports a facade"),
    ],
)
def test_the_checker_catches_a_bad_import(edge, why):
    edges = graph()
    src, dst = edge
    edges[src] = edges[src] | {dst}
    assert any(why in v and v.startswith(f"{src} -> {dst}") for v in violations(edges))


def test_the_checker_catches_a_cycle():
    edges = graph()
    edges["gradtx._core.maths"] = edges["gradtx._core.maths"] | {"gradtx._core.base"}
    edges["gradtx._core.base"] = edges["gradtx._core.base"] | {"gradtx._core.maths"}
    assert any(v.startswith("cycle:") for v in violations(edges))


def test_no_module_imports_another_modules_private_names():
    """A helper shared across modules has a public name in the module that
    owns it; ``from .x import _helper`` reaches past that module's interface."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("gradtx")
            ):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{module_name(path)}: {node.module}.{alias.name}")
    assert found == []
