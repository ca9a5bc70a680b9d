"""Optax's contributed optimizers (``optax.contrib``), with the same names.

As in Optax, these names are not exported at the top level of :mod:`gradtx`:
import them from here (``from gradtx.contrib import cocob``).
"""

from .asynchronous_centering import acprop, scale_by_acprop
from .coin_betting import COCOBState, cocob, scale_by_cocob
from .complex_split import (
    SplitRealAndImaginaryArrays,
    SplitRealAndImaginaryState,
    split_real_and_imaginary,
)
from .d_adaptation import DAdaptAdamWState, dadapt_adamw
from .distance_over_gradients import DoGState, DoWGState, dog, dowg
from .dual_averaging import MadgradState, madgrad, scale_by_madgrad
from .low_rank_projection import (
    GaLoreDimensionNumbers,
    GaLoreState,
    galore,
    scale_by_galore,
)
from .mechanic import MechanicState, mechanize
from .model_based_momentum import MomoAdamState, MomoState, momo, momo_adam
from .normalization import NormalizeState, normalize
from .privacy import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
    dpsgd,
)
from .sharpness_aware import SAMState, sam

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "DoGState",
    "DoWGState",
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "MadgradState",
    "MechanicState",
    "MomoAdamState",
    "MomoState",
    "NormalizeState",
    "SAMState",
    "SplitRealAndImaginaryArrays",
    "SplitRealAndImaginaryState",
    "acprop",
    "cocob",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dog",
    "dowg",
    "dpsgd",
    "galore",
    "madgrad",
    "mechanize",
    "momo",
    "momo_adam",
    "normalize",
    "sam",
    "scale_by_acprop",
    "scale_by_cocob",
    "scale_by_galore",
    "scale_by_madgrad",
    "split_real_and_imaginary",
]
