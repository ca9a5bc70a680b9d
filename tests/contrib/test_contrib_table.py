"""Every ``optax.contrib`` alias is a row of the optimizer table or says why not.

The rows (``tests/optimizers.py``) get every table-driven property; the
aliases that cannot be rows (``CONTRIB_OUTSIDE_TABLE``: they need ``value=``,
per-example gradients, or wrap another optimizer) are tested in their own
modules, named there.
"""

from optimizers import CONTRIB_OUTSIDE_TABLE, OPTIMIZERS

import gradtx.contrib


def test_every_contrib_alias_is_a_row_or_explained():
    aliases = {
        n
        for n in gradtx.contrib.__all__
        if n[0].islower() and not n.startswith("scale_by")
        and n != "differentially_private_aggregate"
    }  # fmt: skip
    table = {e[1] for e in OPTIMIZERS}
    covered = table | set(CONTRIB_OUTSIDE_TABLE)
    assert aliases <= covered, aliases - covered
    assert not table & set(CONTRIB_OUTSIDE_TABLE)
