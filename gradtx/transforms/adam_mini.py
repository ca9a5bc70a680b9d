"""Adam-mini: one second moment per block (a tensor, a row, a head).

The blocks are chosen by the leaf's path, as the reference chooses them by the
parameter's name. The alias, with the full rule and references, is
:func:`gradtx.adam_mini`.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    cast_to,
    check_shapes,
    dtype_of,
    flatten_like,
    leaf_paths,
    reject_complex,
    state_zeros_like,
    upcast,
)
from .._core.placement import auto_axes, zeros_derived

# The reference's name lists (adam_mini 1.1.1), matched as substrings of the
# lower-cased dotted path ("layers.0.q_proj.kernel").
ADAM_PATTERNS = ("bias",)
HEAD_PATTERNS = ("k_proj", "q_proj", "wq", "wk", "query", "key")
ROW_PATTERNS = (
    *("embed", "embd", "wte"),  # embeddings: one v per token
    *("lm_head", "output", "final_layer"),  # output layers: one v per token
    *("v_proj", "wv", "value"),  # values: one v per neuron
    *("o_proj", "wo", "attn.proj"),  # attention projections
    *("feed_forward", "linear", "mlp"),  # MLPs
)
NO_DECAY_PATTERNS = ("norm", "ln", "bias")


def dotted_paths(tree: Any) -> list[str]:
    """Each leaf's path as a lower-cased dotted name: ``layers.0.q_proj.kernel``."""
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    return [jax.tree_util.keystr(p, simple=True, separator=".").lower() for p in paths]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(p in name for p in patterns)


class Block(NamedTuple):
    """How one leaf is blocked: ``kind`` in ``"adam"`` (one v per element),
    ``"tensor"``, ``"row"`` or ``"head"``; the neuron axis; the head size."""

    kind: str
    axis: int = 0
    head_numel: int = 0


def block_of(name, shape, patterns, neuron_axis, head_numel, owner, path) -> Block:
    """The reference's order: Adam names, then heads, then rows, else tensor."""
    adam, heads, rows = patterns
    size = 1
    for n in shape:
        size *= n
    if size == 0 or _matches(name, adam):
        return Block("adam")
    axis = neuron_axis(name, shape) if callable(neuron_axis) else neuron_axis
    if _matches(name, heads) and len(shape) >= 1:
        if size % head_numel:
            raise ValueError(
                f"{owner}: leaf {path} of shape {shape} matches a head pattern but "
                f"its size is not a multiple of dim·dim/n_heads = {head_numel}: "
                "set `dim` and `n_heads` to the model's, or `head_patterns`."
            )
        return Block("head", axis % len(shape), head_numel)
    if _matches(name, rows):
        return Block("row", axis % len(shape)) if len(shape) >= 2 else Block("adam")
    return Block("tensor")


def _head_rows(x, b: Block):
    """``x`` as ``(heads, head_numel)`` rows: runs of the neuron axis."""
    return jnp.moveaxis(x, b.axis, 0).reshape(-1, b.head_numel)


def _nu_shape(shape, b: Block):
    size = 1
    for n in shape:
        size *= n
    if b.kind == "adam":
        return tuple(shape)
    if b.kind == "tensor":
        return ()
    if b.kind == "row":
        return (shape[b.axis],)
    return (size // b.head_numel,)


def _nu_dims(x, b: Block) -> tuple:
    """For each axis of ``v``, the axis of the leaf it is split like: a row or
    head statistic is split as the neuron axis is (heads are contiguous runs
    of rows)."""
    if b.kind == "adam":
        return tuple(range(jnp.ndim(x)))
    if b.kind == "tensor":
        return ()
    return (b.axis,)


def adam_mini_leaf(g, m, v, b: Block, s):
    """One leaf: ``(u, m', v')`` with ``s = (b1, b2, c1, c2, eps)``."""
    b1, b2, c1, c2, eps = s
    m = _maths.ema(g, m, b1)
    if b.kind == "adam":
        v = _maths.ema_sq(g, v, b2)
        return (m / c1) / (jnp.sqrt(v / c2) + eps), m, v
    if b.kind == "head":
        mean_sq = jnp.mean(_head_rows(g, b) ** 2, axis=1)
        v = _maths.ema(mean_sq, v, b2)
        rows = _head_rows(m / c1, b) / (jnp.sqrt(v / c2) + eps).reshape(-1, 1)
        moved = jnp.moveaxis(g, b.axis, 0).shape
        return jnp.moveaxis(rows.reshape(moved), 0, b.axis), m, v
    # Whole-tensor and per-row means reduce in place (no reshape of a split
    # leaf, so a sharded step needs an all-reduce and no gather).
    axes = tuple(a for a in range(jnp.ndim(g)) if b.kind == "tensor" or a != b.axis)
    v = _maths.ema(jnp.mean(g**2, axis=axes), v, b2)
    h = jnp.sqrt(v / c2) + eps
    if b.kind == "row":
        h = jnp.expand_dims(h, axes)
    return (m / c1) / h, m, v


class ScaleByAdamMiniState(NamedTuple):
    """Step count, first moment (like the params), and the second moments: one
    per block (shape ``()``, ``(rows,)``, ``(heads,)``, or the leaf's for
    Adam leaves)."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_adam_mini(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    *,
    dim: int = 2048,
    n_heads: int = 32,
    neuron_axis: int | Callable[[str, tuple], int] = 0,
    adam_patterns: Sequence[str] = ADAM_PATTERNS,
    head_patterns: Sequence[str] = HEAD_PATTERNS,
    row_patterns: Sequence[str] = ROW_PATTERNS,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """Adam-mini scaling: ``u = m̂ / (sqrt(v̂_B) + ε)``, one ``v`` per block ``B``.

    See :func:`gradtx.adam_mini` for the blocks, the rule and the reference.

    Args:
      b1, b2: moment decays in [0, 1).
      eps: ε >= 0 outside the root.
      dim, n_heads: the model width and head count: a head block has
        ``dim·dim/n_heads`` elements.
      neuron_axis: the axis that indexes neurons or tokens (0 for PyTorch's
        ``(out, in)`` weights and embedding tables; 1 for Flax ``(in, out)``
        kernels), or a function ``(path, shape) -> axis``.
      adam_patterns, head_patterns, row_patterns: substrings of the
        lower-cased dotted leaf path that select the blocks.
      mu_dtype: dtype of the first moment (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamMiniState`.
    """
    owner = "scale_by_adam_mini"
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.integer(owner, "dim", dim, low=1)
    _validate.integer(owner, "n_heads", n_heads, low=1)
    if not callable(neuron_axis):
        _validate.integer(owner, "neuron_axis", neuron_axis, low=-64)
    for name, pats in [
        ("adam_patterns", adam_patterns),
        ("head_patterns", head_patterns),
        ("row_patterns", row_patterns),
    ]:
        if isinstance(pats, str) or not all(isinstance(p, str) for p in pats):
            raise TypeError(
                f"{owner}: `{name}` must be a sequence of strings, got {pats!r}."
            )
    if (dim * dim) % n_heads:
        raise ValueError(
            f"{owner}: `n_heads` ({n_heads}) must divide dim·dim = {dim * dim}."
        )
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype)
    patterns = (tuple(adam_patterns), tuple(head_patterns), tuple(row_patterns))
    head_numel = dim * dim // n_heads

    def blocks(tree):
        leaves = jax.tree.leaves(tree)
        return [
            block_of(n, jnp.shape(x), patterns, neuron_axis, head_numel, owner, p)
            for n, p, x in zip(
                dotted_paths(tree), leaf_paths(tree), leaves, strict=True
            )
        ]

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        nu = []
        for x, b in zip(leaves, blocks(params), strict=True):
            dt = jnp.promote_types(dtype_of(x), jnp.float32)
            nu.append(zeros_derived(x, _nu_shape(jnp.shape(x), b), dt, _nu_dims(x, b)))
        return ScaleByAdamMiniState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=treedef.unflatten(nu),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdamMiniState)
        leaves, treedef = jax.tree.flatten(updates)
        reject_complex(owner, updates, [leaves], "Adam-mini's block means are real")
        mus = flatten_like(treedef, state.mu, name="mu", owner=owner)
        nus = flatten_like(treedef, state.nu, name="nu", owner=owner)
        check_shapes(updates, leaves, [mus], ["mu"], owner)
        count = _maths.safe_increment(state.count)
        s = (
            b1,
            b2,
            _maths.debias_factor(b1, count),
            _maths.debias_factor(b2, count),
            eps,
        )
        out = []
        for g, m, v, b in zip(leaves, mus, nus, blocks(updates), strict=True):
            if jnp.shape(v) != _nu_shape(jnp.shape(g), b):
                raise ValueError(
                    f"{owner}: `nu` does not match the blocks of the params."
                )
            # Block means reduce over split axes: under Explicit mesh axes the
            # compiler partitions them, and each output keeps its input's place.
            u, m2, v2 = auto_axes(
                lambda g, m, v, s, b=b: adam_mini_leaf(
                    upcast(g), upcast(m), upcast(v), b, s
                ),
                g,
                m,
                v,
                s,
                out_like=(g, m, v),
            )
            out.append(
                (
                    cast_to(u, dtype_of(g)),
                    cast_to(m2, dtype_of(m)),
                    cast_to(v2, dtype_of(v)),
                )
            )
        us, ms, vs = ([o[k] for o in out] for k in range(3))
        new = ScaleByAdamMiniState(count, treedef.unflatten(ms), treedef.unflatten(vs))
        return treedef.unflatten(us), new

    return GradientTransformation(init_fn, update_fn)
