"""Masking: apply a transformation to a subset of the leaves."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from .._core.base import (
    GradientTransformation,
    OptState,
    Params,
    check_state,
    with_extra_args_support,
)
from .._core.lifting import first_difference
from .._core.masks import is_mask_function
from .._core.state_paths import ParamsPlaceholder
from .._core.traits import composed
from .chain import check_transforms


class MaskedState(NamedTuple):
    """The inner transformation's state (built on the masked-in leaves only)."""

    inner_state: OptState


class MaskedNode(NamedTuple):
    """Stands in for a masked-out leaf: an empty node, invisible to tree maps."""


def _resolve_mask(mask: Any, tree: Any) -> Any:
    return mask(tree) if is_mask_function(mask) else mask


def _apply_mask(tree: Any, mask_tree: Any, what: str) -> Any:
    def pick(m, x):
        if not isinstance(m, bool):
            raise TypeError(
                f"masked: mask leaves must be Python bools, got {m!r} "
                f"({type(m).__name__})."
            )
        return x if m else MaskedNode()

    try:
        return jax.tree.map(pick, mask_tree, tree)
    except (ValueError, TypeError) as e:
        if isinstance(e, TypeError) and "mask leaves" in str(e):
            raise
        raise ValueError(
            f"masked: the mask's tree structure does not match `{what}` (the "
            f"mask must have the structure of the params, or a prefix of it); "
            f"{first_difference(mask_tree, tree, ('mask', what), prefix=True)}.\n"
            f"  mask:  {jax.tree.structure(mask_tree)}\n"
            f"  {what}: {jax.tree.structure(tree)}"
        ) from e


def _mask_extra_args(extra_args: dict, updates: Any, mask_tree: Any) -> dict:
    """Masks each extra argument that has the tree structure of ``updates``."""
    structure = jax.tree.structure(updates)

    def maybe(value):
        if jax.tree.structure(value) != structure:
            return value
        return _apply_mask(value, mask_tree, "extra argument")

    return {k: maybe(v) for k, v in extra_args.items()}


def masked(
    inner: GradientTransformation,
    mask: Any | Callable[[Params], Any],
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """Applies ``inner`` only where ``mask`` is True; other updates pass through.

    Args:
      inner: the transformation to apply to the masked-in leaves.
      mask: a tree of Python bools with the structure of the params (or a
        prefix of it: a bool then covers a whole subtree), or a function from
        the params to such a tree.
      mask_compatible_extra_args: also mask each extra keyword argument of
        ``update`` that has the tree structure of the updates (e.g. per-leaf
        values for the inner transformation); others pass unchanged.

    Returns:
      A :class:`GradientTransformation` with state :class:`MaskedState`. The
      inner state holds :class:`MaskedNode` where leaves are masked out, so it
      costs no memory there.
    """
    check_transforms("masked", [inner])
    inner = with_extra_args_support(inner)

    def init_fn(params):
        if isinstance(params, ParamsPlaceholder):  # traced by tree.map_params
            return MaskedState(inner.init(params))
        mask_tree = _resolve_mask(mask, params)
        return MaskedState(inner.init(_apply_mask(params, mask_tree, "params")))

    def update_fn(updates, state, params=None, **extra_args):
        check_state("masked", state, MaskedState)
        mask_tree = _resolve_mask(mask, updates)
        masked_updates = _apply_mask(updates, mask_tree, "updates")
        masked_params = None
        if params is not None:
            masked_params = _apply_mask(params, mask_tree, "params")
        if mask_compatible_extra_args:
            extra_args = _mask_extra_args(extra_args, updates, mask_tree)
        new, inner_state = inner.update(
            masked_updates, state.inner_state, masked_params, **extra_args
        )
        updates = jax.tree.map(lambda m, n, u: n if m else u, mask_tree, new, updates)
        return updates, MaskedState(inner_state)

    tx = GradientTransformation(init_fn, update_fn)
    # A mask computed by a function sees whatever tree it is given: not
    # elementwise (a tree of bools is).
    why = "its `mask` is a function of the params" if is_mask_function(mask) else None
    return composed(tx, [inner], reason=why)
