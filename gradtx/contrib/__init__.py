"""Optax's contributed optimizers (``optax.contrib``), public as ``gradtx.contrib``.

As in Optax, these names are not exported at the top level of :mod:`gradtx`.
"""

from .dadapt import DAdaptAdamWState as DAdaptAdamWState
from .dadapt import dadapt_adamw as dadapt_adamw
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

__all__ = [
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "MomoAdamState",
    "MomoState",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dpsgd",
    "momo",
    "momo_adam",
]
