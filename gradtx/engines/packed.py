"""``packed(tx)``: any optimizer stepped on packed buffers, params left as they are.

The one-line form of :mod:`gradtx.engines.pack`: the model keeps its ordinary tree
of params, and the wrapper packs the gradients (and params) into a few
buffers on the way in, runs the inner transformation on them, keeps its state
packed, and hands back updates with the original structure. Use it when the
model cannot call :func:`gradtx.unpack` in its loss; packing the params
themselves (``docs/packing.md``) is faster still, because it needs no split
of the updates in the step.
"""

from typing import Any

import jax

from .._core.base import GradientTransformation, with_extra_args_support
from .pack import (
    DEFAULT_MAX_LEAVES_PER_BUFFER,
    DEFAULT_MIN_LEAF_SIZE,
    Packed,
    _contains_packed,
    check_pack_options,
    pack,
    unpack,
)


def _init_layout(state: Any) -> Any:
    """The layout ``init`` packed the params with, read off a packed node of
    the state (``None`` for a state without one)."""
    is_packed = lambda x: isinstance(x, Packed)
    for node in jax.tree.leaves(state, is_leaf=is_packed):
        if is_packed(node):
            return node.layout
    return None


def packed(
    inner: GradientTransformation,
    *,
    min_leaf_size: int = DEFAULT_MIN_LEAF_SIZE,
    max_leaves_per_buffer: int = DEFAULT_MAX_LEAVES_PER_BUFFER,
) -> GradientTransformation:
    """Runs ``inner`` on the params' small leaves packed into a few buffers.

    ``update`` packs the gradients as :func:`gradtx.pack` would pack the
    params (float leaves with fewer than ``min_leaf_size`` elements, by dtype,
    at most ``max_leaves_per_buffer`` per buffer; large leaves stay whole),
    calls ``inner.update`` on that tree, and unpacks the updates. The state is
    ``inner``'s state for the packed tree, so it stays packed between steps.
    On a tree of thousands of small leaves the compiled step is much smaller
    and faster to compile (``docs/performance.md``); elementwise optimizers
    give the numbers of the plain run (global norms may differ by rounding),
    and transformations that see whole leaves (trust ratios, block norms,
    factored moments, Muon on matrices, masks computed by a function) raise,
    as they do on :func:`gradtx.pack`'s trees.

    Args:
      inner: the transformation to run on the packed tree.
      min_leaf_size: leaves with at least this many elements stay whole.
      max_leaves_per_buffer: at most this many leaves share a buffer.

    Returns:
      A :class:`GradientTransformation` with ``inner``'s (packed) state.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"b": [jnp.ones(3) for _ in range(5)], "w": jnp.ones((2, 2))}
      >>> tx = gradtx.packed(gradtx.adam(0.1))
      >>> state = tx.init(params)
      >>> updates, state = tx.update(params, state, params)
      >>> [round(float(u[0]), 4) for u in updates["b"]]
      [-0.1, -0.1, -0.1, -0.1, -0.1]
    """
    if not hasattr(inner, "init") or not hasattr(inner, "update"):
        raise TypeError(
            "packed: `inner` must be a gradient transformation (with `init` and "
            f"`update`), got {inner!r}."
        )
    inner = with_extra_args_support(inner)
    options = dict(
        min_leaf_size=min_leaf_size, max_leaves_per_buffer=max_leaves_per_buffer
    )
    check_pack_options(min_leaf_size, max_leaves_per_buffer)

    def layout_of(tree: Any, what: str) -> Any:
        if _contains_packed(tree):
            raise TypeError(
                f"packed: `{what}` is already packed (gradtx.pack): pass the "
                "packed tree to the inner transformation directly."
            )
        return pack(tree, **options).layout

    def init_fn(params):
        return inner.init(layout_of(params, "params").pack(params))

    def update_fn(updates, state, params=None, **extra_args):
        # the params' layout, as at init, when there are params
        packed_params = None
        layout = _init_layout(state)
        if layout is not None:  # init's: it saw the params' shardings
            packed_params = None if params is None else layout.pack(params)
        elif params is None:
            layout = layout_of(updates, "updates")
        else:
            packed_params = layout_of(params, "params").pack(params)
            layout = packed_params.layout
        out, state = inner.update(
            layout.pack(updates), state, packed_params, **extra_args
        )
        if not isinstance(out, Packed):
            raise TypeError(
                "packed: the inner transformation returned updates that are not "
                f"a Packed tree ({type(out).__name__}); it must keep the tree "
                "structure of its input."
            )
        return unpack(out), state

    return GradientTransformation(init_fn, update_fn)
