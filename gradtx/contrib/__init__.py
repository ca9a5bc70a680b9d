"""Optax's contributed optimizers (``optax.contrib``), with the same names.

As in Optax, these names are not exported at the top level of :mod:`gradtx`:
import them from here (``from gradtx.contrib import cocob``).
"""

from .cocob import COCOBState as COCOBState
from .cocob import cocob as cocob
from .cocob import scale_by_cocob as scale_by_cocob

__all__ = [
    "COCOBState",
    "cocob",
    "scale_by_cocob",
]
