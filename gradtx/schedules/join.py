"""Joining schedules at boundaries."""

import itertools
from collections.abc import Iterable, Mapping, Sequence

import jax.numpy as jnp
from jax.core import Tracer

from .._core import validation as _validate
from .._core.base import Schedule
from .polynomial import schedule_type_error


def _as_list(owner: str, name: str, value, what: str, check) -> list:
    """A list from a sequence; a lone schedule or number is a common mistake."""
    lone = callable(value) or isinstance(value, (str, Mapping, Tracer))
    if lone or not isinstance(value, Iterable):
        raise schedule_type_error(owner, name, value, f"a sequence of {what}")
    items = list(value)
    for i, item in enumerate(items):
        check(owner, f"{name}[{i}]", item)
    return items


def _callable(owner: str, name: str, value) -> None:
    if not callable(value):
        raise schedule_type_error(
            owner, name, value, "a schedule (a callable step -> value)"
        )


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
      >>> from gradtx import join_schedules, linear_schedule
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
