"""Optax's contributed optimizers (``optax.contrib``), public as ``gradtx.contrib``.

As in Optax, these names are not exported at the top level of :mod:`gradtx`.
"""

from .complex_split import (
    SplitRealAndImaginaryArrays as SplitRealAndImaginaryArrays,
)
from .complex_split import (
    SplitRealAndImaginaryState as SplitRealAndImaginaryState,
)
from .complex_split import split_real_and_imaginary as split_real_and_imaginary
from .dadapt import DAdaptAdamWState as DAdaptAdamWState
from .dadapt import dadapt_adamw as dadapt_adamw
from .galore import GaLoreDimensionNumbers as GaLoreDimensionNumbers
from .galore import GaLoreState as GaLoreState
from .galore import galore as galore
from .galore import scale_by_galore as scale_by_galore
from .momo import MomoAdamState as MomoAdamState
from .momo import MomoState as MomoState
from .momo import momo as momo
from .momo import momo_adam as momo_adam
from .privacy import (
    DifferentiallyPrivateAggregateState as DifferentiallyPrivateAggregateState,
)
from .privacy import (
    differentially_private_aggregate as differentially_private_aggregate,
)
from .privacy import dpsgd as dpsgd
from .sam import SAMState as SAMState
from .sam import sam as sam

__all__ = [
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "MomoAdamState",
    "MomoState",
    "SAMState",
    "SplitRealAndImaginaryArrays",
    "SplitRealAndImaginaryState",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dpsgd",
    "galore",
    "momo",
    "momo_adam",
    "sam",
    "scale_by_galore",
    "split_real_and_imaginary",
]
