"""Moment estimates of a tree of gradients: the EMAs and their bias correction.

The tree-level helpers Optax exports (``optax.tree_utils.tree_update_moment``,
…): each is per-array maths from :mod:`gradtx._core.maths` lifted to the tree
with :func:`gradtx._core.lifting.map_leaves`, so tree structures and shapes are
checked and low-precision leaves are computed in float32.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp

from . import maths as _maths
from .lifting import drop_where_none, dtype_of, map_leaves


def bias_correction(moment: Any, decay: chex.Numeric, count: chex.Array) -> Any:
    """``moment / (1 − decay^count)``, leaf by leaf, keeping each leaf's dtype.

    The factor is computed once, in float32 (``decay^count`` in bfloat16 would
    round to 1 and divide by zero).

    Args:
      moment: a tree of moment estimates started at 0.
      decay: the moment's decay rate, in [0, 1).
      count: the step count, >= 1 (an int32 scalar, incremented with
        :func:`safe_increment` before the call).

    Returns:
      The unbiased moment, a tree like ``moment``.
    """
    factor = _maths.debias_factor(decay, count)
    return jax.tree.map(lambda m: (m / factor).astype(dtype_of(m)), moment)


def update_moment(updates: Any, moments: Any, decay: chex.Numeric, order: int) -> Any:
    """The exponential moving average of ``g^order``: ``(1 − d)·g^order + d·m``.

    ``None`` leaves of ``updates`` stay ``None`` (as in Optax).

    Args:
      updates: the gradients ``g``, a tree of arrays.
      moments: the previous moments ``m``, a tree like ``updates``.
      decay: ``d``, the decay rate, in [0, 1].
      order: the power of ``g`` (1: the mean, 2: the uncentered variance).

    Returns:
      The new moments, a tree like ``updates``.
    """

    def leaf(g, m):
        return _maths.one_minus(decay) * g**order + decay * m

    owner = "update_moment"
    moments = drop_where_none(updates, moments, name="moments", owner=owner)
    return map_leaves(leaf, updates, moments, names=["moments"], owner=owner)


def update_moment_per_elem_norm(
    updates: Any, moments: Any, decay: chex.Numeric, order: int
) -> Any:
    """The exponential moving average of ``|g|^order`` (modulus for complex ``g``).

    Unlike Optax's function of the same name, odd orders average the norm
    ``|g|^order`` too, not the signed ``g^order``; for order 2 they agree.
    ``None`` leaves of ``updates`` stay ``None`` (as in Optax).

    Args:
      updates: the gradients ``g``, a tree of arrays.
      moments: the previous moments ``m``, a tree like ``updates``.
      decay: ``d``, the decay rate, in [0, 1].
      order: the power of ``|g|``.

    Returns:
      ``(1 − d)·|g|^order + d·m``, a tree like ``updates``.
    """

    def leaf(g, m):
        norm = _maths.abs_sq(g) if order == 2 else jnp.abs(g) ** order
        return _maths.one_minus(decay) * norm + decay * m

    owner = "update_moment_per_elem_norm"
    moments = drop_where_none(updates, moments, name="moments", owner=owner)
    return map_leaves(leaf, updates, moments, names=["moments"], owner=owner)


def update_infinity_moment(
    updates: Any, moments: Any, decay: chex.Numeric, eps: chex.Numeric
) -> Any:
    """The exponentially weighted infinity norm: ``max(d·u, |g| + eps)``.

    ``None`` leaves of ``updates`` stay ``None`` (as in Optax).

    Args:
      updates: the gradients ``g``, a tree of arrays.
      moments: the previous norms ``u``, a tree like ``updates``.
      decay: ``d``, the decay rate, in [0, 1].
      eps: added to ``|g|``, >= 0.

    Returns:
      The new norms, a tree like ``updates``.
    """
    owner = "update_infinity_moment"
    moments = drop_where_none(updates, moments, name="moments", owner=owner)
    return map_leaves(
        lambda g, u: _maths.infinity_moment(g, u, decay, eps),
        updates,
        moments,
        names=["moments"],
        owner=owner,
    )
