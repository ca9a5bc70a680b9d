"""Layer-wise scalings: each leaf (a weight matrix, a bias vector) is one block.

These rules look at a whole leaf at once — its norm or its root mean square —
and rescale the leaf's update by one number: the trust ratio of LARS, LAMB and
Fromage, the parameter scale of Adafactor, Adafactor's update clipping. As
elsewhere the per-leaf rule is lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves` (which checks shapes and computes in float32
for bfloat16/float16 leaves); the full optimizers are in
:mod:`gradtx.optimizers.layerwise`.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformation,
    init_empty_state,
)
from .._core.lifting import flatten_like, leaf_norms, map_leaves
from .._core.traits import declare, elementwise

ScaleByTrustRatioState = EmptyState


def _params_or_raise(owner: str, params):
    if params is None:
        raise ValueError(NO_PARAMS_MSG.format(name=owner))
    return params


def _block_norms(owner: str, tree: Any, like: Any, mean: bool = False) -> list:
    """Each leaf's Frobenius norm (``mean``: RMS), for the leaves of ``like``.

    All at once (:func:`gradtx._core.lifting.leaf_norms`: one overflow test for the
    tree, where a test per leaf slowed compilation on many leaves).
    """
    treedef = jax.tree.structure(like)
    return leaf_norms(
        flatten_like(treedef, tree, name="params", owner=owner), mean=mean
    )


def scale_by_trust_ratio(
    min_norm: chex.Numeric = 0.0,
    trust_coefficient: chex.Numeric = 1.0,
    eps: chex.Numeric = 0.0,
) -> GradientTransformation:
    r"""Scales each leaf's update by its trust ratio ``c·‖θ‖ / (‖u‖ + ε)``.

    With both norms taken over the whole leaf and floored at ``min_norm``:

    .. math::
        u \leftarrow u \cdot \frac{c\, \max(\|\theta\|, m)}{\max(\|u\|, m) + \epsilon}

    and :math:`u` unchanged (ratio 1) where either floored norm is exactly 0,
    so a zero-initialised parameter still moves. Every leaf therefore takes a
    step proportional to its own size. Used by :func:`gradtx.lars`,
    :func:`gradtx.lamb` and :func:`gradtx.fromage`.

    Args:
      min_norm: floor ``m >= 0`` of both norms.
      trust_coefficient: the multiplier ``c >= 0``.
      eps: ``ε >= 0`` added to the update's norm.

    Returns:
      A stateless :class:`GradientTransformation` that needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_trust_ratio
      >>> tx = scale_by_trust_ratio()
      >>> p, g = jnp.array([3.0, 4.0]), jnp.array([0.0, 0.5])  # |p| = 5
      >>> tx.update(g, tx.init(p), p)[0].tolist()  # g · 5 / 0.5
      [0.0, 5.0]
    """
    owner = "scale_by_trust_ratio"
    _validate.non_negative(owner, "min_norm", min_norm)
    _validate.non_negative(owner, "trust_coefficient", trust_coefficient)
    _validate.non_negative(owner, "eps", eps)

    def leaf(u, p, p_norm, u_norm):
        del p
        p_norm = jnp.maximum(p_norm, min_norm)
        u_norm = jnp.maximum(u_norm, min_norm)
        ratio = trust_coefficient * p_norm / (u_norm + eps)
        zero = jnp.logical_or(p_norm == 0.0, u_norm == 0.0)
        return u * jnp.where(zero, 1.0, ratio)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        params = _params_or_raise(owner, params)
        norms = [_block_norms(owner, t, updates) for t in (params, updates)]
        updates = map_leaves(
            leaf, updates, params, names=["params"], owner=owner, per_leaf=norms
        )
        return updates, state

    return GradientTransformation(init_empty_state, update_fn)


def _scale_by_param_block(owner, mean, min_scale):
    _validate.non_negative(owner, "min_scale", min_scale)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        params = _params_or_raise(owner, params)
        norms = [_block_norms(owner, params, updates, mean)]
        leaf = lambda u, p, norm: u * jnp.maximum(norm, min_scale)
        updates = map_leaves(
            leaf, updates, params, names=["params"], owner=owner, per_leaf=norms
        )
        return updates, state

    # not elementwise (a norm per leaf); named for the caller, not this helper
    return declare(GradientTransformation(init_empty_state, update_fn), name=owner)


def scale_by_param_block_norm(min_scale: chex.Numeric = 1e-3) -> GradientTransformation:
    """Multiplies each leaf's update by its parameter's norm: ``u ← u·max(‖θ‖, s)``.

    The norm is the Frobenius norm of the whole leaf (a weight matrix, a bias
    vector); ``s`` = ``min_scale`` keeps zero-initialised leaves moving.

    Args:
      min_scale: the floor ``s >= 0`` of the norm.

    Returns:
      A stateless :class:`GradientTransformation` that needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_param_block_norm
      >>> tx = scale_by_param_block_norm()
      >>> p = jnp.array([3.0, 4.0])
      >>> tx.update(jnp.array([1.0, -1.0]), tx.init(p), p)[0].tolist()
      [5.0, -5.0]
    """
    return _scale_by_param_block("scale_by_param_block_norm", False, min_scale)


def scale_by_param_block_rms(min_scale: chex.Numeric = 1e-3) -> GradientTransformation:
    """Multiplies each leaf's update by its parameter's RMS: ``u ← u·max(rms(θ), s)``.

    ``rms(θ) = sqrt(mean θ²)`` over the whole leaf; ``s`` = ``min_scale``
    keeps zero-initialised leaves moving. This is Adafactor's "relative step"
    (see :func:`gradtx.adafactor`).

    Args:
      min_scale: the floor ``s >= 0`` of the RMS.

    Returns:
      A stateless :class:`GradientTransformation` that needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_param_block_rms
      >>> tx = scale_by_param_block_rms()
      >>> p = jnp.array([3.0, -3.0])
      >>> tx.update(jnp.array([1.0, 0.5]), tx.init(p), p)[0].tolist()
      [3.0, 1.5]
    """
    return _scale_by_param_block("scale_by_param_block_rms", True, min_scale)


def add_scaled_params(factor: chex.Numeric) -> GradientTransformation:
    """``u ← u + factor·θ`` for any real ``factor`` (Fromage's shrinkage).

    :func:`gradtx.add_decayed_weights` with a negative weight decay, which
    that public function rejects (a negative decay is almost always a
    mistake); :func:`gradtx.fromage` needs one, ``1/sqrt(1 + η²) − 1``.
    The state is :class:`EmptyState`, as ``add_decayed_weights``' is.
    """
    owner = "fromage"
    _validate.number(owner, "factor", factor)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        params = _params_or_raise(owner, params)
        leaf = lambda u, p: u + factor * p
        updates = map_leaves(leaf, updates, params, names=["params"], owner=owner)
        return updates, state

    return elementwise(GradientTransformation(init_empty_state, update_fn))
