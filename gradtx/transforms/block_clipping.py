"""Clipping by block RMS, adaptive (unit-wise) clipping, per-example clipping.

``clip_by_block_rms`` and ``adaptive_grad_clip`` are transformations
(``unitwise_norm`` and ``unitwise_clip`` are the latter's two steps, public as
in ``optax.transforms``); the two ``per_example_*_clip`` functions act on a
batch of per-example gradients (a leading batch axis on every leaf) and return
their clipped sum, as needed by differentially private SGD.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformation,
    init_empty_state,
)
from .._core.lifting import leaf_norms, map_leaves

AdaptiveGradClipState = EmptyState


def clip_by_block_rms(threshold: chex.Numeric) -> GradientTransformation:
    """Clips the root mean square of every leaf (block) to at most ``threshold``.

    Each leaf ``g`` (a weight vector or matrix) is rescaled on its own:
    ``u = g / max(1, rms(g) / threshold)`` with ``rms(g) = sqrt(mean(|g|²))``.

    Unlike Optax, ``threshold = 0`` raises (Optax divides ``0 / 0`` and
    returns NaN for an all-zero leaf).

    Args:
      threshold: the largest RMS allowed per leaf (> 0).

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import clip_by_block_rms
      >>> tx = clip_by_block_rms(1.0)
      >>> u, _ = tx.update(jnp.array([3.0, -3.0]), tx.init(None))
      >>> u.tolist()
      [1.0, -1.0]
    """
    _validate.positive("clip_by_block_rms", "threshold", threshold)

    def leaf(g, rms):
        return g / jnp.maximum(1.0, rms / threshold)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        rms = leaf_norms(jax.tree.leaves(updates), mean=True)  # one overflow test
        return map_leaves(
            leaf, updates, owner="clip_by_block_rms", per_leaf=[rms]
        ), state

    return GradientTransformation(init_empty_state, update_fn)


def _unit_axes(x: chex.Array, axis: Any, owner: str) -> Any:
    """The axes a "unit" norm reduces over (Brock et al.'s layer conventions)."""
    if axis is not None:
        return axis
    if jnp.squeeze(x).ndim <= 1:
        return None  # a scalar or a vector (size-1 axes aside): all of it
    if x.ndim in (2, 3):
        return 0  # dense (in, out) or multi-head (in, heads, out): per output
    if x.ndim in (4, 5):
        return tuple(range(x.ndim - 1))  # HWIO / DHWIO kernels: per channel
    raise ValueError(
        f"{owner}: cannot infer the unit axes of a leaf of shape "
        f"{x.shape} (ranks 0 to 5 are known); pass `axis`."
    )


def _unit_norm(x: chex.Array, axis: Any, owner: str) -> chex.Array:
    # l2_norm's sqrt never sees a 0, so differentiating through the clip
    # (meta-learning) gives 0, not NaN, for an all-zero unit.
    norm = _maths.l2_norm(x, _unit_axes(x, axis, owner), keepdims=True)
    return jnp.broadcast_to(norm, x.shape)


def unitwise_norm(
    x: jax.typing.ArrayLike, axis: int | tuple[int, ...] | None = None
) -> jax.Array:
    """The L2 norm of each unit of ``x``, broadcast back to ``x``'s shape.

    A unit is a slice of ``x`` over the axes ``axis``: every entry of the
    result holds ``sqrt(Σ |x_j|²)`` over the unit it belongs to. With
    ``axis=None`` the axes follow the layer conventions of Brock et al.:
    scalars and vectors (size-1 axes aside) are one unit; rank 2 and 3 (dense
    ``(in, out)``, multi-head ``(in, heads, out)``) reduce axis 0; rank 4 and
    5 (convolution kernels ``HWIO``, ``DHWIO``) reduce all axes but the last.

    The numbers are Optax's (``optax.transforms.unitwise_norm``); unlike
    Optax, the gradient of the norm at an all-zero unit is 0, not NaN.

    Args:
      x: an array.
      axis: the axis or axes of a unit; ``None`` infers them from the rank
        (ranks 0 to 5; others raise ``ValueError``).

    Returns:
      An array of ``x``'s shape holding each unit's norm.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.transforms import unitwise_norm
      >>> unitwise_norm(jnp.array([[3.0, 0.0], [4.0, 1.0]])).tolist()
      [[5.0, 1.0], [5.0, 1.0]]

    References:
      Brock et al., "High-Performance Large-Scale Image Recognition Without
      Normalization", 2021 (https://arxiv.org/abs/2102.06171).
    """
    return _unit_norm(jnp.asarray(x), axis, "unitwise_norm")


def unitwise_clip(
    g_norm: jax.typing.ArrayLike,
    max_norm: jax.typing.ArrayLike,
    grad: jax.typing.ArrayLike,
    div_eps: jax.typing.ArrayLike = 1e-6,
) -> jax.Array:
    """Rescales each unit of ``grad`` whose norm reaches ``max_norm``.

    Entry by entry:

    .. math::

        u = \\begin{cases}
          g & \\text{if } \\|g\\| < m \\\\
          g \\, m / \\max(\\|g\\|, δ) & \\text{otherwise,}
        \\end{cases}

    with ``‖g‖ = g_norm`` (typically :func:`unitwise_norm` of ``grad``),
    ``m = max_norm`` and ``δ = div_eps``, which only guards the division. This
    is the clipping step of :func:`adaptive_grad_clip`, with Optax's numbers.

    Args:
      g_norm: each entry's unit norm, of ``grad``'s shape.
      max_norm: the largest norm allowed, of ``grad``'s shape.
      grad: the array to clip.
      div_eps: the smallest divisor used.

    Returns:
      The clipped array, of ``grad``'s shape.

    Raises:
      ValueError: when the three shapes differ (naming them).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.transforms import unitwise_clip
      >>> g = jnp.array([3.0, 4.0])
      >>> unitwise_clip(jnp.full(2, 5.0), jnp.full(2, 1.0), g).tolist()
      [0.6000000238418579, 0.800000011920929]

    References:
      Brock et al., "High-Performance Large-Scale Image Recognition Without
      Normalization", 2021 (https://arxiv.org/abs/2102.06171).
    """
    shapes = {"g_norm": jnp.shape(g_norm), "max_norm": jnp.shape(max_norm)}
    for name, shape in shapes.items():
        if shape != jnp.shape(grad):
            raise ValueError(
                f"unitwise_clip: `{name}` has shape {shape}, `grad` has shape "
                f"{jnp.shape(grad)}; they must be equal."
            )
    clipped = grad * (max_norm / jnp.maximum(g_norm, div_eps))
    return jnp.where(g_norm < max_norm, grad, clipped)


def adaptive_grad_clip(
    clipping: chex.Numeric,
    eps: chex.Numeric = 1e-3,
    axis: int | tuple[int, ...] | None = None,
) -> GradientTransformation:
    """Adaptive gradient clipping (AGC): unit-wise, relative to the params.

    For each unit ``i`` (a slice of a leaf, see ``axis``) with gradient ``g_i``
    and parameters ``w_i``:

    .. math::

        u_i = \\begin{cases}
          g_i & \\text{if } \\|g_i\\| < λ \\max(\\|w_i\\|, ε) \\\\
          g_i \\, \\dfrac{λ \\max(\\|w_i\\|, ε)}{\\max(\\|g_i\\|, 10^{-6})}
            & \\text{otherwise.}
        \\end{cases}

    ``ε`` keeps zero-initialised parameters trainable; the ``10⁻⁶`` floor only
    guards the division, so zero params or zero gradients never give NaN. The
    values equal Optax's; unlike Optax, differentiating through the clip (e.g.
    for meta-learning) at an all-zero unit of params or gradients gives a
    finite gradient, not NaN (the norm's square root is never taken at 0).

    Args:
      clipping: the largest ratio ``λ`` of gradient norm to parameter norm
        (>= 0).
      eps: the smallest parameter norm used (>= 0).
      axis: the axis or axes each unit's norm is taken over. ``None`` infers
        them from the rank: scalars and vectors are one unit; rank 2 and 3
        (dense, multi-head) reduce axis 0; rank 4 and 5 (convolution kernels
        ``HWIO``, ``DHWIO``) reduce all but the last axis.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`AdaptiveGradClipState` (empty); ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adaptive_grad_clip
      >>> tx = adaptive_grad_clip(0.1)
      >>> p, g = jnp.array([3.0, 4.0]), jnp.array([6.0, 8.0])
      >>> [round(x, 4) for x in tx.update(g, tx.init(p), p)[0].tolist()]
      [0.3, 0.4]

    References:
      Brock et al., "High-Performance Large-Scale Image Recognition Without
      Normalization", 2021 (https://arxiv.org/abs/2102.06171).
    """
    owner = "adaptive_grad_clip"
    _validate.non_negative(owner, "clipping", clipping)
    _validate.non_negative(owner, "eps", eps)
    if axis is not None and not (
        isinstance(axis, int)
        or (isinstance(axis, tuple) and all(isinstance(a, int) for a in axis))
    ):
        raise TypeError(
            f"{owner}: `axis` must be None, an int or a tuple of ints, got {axis!r}."
        )

    def leaf(g, w):
        g_norm = _unit_norm(g, axis, owner)
        max_norm = clipping * jnp.maximum(_unit_norm(w, axis, owner), eps)
        return unitwise_clip(g_norm, max_norm, g)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        out = map_leaves(leaf, updates, params, names=["params"], owner=owner)
        return out, state

    return GradientTransformation(init_empty_state, update_fn)


# ---------------------------------------------------------------------------
# Per-example clipping (differential privacy): functions, not transformations.


def _batch_leaves(owner: str, grads: Any) -> list[chex.Array]:
    leaves = [jnp.asarray(g) for g in jax.tree.leaves(grads)]
    if not leaves:
        raise ValueError(f"{owner}: `grads` has no arrays.")
    batch = leaves[0].shape[0] if leaves[0].ndim else None
    if batch is None or any(g.ndim < 1 or g.shape[0] != batch for g in leaves):
        shapes = jax.tree.map(jnp.shape, grads)
        raise ValueError(
            f"{owner}: every leaf of `grads` needs the same batch size on axis 0 "
            f"(one row per example); got shapes {shapes}."
        )
    return leaves


def _float_at_least_32(x: chex.Array) -> chex.Array:
    """Low-precision floats in float32; integers and bools in the default float."""
    if x.dtype in (jnp.bfloat16, jnp.float16):
        return x.astype(jnp.float32)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return x.astype(jnp.result_type(float))
    return x


def _clipped_sum(leaves: list[chex.Array], clip_norm: chex.Numeric):
    """Σ_n min(1, C / ‖g_n‖)·g_n over examples ``n``, and how many were scaled."""
    up = [_float_at_least_32(x) for x in leaves]
    sq = [jnp.sum(_maths.abs_sq(x.reshape(x.shape[0], -1)), axis=1) for x in up]
    norms = jnp.sqrt(sum(sq[1:], sq[0]))
    # C / 0 is inf (-> 1) and 0 / 0 is NaN (-> 1): a zero example is kept.
    factor = jnp.nan_to_num(jnp.minimum(clip_norm / norms, 1.0), nan=1.0)
    sums = []
    for x, orig in zip(up, leaves, strict=True):
        s = jnp.tensordot(factor, x, axes=1)
        keep = jnp.issubdtype(orig.dtype, jnp.inexact)
        sums.append(s.astype(orig.dtype) if keep else s)
    return sums, jnp.sum(factor < 1.0)


def per_example_global_norm_clip(
    grads: chex.ArrayTree, l2_norm_clip: chex.Numeric
) -> tuple[chex.ArrayTree, chex.Array]:
    """Clips each example's gradient to a global L2 norm, then sums over examples.

    Every leaf of ``grads`` has the examples on axis 0. With ``g_n`` the
    gradient of example ``n`` (all leaves together) and ``C = l2_norm_clip``:

    .. math::

        u = \\sum_n \\min\\left(1, \\frac{C}{\\|g_n\\|}\\right) g_n

    An all-zero example is kept as is (factor 1), also when ``C = 0``.

    Args:
      grads: per-example gradients, a tree whose leaves share the batch size
        on axis 0.
      l2_norm_clip: the largest L2 norm ``C`` of one example (>= 0; may be
        ``inf``).

    Returns:
      ``(clipped_sum, num_clipped)``: a tree like ``grads`` without axis 0 (in
      the gradients' dtype; integer gradients give floats), and the number of
      examples that were scaled down.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import per_example_global_norm_clip
      >>> grads = [jnp.array([[0.0, 0.0], [3.0, 4.0], [0.6, 0.8]])]
      >>> total, n = per_example_global_norm_clip(grads, 2.0)
      >>> [round(x, 4) for x in total[0].tolist()], int(n)
      ([1.8, 2.4], 1)

    References:
      Abadi et al., "Deep Learning with Differential Privacy", 2016
      (https://arxiv.org/abs/1607.00133).
    """
    owner = "per_example_global_norm_clip"
    _validate.non_negative(owner, "l2_norm_clip", l2_norm_clip)
    leaves = _batch_leaves(owner, grads)
    sums, num_clipped = _clipped_sum(leaves, l2_norm_clip)
    return jax.tree.unflatten(jax.tree.structure(grads), sums), num_clipped


def per_example_layer_norm_clip(
    grads: chex.ArrayTree,
    global_l2_norm_clip: chex.Numeric,
    uniform: bool = True,
) -> tuple[chex.ArrayTree, chex.ArrayTree]:
    """Per-example clipping with one norm bound per leaf (layer), then a sum.

    Each of the ``K`` leaves is clipped and summed as in
    :func:`per_example_global_norm_clip`, on its own, with bound

    * ``C_k = C / sqrt(K)`` when ``uniform``;
    * ``C_k = C · sqrt(D_k / D)`` otherwise, ``D_k`` being the number of
      parameters of leaf ``k`` (per example) and ``D`` their total.

    Either way ``Σ_k C_k² = C²``: the clipped example's global norm is <= C.

    Args:
      grads: per-example gradients, a tree whose leaves share the batch size
        on axis 0.
      global_l2_norm_clip: the overall bound ``C`` (>= 0).
      uniform: whether every leaf gets the same share of ``C``.

    Returns:
      ``(clipped_sum, num_clipped)``: two trees like ``grads``; the first holds
      each leaf's clipped sum, the second how many examples were scaled down
      for that leaf.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import per_example_layer_norm_clip
      >>> grads = {"a": jnp.array([[3.0, 4.0]]), "b": jnp.array([[0.1]])}
      >>> total, n = per_example_layer_norm_clip(grads, 2.0**0.5)
      >>> total["a"].tolist(), int(n["a"]), int(n["b"])
      ([0.6000000238418579, 0.800000011920929], 1, 0)

    References:
      McMahan et al., "Learning Differentially Private Recurrent Language
      Models", 2017 (https://arxiv.org/abs/1710.06963).
    """
    owner = "per_example_layer_norm_clip"
    _validate.non_negative(owner, "global_l2_norm_clip", global_l2_norm_clip)
    _validate.flag(owner, "uniform", uniform)
    leaves = _batch_leaves(owner, grads)
    if uniform:
        shares = [1.0 / len(leaves)] * len(leaves)
    else:
        sizes = [x[0].size for x in leaves]
        shares = [n / sum(sizes) for n in sizes]
    sums, counts = [], []
    for x, share in zip(leaves, shares, strict=True):
        (s,), n = _clipped_sum([x], global_l2_norm_clip * share**0.5)
        sums.append(s)
        counts.append(n)
    treedef = jax.tree.structure(grads)
    return jax.tree.unflatten(treedef, sums), jax.tree.unflatten(treedef, counts)
