"""Learning-rate and hyperparameter schedules: the ``optax.schedules`` namespace.

One family of schedules per module (``polynomial.py``, ``cosine.py``,
``exponential.py``, ``join.py``, ``onecycle.py``, ``warmup.py``, ``sgdr.py``;
the ``StatefulSchedule`` interface in ``stateful.py``).
The namespace re-exports every name of ``optax.schedules``, including the
hyperparameter injection wrappers that live in :mod:`gradtx.wrappers.inject`.
"""

from .._core.base import Schedule as Schedule
from ..wrappers.inject import InjectHyperparamsState as InjectHyperparamsState
from ..wrappers.inject import (
    InjectStatefulHyperparamsState as InjectStatefulHyperparamsState,
)
from ..wrappers.inject import WrappedSchedule as WrappedSchedule
from ..wrappers.inject import inject_hyperparams as inject_hyperparams
from ..wrappers.inject import inject_stateful_hyperparams as inject_stateful_hyperparams
from .cosine import cosine_decay_schedule as cosine_decay_schedule
from .cosine import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from .exponential import exponential_decay as exponential_decay
from .join import join_schedules as join_schedules
from .onecycle import cosine_onecycle_schedule as cosine_onecycle_schedule
from .onecycle import linear_onecycle_schedule as linear_onecycle_schedule
from .onecycle import piecewise_interpolate_schedule as piecewise_interpolate_schedule
from .polynomial import constant_schedule as constant_schedule
from .polynomial import linear_schedule as linear_schedule
from .polynomial import piecewise_constant_schedule as piecewise_constant_schedule
from .polynomial import polynomial_schedule as polynomial_schedule
from .sgdr import sgdr_schedule as sgdr_schedule
from .stateful import StatefulSchedule as StatefulSchedule
from .warmup import warmup_constant_schedule as warmup_constant_schedule
from .warmup import (
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
)

__all__ = [
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "Schedule",
    "StatefulSchedule",
    "WrappedSchedule",
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
]
