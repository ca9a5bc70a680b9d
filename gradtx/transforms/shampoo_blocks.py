"""Shampoo's blocks: how a leaf is cut, and the per-block factor maths.

A leaf is reshaped with small neighbouring dimensions merged
(:func:`merge_small_dims`), then cut into blocks of at most ``block_size``
along every dimension (:func:`shampoo_layout`). Every block keeps one
statistic per dimension, ``L_k ← β₂ L_k + (1 − β₂) G_(k) G_(k)ᵀ``
(:func:`new_statistics`), and is preconditioned by one root per dimension
(:func:`preconditioned`). Where every block has the same shape the blocks are
one stacked array (a reshape and a transpose), which the compiler partitions
along a split dimension without gathering it; ragged layouts are cut and
concatenated. Used by :func:`gradtx.transforms.shampoo.scale_by_shampoo`.
"""

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._core import maths as _maths

_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------
# Static layout of one leaf: merged shape and blocks.


class ShampooLayout(NamedTuple):
    """How one leaf is preconditioned (fixed by its shape).

    ``skip``: the leaf takes the grafting step only. Otherwise ``shape`` is the
    leaf reshaped with small dimensions merged and ``sizes[k]`` the block
    sizes along dimension ``k`` of ``shape``; ``merged`` says whether the
    reshape changed the shape.
    """

    skip: bool
    shape: tuple = ()
    sizes: tuple = ()
    merged: bool = False


def merge_small_dims(shape: tuple, max_dim: int) -> tuple:
    """Merges neighbouring dimensions while their product stays <= ``max_dim``.

    Size-1 dimensions disappear; an all-ones shape gives ``(1,)``: e.g.
    ``(16, 8)`` with ``max_dim = 4096`` gives ``(128,)``, with 1 ``(16, 8)``.
    """
    if shape and all(d == 1 for d in shape):
        return (1,)
    out, product = [], 1
    for d in shape:
        if product * d <= max_dim:
            product *= d
        else:
            if product > 1:
                out.append(product)
            product = d
    if product > 1:
        out.append(product)
    return tuple(out)


def shampoo_layout(
    shape: tuple, block_size: int, merge_block: int, rank_lt: int, dim_gt: int
) -> ShampooLayout:
    """The :class:`ShampooLayout` of a leaf of ``shape``."""
    if len(shape) < rank_lt or any(d > dim_gt for d in shape) or 0 in shape:
        return ShampooLayout(True)
    merged = merge_small_dims(tuple(shape), merge_block)
    sizes = []
    for d in merged:
        full, rest = divmod(d, block_size)
        sizes.append((block_size,) * full + ((rest,) if rest else ()))
    return ShampooLayout(False, merged, tuple(sizes), merged != tuple(shape))


def _blocks(x, layout):
    """The blocks of ``x`` (reshaped), in row-major order of block index."""
    parts = [x.reshape(layout.shape)]
    for axis, sizes in enumerate(layout.sizes):
        cuts = list(itertools.accumulate(sizes))[:-1]
        if cuts:
            parts = [q for p in parts for q in jnp.split(p, cuts, axis=axis)]
    return parts


def _unblock(parts, layout, shape):
    for axis in reversed(range(len(layout.sizes))):
        n = len(layout.sizes[axis])
        if n > 1:
            parts = [
                jnp.concatenate(parts[i : i + n], axis=axis)
                for i in range(0, len(parts), n)
            ]
    return parts[0].reshape(shape)


def factor_sizes(layout):
    """The size of every factor matrix, block by block, dimension by dimension."""
    if layout.skip:
        return []
    return [d for block in itertools.product(*layout.sizes) for d in block]


# --------------------------------------------------------------------------
# Per-block maths.


def _uniform(layout) -> bool:
    """Whether every block has the same shape (no ragged last block)."""
    return all(len(set(sizes)) == 1 for sizes in layout.sizes)


def _stacked_blocks(x, layout):
    """The blocks of ``x`` as one ``(blocks, *block_shape)`` array (uniform
    layouts): a reshape and a transpose, which the compiler partitions along
    a split dimension without gathering it."""
    k = len(layout.sizes)
    counts = [len(sizes) for sizes in layout.sizes]
    widths = [sizes[0] for sizes in layout.sizes]
    x = x.reshape([n for pair in zip(counts, widths, strict=True) for n in pair])
    x = x.transpose([2 * a for a in range(k)] + [2 * a + 1 for a in range(k)])
    return x.reshape(-1, *widths)


def _unstacked(blocks, layout, shape):
    k = len(layout.sizes)
    counts = [len(sizes) for sizes in layout.sizes]
    x = blocks.reshape(*counts, *blocks.shape[1:])
    return x.transpose([i for a in range(k) for i in (a, k + a)]).reshape(shape)


def new_statistics(g, stats, layout, b2):
    w2 = jnp.where(b2 == 1.0, 1.0, 1.0 - b2)
    if _uniform(layout):  # every block at once, factor by factor
        blocks, k = _stacked_blocks(g, layout), len(layout.sizes)
        out = [None] * len(stats)
        for axis in range(k):
            gram = _maths.axis_gram(blocks, 1 + axis, batch_dims=1)
            old = jnp.stack(stats[axis::k])
            new = (b2 * old + w2 * gram).astype(old.dtype)
            out[axis::k] = list(new)
        return tuple(out)
    out, i = [], 0
    for block in _blocks(g, layout):
        for axis in range(block.ndim):
            out.append(b2 * stats[i] + w2 * _maths.axis_gram(block, axis))
            i += 1
    return tuple(s.astype(old.dtype) for s, old in zip(out, stats, strict=True))


def preconditioned(g, preconds, layout):
    """Every block times its factor roots, one dimension after another: each
    product contracts the leading axis and appends the new one last, so after
    ``ndim`` products the axes are back in order."""
    if _uniform(layout):
        blocks, k = _stacked_blocks(g, layout), len(layout.sizes)
        for axis in range(k):
            roots = jnp.stack(preconds[axis::k]).astype(blocks.dtype)
            dims = (((1,), (1,)), ((0,), (0,)))
            blocks = jax.lax.dot_general(blocks, roots, dims, precision=_HIGHEST)
        return _unstacked(blocks, layout, g.shape)
    out, i = [], 0
    for block in _blocks(g, layout):
        for _ in range(block.ndim):
            root = preconds[i].astype(block.dtype)
            block = jnp.tensordot(block, root, ((0,), (0,)), precision=_HIGHEST)
            i += 1
        out.append(block)
    return _unblock(out, layout, g.shape)


def factor_dims(layout, ndim):
    """Which leaf dimension each factor's rows follow for placement: the
    leaf's own dimension when the leaf was not reshaped and that dimension is
    one block, else none. A factor of a dimension cut into several blocks is
    at most ``block_size`` wide and belongs to one block, not to the split:
    it is replicated (small), and under Auto axes the compiler may move it."""
    if layout.skip:
        return []
    whole = [len(sizes) == 1 for sizes in layout.sizes]
    dims = []
    for block in itertools.product(*layout.sizes):
        for axis in range(len(block)):
            follow = not layout.merged and whole[axis]
            dims.append((axis if follow else None, None))
    return dims
