"""The interface of a stateful schedule, as ``optax.schedules.StatefulSchedule``.

A plain schedule is a function ``step -> value``. A stateful schedule carries
its own state, so its value can depend on more than the step (a loss seen so
far, a plateau counter, …): ``init() -> state``,
``update(state, **extra_args) -> state`` and
``__call__(state, **extra_args) -> value``. :func:`gradtx.inject_hyperparams`
accepts such objects for any hyperparameter and keeps their state in its own.
"""

from typing import Any, Protocol, runtime_checkable

import jax

ScheduleState = Any


@runtime_checkable
class StatefulSchedule(Protocol):
    """A schedule that keeps a state: ``init``, ``update`` and ``__call__``.

    ``isinstance(obj, StatefulSchedule)`` holds for any object with the three
    methods (a structural check, as in Optax); subclassing is optional.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.schedules import StatefulSchedule
      >>> class Halving:
      ...     def init(self):
      ...         return jnp.ones([])
      ...     def update(self, state, **extra_args):
      ...         return state / 2
      ...     def __call__(self, state, **extra_args):
      ...         return 0.1 * state
      >>> isinstance(Halving(), StatefulSchedule)
      True
    """

    def init(self) -> ScheduleState:
        """The initial state."""

    def update(self, state: ScheduleState, **extra_args) -> ScheduleState:
        """The state after one more step (``extra_args`` as passed to update)."""

    def __call__(self, state: ScheduleState, **extra_args) -> jax.typing.ArrayLike:
        """The value of the schedule in ``state``."""
