"""Optax's contributed optimizers (``optax.contrib``), with the same names.

As in Optax, these names are not exported at the top level of :mod:`gradtx`:
import them from here (``from gradtx.contrib import cocob``).
"""

from .acprop import acprop as acprop
from .acprop import scale_by_acprop as scale_by_acprop
from .cocob import COCOBState as COCOBState
from .cocob import cocob as cocob
from .cocob import scale_by_cocob as scale_by_cocob
from .dog import DoGState as DoGState
from .dog import DoWGState as DoWGState
from .dog import dog as dog
from .dog import dowg as dowg
from .madgrad import MadgradState as MadgradState
from .madgrad import madgrad as madgrad
from .madgrad import scale_by_madgrad as scale_by_madgrad
from .mechanic import MechanicState as MechanicState
from .mechanic import mechanize as mechanize
from .normalize import NormalizeState as NormalizeState
from .normalize import normalize as normalize

__all__ = [
    "COCOBState",
    "DoGState",
    "DoWGState",
    "MadgradState",
    "MechanicState",
    "NormalizeState",
    "acprop",
    "cocob",
    "dog",
    "dowg",
    "madgrad",
    "mechanize",
    "normalize",
    "scale_by_acprop",
    "scale_by_cocob",
    "scale_by_madgrad",
]
