"""Optax's contributed optimizers (``optax.contrib``), with the same names.

As in Optax, these names are not exported at the top level of :mod:`gradtx`:
import them from here (``from gradtx.contrib import cocob``).
"""

from .cocob import COCOBState as COCOBState
from .cocob import cocob as cocob
from .cocob import scale_by_cocob as scale_by_cocob
from .dog import DoGState as DoGState
from .dog import DoWGState as DoWGState
from .dog import dog as dog
from .dog import dowg as dowg

__all__ = [
    "COCOBState",
    "DoGState",
    "DoWGState",
    "cocob",
    "dog",
    "dowg",
    "scale_by_cocob",
]
