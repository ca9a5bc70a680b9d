"""Schedules ``step -> value``, with Optax's names, arguments and values.

``step`` is an int32 scalar (possibly traced), a Python int or an array of steps
(computed element by element). Factories check their arguments once, naming the
argument, its value and the accepted range. Float hyperparameters may be Python
numbers or JAX scalars, traced ones included; step counts are Python integers.
"""

from collections.abc import Mapping

import chex
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import Schedule

Numeric = chex.Numeric

__all__ = [
    "constant_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "polynomial_schedule",
]


def check_schedule_args(owner: str, check, **values) -> None:
    for name, value in values.items():
        check(owner, name, value)


def schedule_type_error(owner: str, name: str, value, expected: str) -> TypeError:
    got = f"{value!r} of type {type(value).__name__}"
    return TypeError(f"{owner}: `{name}` must be {expected}, got {got}.")


def constant_schedule(value: Numeric) -> Schedule:
    """A schedule that always returns ``value``: :math:`v_t = v`.

    Args:
      value: the value to return, a real scalar.

    Returns:
      A schedule; given an array of steps, ``value`` in the steps' shape.

    Examples:
      >>> from gradtx import constant_schedule
      >>> float(constant_schedule(0.5)(1000))
      0.5
    """
    _validate.number("constant_schedule", "value", value)
    return lambda count: jnp.broadcast_to(jnp.asarray(value), jnp.shape(count))


def _polynomial(owner, init_value, end_value, power, transition_steps, begin):
    """The ramp behind :func:`polynomial_schedule` and :func:`linear_schedule`."""
    check_schedule_args(
        owner, _validate.number, init_value=init_value, end_value=end_value
    )
    _validate.non_negative(owner, "power", power)
    _validate.integer(owner, "transition_steps", transition_steps)
    _validate.integer(owner, "transition_begin", begin)
    if transition_steps == 0:
        return constant_schedule(init_value)

    def schedule(count):
        elapsed = jnp.clip(jnp.asarray(count) - begin, 0, transition_steps)
        # Clamped: under jit XLA may compute 1 - T * (1 / T) < 0, and then a
        # fractional power of it would be NaN after the ramp.
        remaining = jnp.maximum(1 - elapsed / transition_steps, 0)
        return (init_value - end_value) * remaining**power + end_value

    return schedule


def polynomial_schedule(
    init_value: Numeric,
    end_value: Numeric,
    power: Numeric,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""A polynomial ramp from ``init_value`` to ``end_value``.

    With :math:`\tau = \min(\max(t - B, 0), T)` (:math:`I` until step :math:`B`):

    .. math::
      v_t = (I - E) \left(1 - \tau / T\right)^P + E

    Args:
      init_value: the value :math:`I` before the ramp.
      end_value: the value :math:`E` after the ramp.
      power: the exponent :math:`P \ge 0` of the ramp (1 is linear).
      transition_steps: the ramp's length :math:`T \ge 0` (``0``: constant).
      transition_begin: the step :math:`B \ge 0` at which the ramp starts.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import polynomial_schedule
      >>> sched = polynomial_schedule(1.0, 0.0, power=2, transition_steps=100)
      >>> sched(jnp.array([0, 50, 100, 300])).tolist()
      [1.0, 0.25, 0.0, 0.0]
    """
    args = (init_value, end_value, power, transition_steps, transition_begin)
    return _polynomial("polynomial_schedule", *args)


def linear_schedule(
    init_value: Numeric,
    end_value: Numeric,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""A linear ramp from ``init_value`` to ``end_value``.

    :func:`polynomial_schedule` with power 1; :math:`\tau = \min(\max(t-B, 0), T)`:

    .. math::
      v_t = I + (E - I) \, \tau / T

    Args:
      init_value: the value :math:`I` before the ramp.
      end_value: the value :math:`E` after the ramp.
      transition_steps: the ramp's length :math:`T \ge 0` (``0``: constant).
      transition_begin: the step :math:`B \ge 0` at which the ramp starts.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx import linear_schedule
      >>> [float(linear_schedule(1.0, 0.0, 100, 10)(t)) for t in (0, 60, 200)]
      [1.0, 0.5, 0.0]
    """
    args = (init_value, end_value, 1, transition_steps, transition_begin)
    return _polynomial("linear_schedule", *args)


def piecewise_constant_schedule(
    init_value: Numeric, boundaries_and_scales: Mapping[int, Numeric] | None = None
) -> Schedule:
    r"""A value multiplied by a given factor at each of some given steps.

    .. math::
      v_t = I \prod_{b_i \le t} s_i

    Args:
      init_value: the value :math:`I` before the first boundary.
      boundaries_and_scales: a dict ``{b_i: s_i}`` of integer steps
        :math:`b_i \ge 0` and scales :math:`s_i \ge 0`, or ``None``.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx import piecewise_constant_schedule
      >>> sched = piecewise_constant_schedule(1.0, {100: 0.5, 200: 0.5})
      >>> [float(sched(t)) for t in (99, 100, 250)]
      [1.0, 0.5, 0.25]
    """
    owner = "piecewise_constant_schedule"
    _validate.number(owner, "init_value", init_value)
    jumps = {} if boundaries_and_scales is None else boundaries_and_scales
    if not isinstance(jumps, Mapping):
        raise schedule_type_error(
            owner, "boundaries_and_scales", jumps, "a dict or None"
        )
    for boundary, scale in jumps.items():
        _validate.integer(owner, "boundaries_and_scales key", boundary)
        _validate.non_negative(owner, f"boundaries_and_scales[{boundary}]", scale)
    jumps = sorted(jumps.items())
    if not jumps:
        return constant_schedule(init_value)

    def schedule(count):
        count, value = jnp.asarray(count), jnp.asarray(init_value)
        for boundary, scale in jumps:
            value = jnp.where(count >= boundary, value * scale, value)
        return value

    return schedule
