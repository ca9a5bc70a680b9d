"""Cosine decay schedules, with and without linear warmup."""

import jax.numpy as jnp
from jax.core import Tracer

from .._core import validation as _validate
from .._core.base import Schedule
from .join import join_schedules
from .polynomial import Numeric, check_schedule_args, linear_schedule


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
      >>> from gradtx import cosine_decay_schedule
      >>> [round(float(cosine_decay_schedule(1.0, 100)(t)), 6) for t in (0, 50, 150)]
      [1.0, 0.5, 0.0]

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
    """
    owner = "cosine_decay_schedule"
    check_schedule_args(owner, _validate.number, init_value=init_value, alpha=alpha)
    _validate.integer(owner, "decay_steps", decay_steps, low=1)
    _validate.non_negative(owner, "exponent", exponent)
    horizon = float(decay_steps)  # a checked Python int; a float cannot overflow

    def schedule(count):
        elapsed = jnp.minimum(jnp.asarray(count), horizon)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * elapsed / horizon))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

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
      >>> from gradtx import warmup_cosine_decay_schedule
      >>> sched = warmup_cosine_decay_schedule(0.0, 1.0, 10, 110)
      >>> [round(float(sched(t)), 6) for t in (5, 10, 60, 200)]
      [0.5, 1.0, 0.5, 0.0]

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
    """
    owner = "warmup_cosine_decay_schedule"
    check_schedule_args(
        owner, _validate.number, init_value=init_value, peak_value=peak_value
    )
    _validate.number(owner, "end_value", end_value)
    check_schedule_args(
        owner, _validate.integer, warmup_steps=warmup_steps, decay_steps=decay_steps
    )
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
