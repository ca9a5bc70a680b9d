"""Exponential decay schedules."""

import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import Schedule
from .polynomial import Numeric, constant_schedule

POSITIVE_FINITE = dict(low=0.0, low_open=True, high_open=True)


def exponential_decay(
    init_value: Numeric,
    transition_steps: int,
    decay_rate: Numeric,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Numeric | None = None,
) -> Schedule:
    r"""Multiplies ``init_value`` by ``decay_rate`` every ``transition_steps``.

    .. math::
      v_t = I \, r^{\max(t - B, 0) / T}

    with the exponent rounded down if ``staircase``, then clipped at
    ``end_value`` (a floor when :math:`r < 1`, else a ceiling).

    Args:
      init_value: the value :math:`I` up to step :math:`B`.
      transition_steps: the steps :math:`T \ge 0` per factor (``0``: constant).
      decay_rate: the factor :math:`r > 0`, finite; above 1 the value grows.
      transition_begin: the step :math:`B \ge 0` at which the decay starts.
      staircase: decay in discrete jumps every ``transition_steps`` steps.
      end_value: an optional bound the value does not go past.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx import exponential_decay
      >>> sched = exponential_decay(1.0, 10, 0.5, staircase=True, end_value=0.25)
      >>> [float(sched(t)) for t in (0, 15, 20, 100)]
      [1.0, 0.5, 0.25, 0.25]
    """
    owner = "exponential_decay"
    _validate.number(owner, "init_value", init_value)
    _validate.integer(owner, "transition_steps", transition_steps)
    _validate.integer(owner, "transition_begin", transition_begin)
    _validate.number(owner, "decay_rate", decay_rate, **POSITIVE_FINITE)
    _validate.flag(owner, "staircase", staircase)
    if end_value is not None:
        _validate.number(owner, "end_value", end_value)
    if transition_steps == 0:
        return constant_schedule(init_value)

    def schedule(count):
        elapsed = jnp.asarray(count) - transition_begin
        periods = elapsed / transition_steps
        if staircase:
            periods = jnp.floor(periods)
        decayed = init_value * jnp.power(decay_rate, periods)
        value = jnp.where(elapsed <= 0, init_value, decayed)
        if end_value is None:
            return value
        floor, ceiling = jnp.maximum(value, end_value), jnp.minimum(value, end_value)
        return jnp.where(decay_rate < 1, floor, ceiling)

    return schedule
