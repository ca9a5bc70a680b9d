"""No hidden state in the maths (DESIGN principle 2).

No context variables, no ``global`` statements: what a transformation computes
depends on its arguments and its state only. ``inject_hyperparams`` passes
the exact complement of an injected rate as a value the maths reads
(``Complemented``), not through a side channel; the bit-exactness it keeps is
tested in ``tests/wrappers/test_inject.py``.

One module is exempt, because no value it holds reaches the maths: the flag
with which ``kahan_summation`` and ``stochastic_rounding`` tell the optimizers
they wrap not to warn about low-precision params at ``init`` (a warning, never
a number; tested in ``tests/core/test_low_precision_stall.py``).
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "gradtx"
WARNING_ONLY = {"gradtx/_core/low_precision_stall.py"}


def test_no_context_variables_or_globals():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if str(path.relative_to(PACKAGE.parent)) in WARNING_ONLY:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Global):
                found.append(f"{where}: global {', '.join(node.names)}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", "")]
                if any(n and n.split(".")[0] == "contextvars" for n in names):
                    found.append(f"{where}: imports contextvars")
            elif isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name == "ContextVar":
                    found.append(f"{where}: ContextVar")
    assert found == []
