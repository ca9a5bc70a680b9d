"""More schedules: warmups, one-cycle, warm restarts and interpolated steps.

Each is built from the schedules of :mod:`gradtx.schedules` (mostly as a
:func:`~gradtx.schedules.join_schedules` of simpler pieces), and checks its own
arguments first so that errors name the factory the user called. Names,
arguments and values follow Optax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import chex
import jax.numpy as jnp
from jax.core import Tracer

from .._core import validation as _validate
from .._core.base import Schedule
from .polynomial import (
    _POSITIVE_FINITE,
    _check,
    _type_error,
    constant_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    warmup_cosine_decay_schedule,
)

Numeric = chex.Numeric

__all__ = [
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
    "piecewise_interpolate_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_exponential_decay_schedule",
]

_INTERPOLATIONS = ("linear", "cosine")


def _segment(kind: str, start, end, length: int) -> Schedule:
    """Goes from ``start`` (step 0) towards ``end`` (step ``length``)."""

    def schedule(count):
        frac = jnp.clip(jnp.asarray(count) / length, 0, 1)
        if kind == "linear":
            return (end - start) * frac + start
        return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * frac) + 1)

    return schedule


def _interpolated(kind: str, init_value, jumps: list) -> Schedule:
    """Interpolates between the running products of ``init_value`` and scales.

    ``jumps`` is a sorted list of ``(boundary, scale)``, already checked.
    """
    # Products in the arrays' dtype (float32 by default), as Optax rounds them:
    # near the end of a long decay the value is dominated by their rounding.
    starts, pieces, value, begin = [], [], jnp.asarray(init_value), 0
    for boundary, scale in jumps:
        target = value * jnp.asarray(scale)
        if boundary > begin:  # a boundary at step 0 has an empty segment
            starts.append(begin)
            pieces.append(_segment(kind, value, target, boundary - begin))
        value, begin = target, boundary
    starts.append(begin)
    pieces.append(constant_schedule(value))
    return join_schedules(pieces, starts[1:])


def _checked_jumps(owner: str, boundaries_and_scales) -> list:
    jumps = {} if boundaries_and_scales is None else boundaries_and_scales
    if not isinstance(jumps, Mapping):
        raise _type_error(owner, "boundaries_and_scales", jumps, "a dict or None")
    for boundary, scale in jumps.items():
        _validate.integer(owner, "boundaries_and_scales key", boundary)
        _validate.non_negative(owner, f"boundaries_and_scales[{boundary}]", scale)
    return sorted((int(b), s) for b, s in jumps.items())


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: Numeric,
    boundaries_and_scales: Mapping[int, Numeric] | None = None,
) -> Schedule:
    r"""Interpolates between values that are scaled at given steps.

    With boundaries :math:`0 = b_0 < b_1 < \dots < b_n`, scales :math:`s_i` and
    :math:`v_i = I \prod_{j \le i} s_j` (:math:`v_0 = I`), for
    :math:`b_{i-1} \le t < b_i` and :math:`f = (t - b_{i-1}) / (b_i - b_{i-1})`:

    .. math::
      v_t = \begin{cases}
        v_{i-1} + (v_i - v_{i-1}) \, f & \text{linear} \\
        v_i + (v_{i-1} - v_i) \, (1 + \cos \pi f) / 2 & \text{cosine}
      \end{cases}

    and :math:`v_t = v_n` from :math:`b_n` on. The schedule moves between the
    *accumulated* values :math:`v_i`, not between the scales themselves.

    Args:
      interpolate_type: ``"linear"`` or ``"cosine"``.
      init_value: the value :math:`I` at step 0.
      boundaries_and_scales: a dict ``{b_i: s_i}`` of integer steps
        :math:`b_i \ge 0` and scales :math:`s_i \ge 0`, or ``None``.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.onecycle import piecewise_interpolate_schedule
      >>> sched = piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01})
      >>> [round(float(sched(t)), 6) for t in (0, 2, 4, 6, 8, 10)]
      [1.0, 0.55, 0.1, 0.0505, 0.001, 0.001]
    """
    owner = "piecewise_interpolate_schedule"
    if not isinstance(interpolate_type, str) or interpolate_type not in _INTERPOLATIONS:
        raise ValueError(
            f"{owner}: `interpolate_type` must be 'linear' or 'cosine', "
            f"got {interpolate_type!r}."
        )
    _validate.number(owner, "init_value", init_value)
    jumps = _checked_jumps(owner, boundaries_and_scales)
    return _interpolated(interpolate_type, init_value, jumps)


def _concrete_fraction(owner: str, name: str, value) -> float:
    """A Python float in [0, 1]: it decides where the phases start."""
    if isinstance(value, Tracer):
        raise TypeError(
            f"{owner}: `{name}` must be a concrete number (it sets the phase "
            "boundaries, which are whole steps), got a traced value."
        )
    _validate.number(owner, name, value, low=0.0, high=1.0)
    return float(value)


def _onecycle_checks(owner, transition_steps, peak_value, div_factor, final_div):
    _validate.integer(owner, "transition_steps", transition_steps, low=1)
    _validate.number(owner, "peak_value", peak_value)
    _validate.number(owner, "div_factor", div_factor, **_POSITIVE_FINITE)
    _validate.number(owner, "final_div_factor", final_div, **_POSITIVE_FINITE)
    return int(transition_steps)


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: Numeric,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: Numeric = 25.0,
    final_div_factor: Numeric = 1e4,
) -> Schedule:
    r"""The one-cycle policy with three linear phases.

    With :math:`P` the peak, :math:`I = P / d` (``div_factor``),
    :math:`T_1 = \lfloor p_s T \rfloor` and :math:`T_2 = \lfloor p_f T \rfloor`:
    from :math:`I` up to :math:`P` over :math:`[0, T_1]`, back down to
    :math:`I` over :math:`[T_1, T_2]`, then down to :math:`I / D`
    (``final_div_factor``) over :math:`[T_2, T]`, constant afterwards. It is
    :func:`piecewise_interpolate_schedule` ``("linear", I, {T_1: d,
    T_2: 1/d, T: 1/D})``.

    Unlike Optax, phases that would collapse (:math:`T_1 \ge T_2` or
    :math:`T_2 \ge T`, where Optax silently drops a scale and never reaches
    the peak, or ends elsewhere) raise a ``ValueError``.

    Args:
      transition_steps: the cycle's length :math:`T \ge 1`.
      peak_value: the value :math:`P` reached at step :math:`T_1`.
      pct_start: the fraction :math:`p_s \in [0, 1]` of the cycle spent rising.
      pct_final: the fraction :math:`p_f \in [p_s, 1]` of the cycle after
        which the final decay starts.
      div_factor: :math:`d > 0`; the cycle starts and dips back to :math:`P / d`.
      final_div_factor: :math:`D > 0`; the cycle ends at :math:`P / (d D)`.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.onecycle import linear_onecycle_schedule
      >>> sched = linear_onecycle_schedule(100, 1.0, div_factor=10.0)
      >>> [round(float(sched(t)), 6) for t in (0, 30, 85, 200)]
      [0.1, 1.0, 0.1, 1e-05]

    References:
      Smith & Topin, `Super-Convergence: Very Fast Training of Neural Networks
      Using Large Learning Rates <https://arxiv.org/abs/1708.07120>`_, 2017.
    """
    owner = "linear_onecycle_schedule"
    steps = _onecycle_checks(
        owner, transition_steps, peak_value, div_factor, final_div_factor
    )
    rise = int(_concrete_fraction(owner, "pct_start", pct_start) * steps)
    fall = int(_concrete_fraction(owner, "pct_final", pct_final) * steps)
    if not rise < fall < steps:
        raise ValueError(
            f"{owner}: `pct_final` must give int(pct_start * T) < "
            f"int(pct_final * T) < T = {steps} (three non-empty phases), got "
            f"{rise}, {fall} (pct_start={pct_start}, pct_final={pct_final})."
        )
    jumps = [
        (rise, div_factor),
        (fall, 1.0 / div_factor),
        (steps, 1 / final_div_factor),
    ]
    return _interpolated("linear", peak_value / div_factor, jumps)


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: Numeric,
    pct_start: float = 0.3,
    div_factor: Numeric = 25.0,
    final_div_factor: Numeric = 1e4,
) -> Schedule:
    r"""The one-cycle policy with two cosine phases.

    With :math:`P` the peak, :math:`I = P / d` (``div_factor``) and
    :math:`T_1 = \lfloor p_s T \rfloor`: a half cosine from :math:`I` up to
    :math:`P` over :math:`[0, T_1]`, then another down to :math:`I / D`
    (``final_div_factor``) over :math:`[T_1, T]`, constant afterwards. It is
    :func:`piecewise_interpolate_schedule` ``("cosine", I, {T_1: d,
    T: 1/(d D)})``.

    Unlike Optax, :math:`T_1 = T` (where Optax silently drops the rise) raises
    a ``ValueError``.

    Args:
      transition_steps: the cycle's length :math:`T \ge 1`.
      peak_value: the value :math:`P` reached at step :math:`T_1`.
      pct_start: the fraction :math:`p_s \in [0, 1)` of the cycle spent rising.
      div_factor: :math:`d > 0`; the cycle starts at :math:`P / d`.
      final_div_factor: :math:`D > 0`; the cycle ends at :math:`P / (d D)`.

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.onecycle import cosine_onecycle_schedule
      >>> sched = cosine_onecycle_schedule(100, 1.0, pct_start=0.5, div_factor=10.0)
      >>> [round(float(sched(t)), 6) for t in (0, 25, 50, 200)]
      [0.1, 0.55, 1.0, 1e-05]

    References:
      Smith & Topin, `Super-Convergence: Very Fast Training of Neural Networks
      Using Large Learning Rates <https://arxiv.org/abs/1708.07120>`_, 2017.
    """
    owner = "cosine_onecycle_schedule"
    steps = _onecycle_checks(
        owner, transition_steps, peak_value, div_factor, final_div_factor
    )
    rise = int(_concrete_fraction(owner, "pct_start", pct_start) * steps)
    if rise >= steps:
        raise ValueError(
            f"{owner}: `pct_start` must leave a decay phase: int(pct_start * T) "
            f"must be < T = {steps}, got {rise} (pct_start={pct_start})."
        )
    jumps = [(rise, div_factor), (steps, 1.0 / (div_factor * final_div_factor))]
    return _interpolated("cosine", peak_value / div_factor, jumps)


def warmup_constant_schedule(
    init_value: Numeric, peak_value: Numeric, warmup_steps: int
) -> Schedule:
    r"""A linear warmup from ``init_value`` to ``peak_value``, then constant.

    .. math::
      v_t = I + (P - I) \min(t, W) / W

    (:func:`~gradtx.schedules.linear_schedule` from :math:`I` to :math:`P`).

    Args:
      init_value: the value :math:`I` at step 0.
      peak_value: the value :math:`P` from step :math:`W` on.
      warmup_steps: the warmup's length :math:`W \ge 0` (``0``: constant
        ``init_value``, as in Optax).

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.onecycle import warmup_constant_schedule
      >>> sched = warmup_constant_schedule(0.0, 1.0, 10)
      >>> [float(sched(t)) for t in (0, 5, 10, 1000)]
      [0.0, 0.5, 1.0, 1.0]
    """
    owner = "warmup_constant_schedule"
    _check(owner, _validate.number, init_value=init_value, peak_value=peak_value)
    _validate.integer(owner, "warmup_steps", warmup_steps)
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_exponential_decay_schedule(
    init_value: Numeric,
    peak_value: Numeric,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: Numeric,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Numeric | None = None,
) -> Schedule:
    r"""A linear warmup to ``peak_value``, then an exponential decay.

    With :math:`s = t - W`, the steps since the warmup ended:

    .. math::
      v_t = \begin{cases}
        I + (P - I) \, t / W & t < W \\
        P \, r^{\max(s - B, 0) / T} & t \ge W
      \end{cases}

    the exponent rounded down if ``staircase``, the decay clipped at
    ``end_value``: a :func:`~gradtx.schedules.join_schedules` of
    :func:`~gradtx.schedules.linear_schedule` and
    :func:`~gradtx.schedules.exponential_decay`. As there, a ``decay_rate`` of
    0 (a constant ``peak_value`` in Optax) is rejected.

    Args:
      init_value: the value :math:`I` at step 0.
      peak_value: the value :math:`P` at the end of the warmup.
      warmup_steps: the warmup's length :math:`W \ge 0`.
      transition_steps: the steps :math:`T \ge 0` per factor (``0``: constant
        ``peak_value`` after the warmup).
      decay_rate: the factor :math:`r > 0`, finite.
      transition_begin: the steps :math:`B \ge 0` after the warmup during
        which the value stays at ``peak_value``.
      staircase: decay in discrete jumps every ``transition_steps`` steps.
      end_value: an optional bound the decay does not go past (a floor when
        :math:`r < 1`, else a ceiling).

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.onecycle import warmup_exponential_decay_schedule
      >>> sched = warmup_exponential_decay_schedule(0.0, 1.0, 10, 10, 0.5)
      >>> [float(sched(t)) for t in (5, 10, 20, 30)]
      [0.5, 1.0, 0.5, 0.25]
    """
    owner = "warmup_exponential_decay_schedule"
    _check(owner, _validate.number, init_value=init_value, peak_value=peak_value)
    _check(
        owner,
        _validate.integer,
        warmup_steps=warmup_steps,
        transition_steps=transition_steps,
        transition_begin=transition_begin,
    )
    _validate.number(owner, "decay_rate", decay_rate, **_POSITIVE_FINITE)
    _validate.flag(owner, "staircase", staircase)
    if end_value is not None:
        _validate.number(owner, "end_value", end_value)
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return join_schedules([warmup, decay], [warmup_steps])


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Numeric]]) -> Schedule:
    r"""Stochastic gradient descent with warm restarts: cosine cycles in a row.

    Cycle :math:`k` is :func:`~gradtx.schedules.warmup_cosine_decay_schedule`
    ``(**cosine_kwargs[k])``; it lasts its ``decay_steps`` steps (warmup
    included), and the next one then restarts with its own step count at 0.
    The last cycle's ``end_value`` holds after it.

    Args:
      cosine_kwargs: a non-empty sequence of dicts, each holding the keyword
        arguments of one :func:`~gradtx.schedules.warmup_cosine_decay_schedule`
        (``init_value``, ``peak_value``, ``warmup_steps``, ``decay_steps``,
        optionally ``end_value`` and ``exponent``).

    Returns:
      A schedule ``step -> value``.

    Examples:
      >>> from gradtx.schedules.onecycle import sgdr_schedule
      >>> cycle = dict(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=110)
      >>> sched = sgdr_schedule([cycle, cycle])
      >>> [round(float(sched(t)), 6) for t in (10, 60, 115, 170, 500)]
      [1.0, 0.5, 0.5, 0.5, 0.0]

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
    """
    owner = "sgdr_schedule"
    lone = isinstance(cosine_kwargs, (str, Mapping)) or callable(cosine_kwargs)
    if lone or not isinstance(cosine_kwargs, Iterable):
        raise _type_error(owner, "cosine_kwargs", cosine_kwargs, "a sequence of dicts")
    cycles, starts = [], [0]
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping):
            raise _type_error(owner, f"cosine_kwargs[{i}]", kwargs, "a dict")
        try:
            cycles.append(warmup_cosine_decay_schedule(**kwargs))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{owner}: `cosine_kwargs[{i}]`: {e}") from e
        starts.append(starts[-1] + int(kwargs["decay_steps"]))
    if not cycles:
        raise ValueError(f"{owner}: `cosine_kwargs` must hold at least one cycle.")
    return join_schedules(cycles, starts[1:-1])
