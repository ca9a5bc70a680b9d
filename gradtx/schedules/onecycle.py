"""More schedules: warmups, one-cycle, warm restarts and interpolated steps.

Each is built from the schedules of :mod:`gradtx.schedules` (mostly as a
:func:`~gradtx.schedules.join_schedules` of simpler pieces), and checks its own
arguments first so that errors name the factory the user called. Names,
arguments and values follow Optax.
"""

from collections.abc import Mapping

import chex
import jax.numpy as jnp
from jax.core import Tracer

from .._core import validation as _validate
from .._core.base import Schedule
from .exponential import POSITIVE_FINITE
from .join import join_schedules
from .polynomial import constant_schedule, schedule_type_error

Numeric = chex.Numeric

__all__ = [
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
    "piecewise_interpolate_schedule",
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
        raise schedule_type_error(
            owner, "boundaries_and_scales", jumps, "a dict or None"
        )
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
      >>> from gradtx import piecewise_interpolate_schedule
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
    _validate.number(owner, "div_factor", div_factor, **POSITIVE_FINITE)
    _validate.number(owner, "final_div_factor", final_div, **POSITIVE_FINITE)
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
      >>> from gradtx import linear_onecycle_schedule
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
      >>> from gradtx import cosine_onecycle_schedule
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
