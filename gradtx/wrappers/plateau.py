"""Reduce the learning rate when a monitored value stops improving.

Optax keeps this in ``optax.contrib``; gradtx exports it at the top level. The
transformation reads the loss (or any metric to minimise) from the extra
keyword argument ``value`` of ``update`` and multiplies the updates by a scale
that shrinks each time the value has stalled for too long.
"""

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.core import Tracer

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state
from .._core.lifting import map_leaves
from .._core.traits import elementwise

__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]

_OWNER = "reduce_on_plateau"


class ReduceLROnPlateauState(NamedTuple):
    """The scale, the best (averaged) value so far, and the counters.

    ``plateau_count``, ``cooldown_count`` and ``count`` are int32 scalars;
    ``count`` values have been averaged into ``avg_value`` since the last check.
    """

    scale: chex.Array
    best_value: chex.Array
    plateau_count: chex.Array
    cooldown_count: chex.Array
    count: chex.Array
    avg_value: chex.Array


def _float_dtypes(params: Any) -> tuple[jnp.dtype, jnp.dtype]:
    """The lowest and the highest floating dtype among the params' leaves.

    float32 when there is none, and for the lowest when two dtypes (bfloat16
    and float16) cannot be ordered.
    """
    kinds = {jnp.result_type(x) for x in jax.tree.leaves(params)}
    kinds = [d for d in kinds if jnp.issubdtype(d, jnp.floating)]
    if not kinds:
        return jnp.dtype(jnp.float32), jnp.dtype(jnp.float32)
    highest = functools.reduce(jnp.promote_types, kinds)
    below_all = [d for d in kinds if all(jnp.promote_types(d, e) == e for e in kinds)]
    lowest = below_all[0] if below_all else jnp.dtype(jnp.float32)
    return jnp.dtype(lowest), jnp.dtype(highest)


def _count(name: str, value: Any, low: int) -> None:
    if not isinstance(value, Tracer):
        _validate.integer(_OWNER, name, value, low=low)


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> GradientTransformation:
    r"""Scales updates down by ``factor`` when ``value`` stops improving.

    Every ``accumulation_size`` calls, the mean :math:`\bar v` of the values
    passed as ``update(..., value=loss)`` is compared with the best mean so
    far :math:`v^*`; it *improves* when
    :math:`\bar v < (1 - \text{rtol}) \, v^* - \text{atol}` (and becomes the
    new best). After ``patience`` checks in a row without improvement the
    scale becomes :math:`\max(s \cdot \text{factor}, \text{min\_scale})`, the
    count restarts, and the next ``cooldown`` checks are ignored. The updates
    are multiplied by the current scale :math:`s` (1 at first).

    Differences from Optax (``optax.contrib.reduce_on_plateau``), all on
    inputs Optax accepts silently: ``patience`` must be >= 1 (with 0 Optax
    cuts the scale on every *improvement*), ``accumulation_size`` >= 1 and
    ``cooldown`` >= 0 (whole numbers), ``min_scale`` in [0, 1]; ``value`` must
    be a scalar and a missing ``value`` raises a message naming it; the
    updates keep the gradient's dtype (Optax promotes bfloat16 gradients to
    the scale's float32); the state is float even for integer-only params.

    Args:
      factor: the factor in (0, 1) applied to the scale at each reduction.
      patience: checks without improvement before a reduction (>= 1).
      rtol: the relative margin in [0, 1] a value must beat the best by.
      atol: the absolute margin (>= 0); ``rtol`` and ``atol`` are not both 0.
      cooldown: checks skipped after a reduction (>= 0).
      accumulation_size: values averaged into one check (>= 1); use more than
        1 when ``value`` is a noisy mini-batch loss.
      min_scale: the scale is never reduced below this, in [0, 1].

    Returns:
      A :class:`GradientTransformation` whose ``update`` takes the keyword
      argument ``value``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import reduce_on_plateau
      >>> tx = reduce_on_plateau(factor=0.5, patience=2)
      >>> grads = jnp.ones(2)
      >>> state = tx.init(grads)
      >>> for loss in (3.0, 2.0, 2.0, 2.0, 2.0):
      ...     updates, state = tx.update(grads, state, value=loss)
      >>> updates.tolist(), int(state.plateau_count)
      ([0.5, 0.5], 1)
    """
    _validate.number(
        _OWNER, "factor", factor, low=0.0, high=1.0, low_open=True, high_open=True
    )
    _count("patience", patience, 1)
    _validate.number(_OWNER, "rtol", rtol, low=0.0, high=1.0)
    _validate.non_negative(_OWNER, "atol", atol)
    concrete = not isinstance(rtol, Tracer) and not isinstance(atol, Tracer)
    if concrete and rtol == 0 and atol == 0:
        raise ValueError(
            f"{_OWNER}: at least one of `rtol` and `atol` must be > 0, got "
            f"rtol={rtol} and atol={atol}."
        )
    _count("cooldown", cooldown, 0)
    _count("accumulation_size", accumulation_size, 1)
    _validate.number(_OWNER, "min_scale", min_scale, low=0.0, high=1.0)

    def init_fn(params):
        lowest, highest = _float_dtypes(params)
        zero = jnp.zeros([], jnp.int32)
        return ReduceLROnPlateauState(
            scale=jnp.ones([], lowest),
            best_value=jnp.full([], jnp.inf, highest),
            plateau_count=zero,
            cooldown_count=zero,
            count=zero,
            avg_value=jnp.zeros([], highest),
        )

    def check(state):
        """One comparison of the averaged value with the best so far."""
        improved = state.avg_value < (1 - rtol) * state.best_value - atol
        best = jnp.where(improved, state.avg_value, state.best_value)
        stalled = jnp.where(improved, 0, _maths.safe_increment(state.plateau_count))
        cooling = state.cooldown_count > 0
        reduce = jnp.logical_and(stalled == patience, jnp.logical_not(cooling))
        scale = jnp.where(reduce, state.scale * factor, state.scale)
        scale = jnp.where(cooling, state.scale, jnp.maximum(scale, min_scale))
        cooldown_left = jnp.where(reduce, cooldown, 0)
        return ReduceLROnPlateauState(
            scale=scale.astype(state.scale.dtype),
            best_value=best.astype(state.best_value.dtype),
            plateau_count=jnp.where(cooling | reduce, 0, stalled).astype(jnp.int32),
            cooldown_count=jnp.where(
                cooling, state.cooldown_count - 1, cooldown_left
            ).astype(jnp.int32),
            count=jnp.zeros([], jnp.int32),
            avg_value=jnp.zeros([], state.avg_value.dtype),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        check_state(_OWNER, state, ReduceLROnPlateauState)
        if value is None:
            raise TypeError(
                f"{_OWNER}: `update` needs the monitored loss as the keyword "
                "argument `value`, e.g. `tx.update(grads, state, params, "
                "value=loss)`."
            )
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"{_OWNER}: `value` must be a scalar (the loss), got shape "
                f"{jnp.shape(value)}."
            )
        count = _maths.safe_increment(state.count)
        avg_dtype = state.avg_value.dtype
        total = state.count * state.avg_value + jnp.asarray(value).astype(avg_dtype)
        state = state._replace(avg_value=(total / count).astype(avg_dtype), count=count)
        checked = check(state)
        due = count == accumulation_size
        state = jax.tree.map(lambda c, s: jnp.where(due, c, s), checked, state)
        scale = state.scale
        updates = map_leaves(lambda g: scale * g, updates, owner=_OWNER)
        return updates, state

    return elementwise(GradientTransformation(init_fn, update_fn))
