"""docs/frameworks.md: every Python block on the page runs as it is written.

The page shows one complete training step per framework (Flax Linen
``TrainState``, Flax NNX ``nnx.Optimizer``, Equinox, Optimistix, mixing with
Optax); each ```` ```python ```` block is standalone and asserts its own
result (the loss falls by half, frozen leaves stay put, the numbers equal
Optax's). This test extracts the blocks and executes each once, in a fresh
namespace, so the page cannot drift from what works
(``tests/test_integrations.py`` reuses the Linen recipe's namespace, its
compiled step included, for its checkpoint round trips). A block is skipped when
a module it imports is not installed (the ``integrations`` extra installs
them all). A block that is not meant to run is preceded by the line
``<!-- not run -->``.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re

import pytest

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "frameworks.md"
NOT_RUN = "<!-- not run -->"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)


def _blocks():
    """{id: (first line number, source)} for each runnable block of the page."""
    text = PAGE.read_text()
    blocks = {}
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        if before.rstrip().endswith(NOT_RUN):
            continue
        prose = FENCE.sub("", before)  # a comment in a block is no heading
        heading = re.findall(r"^#+ (.*)$", prose, re.M)[-1]
        slug = name = "-".join(re.findall(r"[a-z0-9]+", heading.lower()))
        n = 1
        while name in blocks:  # a second block under one heading
            n += 1
            name = f"{slug}-{n}"
        line = before.count("\n") + 2  # the line after the opening fence
        blocks[name] = (line, match.group(1))
    return blocks


BLOCKS = _blocks()


def _imported_modules(source):
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
    return sorted(modules)


@functools.cache
def run_block(name):
    """Runs the page's block ``name`` once per session; returns its namespace.

    Skips when a module the block imports is not installed. Other tests
    reuse a recipe's namespace (its compiled step included) through this.
    """
    line, source = BLOCKS[name]
    for module in _imported_modules(source):
        pytest.importorskip(module)
    # Padded so that a traceback points at the page's own line numbers.
    code = compile("\n" * (line - 1) + source, str(PAGE), "exec")
    namespace = {"__name__": "__main__"}
    exec(code, namespace)
    return namespace


def test_the_page_has_a_recipe_for_each_framework():
    sources = "\n".join(source for _, source in BLOCKS.values())
    for needle in (
        "train_state.TrainState.create(",
        "nnx.Optimizer(model, gradtx.",
        "eqx.apply_updates(",
        "eqx.partition(",
        "gradtx.set_to_zero()",
        "optx.OptaxMinimiser(",
        "solve(gradtx.",
        "gradtx.chain(\n    optax.",
        "optax.chain(\n    gradtx.",
        "import gradtx as optax",
    ):
        assert needle in sources, needle
    # Every runnable block checks its result, so a broken recipe fails here.
    for name, (_, source) in BLOCKS.items():
        assert "assert" in source, name


@pytest.mark.parametrize("name", list(BLOCKS))
def test_the_block_runs(name):
    run_block(name)
