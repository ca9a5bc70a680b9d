"""SGDR: cosine schedules with warm restarts."""

from collections.abc import Iterable, Mapping

from .._core.base import Schedule
from .cosine import warmup_cosine_decay_schedule
from .join import join_schedules
from .onecycle import Numeric
from .polynomial import schedule_type_error


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
      >>> from gradtx import sgdr_schedule
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
        raise schedule_type_error(
            owner, "cosine_kwargs", cosine_kwargs, "a sequence of dicts"
        )
    cycles, starts = [], [0]
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping):
            raise schedule_type_error(owner, f"cosine_kwargs[{i}]", kwargs, "a dict")
        try:
            cycles.append(warmup_cosine_decay_schedule(**kwargs))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{owner}: `cosine_kwargs[{i}]`: {e}") from e
        starts.append(starts[-1] + int(kwargs["decay_steps"]))
    if not cycles:
        raise ValueError(f"{owner}: `cosine_kwargs` must hold at least one cycle.")
    return join_schedules(cycles, starts[1:-1])
