"""The generic table properties for the contrib rows (``CONTRIB_OPTIMIZERS``).

``tests/optimizers.py`` keeps the contrib aliases that fit the table in
``CONTRIB_OPTIMIZERS`` until they join ``OPTIMIZERS`` (see the comment
there). Meanwhile this module runs :mod:`test_properties`'s checks on them:
jit and scan equal eager with a stable state, update dtype follows a bfloat16
gradient (None, empty and zero-size leaves pass), convergence on the quadratic
and on Rosenbrock, vmap over parameter trees and over learning rates.
Optimizers that cannot be rows (``CONTRIB_OUTSIDE_TABLE``) are tested in their
own modules.
"""

from __future__ import annotations

import pytest
import test_properties as P
from optimizers import CONTRIB_OPTIMIZERS, CONTRIB_OUTSIDE_TABLE, OPTIMIZERS, make

import gradtx.contrib

IDS = [e[0] for e in CONTRIB_OPTIMIZERS]
CHECKS = [
    P.test_jitted_scan_matches_eager_and_state_is_a_stable_carry,
    P.test_update_dtype_follows_a_bfloat16_gradient_and_edge_leaves_pass,
    P.test_converges_on_quadratic_and_rosenbrock,
    P.test_vmap_over_parameter_trees,
    P.test_vmap_over_learning_rates,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[5:] for c in CHECKS])
@pytest.mark.parametrize("id_,name,kwargs", CONTRIB_OPTIMIZERS, ids=IDS)
def test_table_property(check, id_, name, kwargs):
    check(id_, name, kwargs)


def test_every_contrib_alias_is_a_row_or_explained():
    aliases = {
        n
        for n in gradtx.contrib.__all__
        if n[0].islower() and not n.startswith("scale_by")
        and n != "differentially_private_aggregate"
    }  # fmt: skip
    rows = {e[1] for e in CONTRIB_OPTIMIZERS}
    table = {e[1] for e in OPTIMIZERS}
    covered = rows | table | set(CONTRIB_OUTSIDE_TABLE)
    assert aliases <= covered, aliases - covered
    assert not rows & table
    for _, name, kwargs in CONTRIB_OPTIMIZERS:
        assert make(name, **kwargs) is not None
