"""Optax's contributed optimizers (``optax.contrib``), public as ``gradtx.contrib``.

As in Optax, these names are not exported at the top level of :mod:`gradtx`.
"""

from .dadapt import DAdaptAdamWState as DAdaptAdamWState
from .dadapt import dadapt_adamw as dadapt_adamw

__all__ = [
    "DAdaptAdamWState",
    "dadapt_adamw",
]
