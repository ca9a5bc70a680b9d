"""Schedules ``step -> value``, with Optax's names, arguments and values.

``step`` is an int32 scalar (possibly traced), a Python int or an array of steps
(computed element by element). Factories check their arguments once, naming the
argument, its value and the accepted range. Float hyperparameters may be Python
numbers or JAX scalars, traced ones included; step counts are Python integers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import chex
import jax.numpy as jnp
from jax.core import Tracer

from .._core import validation as _validate
from .._core.base import Schedule

Numeric = chex.Numeric

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_schedule",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "warmup_cosine_decay_schedule",
]


_POSITIVE_FINITE = dict(low=0.0, low_open=True, high_open=True)


def _check(owner: str, check, **values) -> None:
    for name, value in values.items():
        check(owner, name, value)


def _type_error(owner: str, name: str, value, expected: str) -> TypeError:
    got = f"{value!r} of type {type(value).__name__}"
    return TypeError(f"{owner}: `{name}` must be {expected}, got {got}.")


def constant_schedule(value: Numeric) -> Schedule:
    """A schedule that always returns ``value``: :math:`v_t = v`.

    Args:
      value: the value to return, a real scalar.

    Returns:
      A schedule; given an array of steps, ``value`` in the steps' shape.

    Examples:
      >>> from gradtx.schedules.polynomial import constant_schedule
      >>> float(constant_schedule(0.5)(1000))
      0.5
    """
    _validate.number("constant_schedule", "value", value)
    return lambda count: jnp.broadcast_to(jnp.asarray(value), jnp.shape(count))


def _polynomial(owner, init_value, end_value, power, transition_steps, begin):
    """The ramp behind :func:`polynomial_schedule` and :func:`linear_schedule`."""
    _check(owner, _validate.number, init_value=init_value, end_value=end_value)
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
      >>> from gradtx.schedules.polynomial import polynomial_schedule
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
      >>> from gradtx.schedules.polynomial import linear_schedule
      >>> [float(linear_schedule(1.0, 0.0, 100, 10)(t)) for t in (0, 60, 200)]
      [1.0, 0.5, 0.0]
    """
    args = (init_value, end_value, 1, transition_steps, transition_begin)
    return _polynomial("linear_schedule", *args)


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
      >>> from gradtx.schedules.polynomial import exponential_decay
      >>> sched = exponential_decay(1.0, 10, 0.5, staircase=True, end_value=0.25)
      >>> [float(sched(t)) for t in (0, 15, 20, 100)]
      [1.0, 0.5, 0.25, 0.25]
    """
    owner = "exponential_decay"
    _validate.number(owner, "init_value", init_value)
    _validate.integer(owner, "transition_steps", transition_steps)
    _validate.integer(owner, "transition_begin", transition_begin)
    _validate.number(owner, "decay_rate", decay_rate, **_POSITIVE_FINITE)
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


def cosine_decay_schedule(
    init_value: Numeric,
    decay_steps: int,
    alpha: Numeric = 0.0,
    exponent: Numeric = 1.0,
) -> Schedule:
    r"""Half a cosine from ``init_value`` down to ``alpha * init_value``.

    With :math:`\tau = \min(t, T)` and :math:`c_t = (1 + \cos(\pi \tau / T)) / 2`:

    .. math::
      v_t = I \left[ (1 - \alpha) \, c_t^{\,p} + \alpha \right]

    Args:
      init_value: the value :math:`I` at step 0.
      decay_steps: the decay's length :math:`T \ge 1`; then the value is
        :math:`\alpha I`.
      alpha: the final value as a fraction of ``init_value``.
      exponent: the power :math:`p \ge 0` applied to the cosine factor.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.polynomial import cosine_decay_schedule
      >>> [round(float(cosine_decay_schedule(1.0, 100)(t)), 6) for t in (0, 50, 150)]
      [1.0, 0.5, 0.0]

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
    """
    owner = "cosine_decay_schedule"
    _check(owner, _validate.number, init_value=init_value, alpha=alpha)
    _validate.integer(owner, "decay_steps", decay_steps, low=1)
    _validate.non_negative(owner, "exponent", exponent)
    horizon = float(decay_steps)  # a checked Python int; a float cannot overflow

    def schedule(count):
        elapsed = jnp.minimum(jnp.asarray(count), horizon)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * elapsed / horizon))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


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
      >>> from gradtx.schedules.polynomial import piecewise_constant_schedule
      >>> sched = piecewise_constant_schedule(1.0, {100: 0.5, 200: 0.5})
      >>> [float(sched(t)) for t in (99, 100, 250)]
      [1.0, 0.5, 0.25]
    """
    owner = "piecewise_constant_schedule"
    _validate.number(owner, "init_value", init_value)
    jumps = {} if boundaries_and_scales is None else boundaries_and_scales
    if not isinstance(jumps, Mapping):
        raise _type_error(owner, "boundaries_and_scales", jumps, "a dict or None")
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


def _as_list(owner: str, name: str, value, what: str, check) -> list:
    """A list from a sequence; a lone schedule or number is a common mistake."""
    lone = callable(value) or isinstance(value, (str, Mapping, Tracer))
    if lone or not isinstance(value, Iterable):
        raise _type_error(owner, name, value, f"a sequence of {what}")
    items = list(value)
    for i, item in enumerate(items):
        check(owner, f"{name}[{i}]", item)
    return items


def _callable(owner: str, name: str, value) -> None:
    if not callable(value):
        raise _type_error(owner, name, value, "a schedule (a callable step -> value)")


def join_schedules(
    schedules: Sequence[Schedule], boundaries: Sequence[int]
) -> Schedule:
    r"""Runs ``schedules`` one after another, switching at ``boundaries``.

    With boundaries :math:`b_0 = 0 \le b_1 < \dots < b_{n-1}`, schedule
    :math:`f_i` runs from step :math:`b_i`, counting steps from its own start:

    .. math::
      v_t = f_i(t - b_i) \quad \text{for } b_i \le t < b_{i+1}

    Args:
      schedules: the :math:`n \ge 1` schedules, in order.
      boundaries: :math:`n - 1` strictly increasing integer steps :math:`\ge 0`
        at which the next schedule takes over.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.polynomial import join_schedules, linear_schedule
      >>> up, down = linear_schedule(0.0, 1.0, 5), linear_schedule(1.0, 0.0, 10)
      >>> sched = join_schedules([up, down], boundaries=[5])
      >>> [float(sched(t)) for t in (0, 5, 10, 20)]
      [0.0, 1.0, 0.5, 0.0]
    """
    owner = "join_schedules"
    schedules = _as_list(owner, "schedules", schedules, "schedules", _callable)
    boundaries = _as_list(owner, "boundaries", boundaries, "ints", _validate.integer)
    if not schedules:
        raise ValueError(f"{owner}: `schedules` must hold at least one schedule.")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{owner}: `boundaries` must hold len(schedules) - 1 = "
            f"{len(schedules) - 1} steps, got {len(boundaries)}: {boundaries!r}."
        )
    if any(a >= b for a, b in itertools.pairwise(boundaries)):
        raise ValueError(
            f"{owner}: `boundaries` must be strictly increasing, got {boundaries!r}."
        )

    def schedule(count):
        value = schedules[0](count)
        for boundary, later in zip(boundaries, schedules[1:], strict=True):
            value = jnp.where(count < boundary, value, later(count - boundary))
        return value

    return schedule


def _end_fraction(end_value, peak_value):
    """``end_value / peak_value``, or 0 when ``peak_value`` is 0."""
    if isinstance(end_value, Tracer) or isinstance(peak_value, Tracer):
        is_zero = peak_value == 0
        return jnp.where(is_zero, 0.0, end_value / jnp.where(is_zero, 1, peak_value))
    return 0.0 if peak_value == 0 else end_value / peak_value


def warmup_cosine_decay_schedule(
    init_value: Numeric,
    peak_value: Numeric,
    warmup_steps: int,
    decay_steps: int,
    end_value: Numeric = 0.0,
    exponent: Numeric = 1.0,
) -> Schedule:
    r"""A linear warmup to ``peak_value``, then a cosine decay to ``end_value``.

    With :math:`W` warmup steps, :math:`D` steps in all (warmup included) and
    :math:`c_t = (1 + \cos(\pi \min(t - W, D - W) / (D - W))) / 2`:

    .. math::
      v_t = \begin{cases}
        I + (P - I) \, t / W & t < W \\
        E + (P - E) \, c_t^{\,p} & t \ge W
      \end{cases}

    A :func:`join_schedules` of :func:`linear_schedule` and
    :func:`cosine_decay_schedule`; if :math:`P = 0` the value stays 0 after W.

    Args:
      init_value: the value :math:`I` at step 0.
      peak_value: the value :math:`P` at the end of the warmup.
      warmup_steps: the warmup's length :math:`W \ge 0` (``0``: no warmup).
      decay_steps: the schedule's total length :math:`D > W`, warmup included.
      end_value: the value :math:`E` from step :math:`D` on.
      exponent: the power :math:`p \ge 0` applied to the cosine factor.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.polynomial import warmup_cosine_decay_schedule
      >>> sched = warmup_cosine_decay_schedule(0.0, 1.0, 10, 110)
      >>> [round(float(sched(t)), 6) for t in (5, 10, 60, 200)]
      [0.5, 1.0, 0.5, 0.0]

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
    """
    owner = "warmup_cosine_decay_schedule"
    _check(owner, _validate.number, init_value=init_value, peak_value=peak_value)
    _validate.number(owner, "end_value", end_value)
    _check(owner, _validate.integer, warmup_steps=warmup_steps, decay_steps=decay_steps)
    _validate.non_negative(owner, "exponent", exponent)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"{owner}: `decay_steps` (the total length, warmup included) must be"
            f" > `warmup_steps`, got {decay_steps} <= {warmup_steps}."
        )
    alpha = _end_fraction(end_value, peak_value)
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    decay = cosine_decay_schedule(
        peak_value, decay_steps - warmup_steps, alpha, exponent
    )
    return join_schedules([warmup, decay], [warmup_steps])
