"""Warmup schedules: linear warmup followed by a constant or exponential decay."""

from .._core import validation as _validate
from .._core.base import Schedule
from .exponential import POSITIVE_FINITE, exponential_decay
from .join import join_schedules
from .onecycle import Numeric
from .polynomial import check_schedule_args, linear_schedule


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
      >>> from gradtx import warmup_constant_schedule
      >>> sched = warmup_constant_schedule(0.0, 1.0, 10)
      >>> [float(sched(t)) for t in (0, 5, 10, 1000)]
      [0.0, 0.5, 1.0, 1.0]
    """
    owner = "warmup_constant_schedule"
    check_schedule_args(
        owner, _validate.number, init_value=init_value, peak_value=peak_value
    )
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
      >>> from gradtx import warmup_exponential_decay_schedule
      >>> sched = warmup_exponential_decay_schedule(0.0, 1.0, 10, 10, 0.5)
      >>> [float(sched(t)) for t in (5, 10, 20, 30)]
      [0.5, 1.0, 0.5, 0.25]
    """
    owner = "warmup_exponential_decay_schedule"
    check_schedule_args(
        owner, _validate.number, init_value=init_value, peak_value=peak_value
    )
    check_schedule_args(
        owner,
        _validate.integer,
        warmup_steps=warmup_steps,
        transition_steps=transition_steps,
        transition_begin=transition_begin,
    )
    _validate.number(owner, "decay_rate", decay_rate, **POSITIVE_FINITE)
    _validate.flag(owner, "staircase", staircase)
    if end_value is not None:
        _validate.number(owner, "end_value", end_value)
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return join_schedules([warmup, decay], [warmup_steps])
