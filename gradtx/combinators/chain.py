"""Combining transformations: chain, named_chain, masked."""

from __future__ import annotations

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
from .._core.state_paths import ParamsPlaceholder
from .._core.traits import described
from ..engines.pack import FUNCTION_OF_PACKED, refuse_packed


def _check_transforms(owner: str, txs: Any) -> None:
    for i, tx in enumerate(txs):
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"{owner}: argument {i} is not a gradient transformation (an "
                f"object with `init` and `update`), got {tx!r}. Did you pass "
                "the factory instead of calling it, e.g. `gradtx.scale` "
                "instead of `gradtx.scale(0.1)`?"
            )


def chain(*args: GradientTransformation) -> GradientTransformation:
    """Applies transformations one after the other: ``u ← f_n(…f_1(u))``.

    The state is a tuple with one state per transformation, in order. Extra
    keyword arguments given to ``update`` reach every member (members that do
    not take them ignore them).

    Args:
      *args: the transformations, applied left to right.

    Returns:
      A :class:`GradientTransformation`.

    Examples:
      >>> import gradtx
      >>> tx = gradtx.chain(gradtx.clip_by_global_norm(1.0),
      ...                   gradtx.scale_by_adam(), gradtx.scale(-1e-3))
    """
    _check_transforms("chain", args)
    txs = [with_extra_args_support(t) for t in args]

    def init_fn(params):
        return tuple(t.init(params) for t in txs)

    def update_fn(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(txs):
            n = len(state) if isinstance(state, tuple) else type(state).__name__
            raise ValueError(
                f"chain: expected a state tuple of {len(txs)} states (one per "
                f"transformation), got {n}. Was it made by this chain's `init`?"
            )
        new_state = []
        for t, s in zip(txs, state, strict=True):
            updates, s = t.update(updates, s, params, **extra_args)
            new_state.append(s)
        return updates, tuple(new_state)

    tx = GradientTransformation(init_fn, update_fn)
    return described(tx, "chain", members=args)


def named_chain(*args: tuple[str, GradientTransformation]) -> GradientTransformation:
    """Like :func:`chain`, with a state dict keyed by the given names.

    Args:
      *args: ``(name, transformation)`` pairs; names must be unique strings.

    Returns:
      A :class:`GradientTransformation` whose state is a dict ``name -> state``
      (in the order given).
    """
    names = []
    for i, arg in enumerate(args):
        if not (isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[0], str)):
            raise TypeError(
                f"named_chain: argument {i} must be a (name, transformation) "
                f"pair, got {arg!r}."
            )
        names.append(arg[0])
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: names must be unique, got {names}.")
    _check_transforms("named_chain", [t for _, t in args])
    txs = {name: with_extra_args_support(t) for name, t in args}

    def init_fn(params):
        return {name: t.init(params) for name, t in txs.items()}

    def update_fn(updates, state, params=None, **extra_args):
        missing = set(txs) - set(state)
        if missing:
            raise ValueError(f"named_chain: the state lacks {sorted(missing)}.")
        new_state = {}
        for name, t in txs.items():
            updates, new_state[name] = t.update(
                updates, state[name], params, **extra_args
            )
        return updates, new_state

    return GradientTransformation(init_fn, update_fn)


class MaskedState(NamedTuple):
    """The inner transformation's state (built on the masked-in leaves only)."""

    inner_state: OptState


class MaskedNode(NamedTuple):
    """Stands in for a masked-out leaf: an empty node, invisible to tree maps."""


def _resolve_mask(mask: Any, tree: Any) -> Any:
    if not callable(mask):
        return mask
    refuse_packed("masked", tree, why=FUNCTION_OF_PACKED.format(what="mask"))
    return mask(tree)


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
    _check_transforms("masked", [inner])
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

    return GradientTransformation(init_fn, update_fn)
