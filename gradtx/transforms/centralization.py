"""Gradient centralisation, normalisation by the update norm, accumulation over
``k`` steps, and scaling a gradient on the backward pass."""

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, init_empty_state
from .._core.lifting import global_norm, map_leaves
from .._core.traits import elementwise

_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _subtract_mean(g: chex.Array) -> chex.Array:
    if g.ndim < 2:
        return g
    return g - jnp.mean(g, axis=tuple(range(1, g.ndim)), keepdims=True)


def _centralize_leaf(g):
    g = jnp.asarray(g)
    if not jnp.issubdtype(g.dtype, jnp.inexact):
        return _subtract_mean(g)  # a mean of integers is a float: keep it
    if g.dtype in _LOW_PRECISION:
        return _subtract_mean(g.astype(jnp.float32)).astype(g.dtype)
    return _subtract_mean(g)


def centralize() -> GradientTransformation:
    """Gradient centralisation: removes the mean of each output unit's gradient.

    For a leaf of rank >= 2, ``u[i] = g[i] − mean(g[i])``, the mean taken over
    every axis but the first; vectors and scalars pass unchanged. Integer
    gradients give float updates (as in Optax: rounding the centred values
    back to integers would corrupt them).

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import centralize
      >>> tx = centralize()
      >>> g = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0]])
      >>> tx.update(g, tx.init(g))[0].tolist()
      [[-1.0, 0.0, 1.0], [-2.0, -1.0, 3.0]]

    References:
      Yong et al., "Gradient Centralization: A New Optimization Technique for
      Deep Neural Networks", 2020 (https://arxiv.org/abs/2004.01461).
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(_centralize_leaf, updates), state

    return GradientTransformation(init_empty_state, update_fn)


def normalize_by_update_norm(
    scale_factor: chex.Numeric = 1.0, eps: chex.Numeric = 1e-6
) -> GradientTransformation:
    """Divides the updates by their global norm: ``u = s · g / (‖g‖ + ε)``.

    ``‖g‖`` is the L2 norm of all leaves together, so the step has norm just
    under ``|s|`` whatever the gradient's size. ``s = −1`` makes it a
    normalised gradient-descent step.

    Unlike Optax, ``eps = 0`` with an all-zero gradient gives zero updates
    (Optax divides ``0 / 0`` and returns NaN), and ``scale_factor = 0`` raises
    (it would silently zero every update).

    Args:
      scale_factor: the factor ``s`` (a non-zero real number).
      eps: added to the norm (>= 0).

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import normalize_by_update_norm
      >>> tx = normalize_by_update_norm(scale_factor=-1.0, eps=0.0)
      >>> tx.update(jnp.array([3.0, 4.0]), tx.init(None))[0].tolist()
      [-0.6000000238418579, -0.800000011920929]
    """
    owner = "normalize_by_update_norm"
    _validate.number(owner, "scale_factor", scale_factor)
    if not isinstance(scale_factor, jax.core.Tracer) and float(scale_factor) == 0:
        raise ValueError(f"{owner}: `scale_factor` must be non-zero, got 0.")
    _validate.non_negative(owner, "eps", eps)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        denom = (global_norm(updates) + eps) / scale_factor
        # Zero only when every update is 0: divide by 1 then, not by 0.
        denom = jnp.where(denom == 0, 1.0, denom)
        return map_leaves(lambda g: g / denom, updates, owner=owner), state

    return elementwise(GradientTransformation(init_empty_state, update_fn))
