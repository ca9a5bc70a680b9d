"""Clipping: element-wise and by the global norm."""

from typing import Any

import chex
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import EmptyState, GradientTransformation, init_empty_state
from .._core.lifting import global_norm, map_leaves
from .._core.traits import described, elementwise

ClipState = EmptyState
ClipByGlobalNormState = EmptyState


def clip(max_delta: chex.Numeric) -> GradientTransformation:
    """Clips every element to ``[−max_delta, max_delta]``.

    Args:
      max_delta: the largest magnitude allowed (>= 0).

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.clip(1.0)
      >>> tx.update(jnp.array([-3.0, 0.5, 2.0]), tx.init(None))[0].tolist()
      [-1.0, 0.5, 1.0]
    """
    _validate.non_negative("clip", "max_delta", max_delta)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        leaf = lambda g: jnp.clip(g, -max_delta, max_delta)
        return map_leaves(
            leaf, updates, owner="clip", complex_ok="clipping by value needs an order"
        ), state

    return elementwise(GradientTransformation(init_empty_state, update_fn))


def global_clip_factor(updates: Any, max_norm: chex.Numeric) -> chex.Array:
    """``min(1, max_norm / ‖updates‖)``: the factor of :func:`clip_by_global_norm`."""
    norm = global_norm(updates)
    # `where` guards the division: no NaN when the norm is 0 (or inf).
    return jnp.where(norm < max_norm, 1.0, max_norm / norm)


def clip_by_global_norm(max_norm: chex.Numeric) -> GradientTransformation:
    """Rescales all updates together so that their global norm is <= ``max_norm``.

    With ``n = sqrt(Σ_leaves Σ g²)``: ``u = g`` if ``n < max_norm``, else
    ``u = g · max_norm / n`` (Pascanu et al., 2013, "On the difficulty of
    training recurrent neural networks"). The rescaling is one scalar factor,
    so XLA fuses it into whatever consumes the clipped gradient.

    Args:
      max_norm: the largest global norm allowed (> 0).

    Returns:
      A stateless :class:`GradientTransformation`.
    """
    _validate.positive("clip_by_global_norm", "max_norm", max_norm)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        factor = global_clip_factor(updates, max_norm)
        leaf = lambda g: g * factor
        return map_leaves(leaf, updates, owner="clip_by_global_norm"), state

    tx = GradientTransformation(init_empty_state, update_fn)
    return elementwise(described(tx, "clip_by_global_norm", max_norm=max_norm))
