"""Doctests import public names only, as a user would.

A docstring example that imports ``gradtx.transforms.adam`` or
``gradtx._core.lifting`` teaches a path that is not part of the API (and that
the next restructuring may move). Examples import from the top level or from
the namespaces that mirror Optax's.
"""

import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "gradtx"
PUBLIC = {
    "gradtx",
    "gradtx.transforms",
    "gradtx.schedules",
    "gradtx.contrib",
    "gradtx.second_order",
    "gradtx.microbatching",
    "gradtx.tree",
    "gradtx.tree_utils",
}
# Optax keeps DoG's and DoWG's primitives out of optax.contrib's names, and so
# does gradtx.contrib; their examples import them from their module.
ALSO = {"gradtx.contrib.distance_over_gradients"}
IMPORT = re.compile(r">>> (?:from (gradtx[\w.]*) import|import (gradtx[\w.]*))")


def test_doctests_import_public_names_only():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for match in IMPORT.finditer(line):
                module = match.group(1) or match.group(2)
                if module not in PUBLIC | ALSO:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {module}")
    assert bad == []
