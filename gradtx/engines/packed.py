"""``packed(tx)``: any optimizer stepped on packed buffers, params left as they are.

The one-line form of :mod:`gradtx.engines.pack`: the model keeps its ordinary tree
of params, and the wrapper packs the gradients (and params) into a few
buffers on the way in, runs the inner transformation on them, keeps its state
packed, and hands back updates with the original structure. Use it when the
model cannot call :func:`gradtx.unpack` in its loss; packing the params
themselves (``docs/packing.md``) is faster still, because it needs no split
of the updates in the step: ``packed(tx)`` hands trees that are already packed
to ``tx`` as they are, so it is also the checked way to step a
:func:`gradtx.pack` tree.

Only transformations that declare themselves elementwise (a property the
transformation carries, see ``gradtx._core.traits``) may run on packed
buffers; ``packed`` refuses any other when it is built, naming the part to
blame. No primitive knows that packing exists.
"""

import re
import types
from typing import Any

import jax

from .._core import traits as _traits
from .._core.base import GradientTransformation, with_extra_args_support
from .pack import (
    DEFAULT_MAX_LEAVES_PER_BUFFER,
    DEFAULT_MIN_LEAF_SIZE,
    Packed,
    check_pack_options,
    contains_packed,
    pack,
    unpack,
)

_UPDATE = re.compile(r"^(\w+)\.<locals>\.update(_fn)?$")
_WRAPPERS = {"chain", "named_chain", "with_extra_args_support"}


def _foreign_parts(fn: Any, depth: int = 0, seen: set | None = None) -> list[str]:
    """The factories whose ``update`` functions a foreign transformation's
    ``update`` closes over (its chain's members, say), in order: best effort,
    for the error message only."""
    seen = set() if seen is None else seen
    found: list[str] = []
    if depth > 6 or id(fn) in seen:
        return found
    seen.add(id(fn))
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, dict):
            value = list(value.values())
        for x in value if isinstance(value, tuple | list) else [value]:
            if hasattr(x, "init") and hasattr(x, "update"):
                x = x.update
            if not isinstance(x, types.FunctionType):
                continue
            match = _UPDATE.match(x.__qualname__)
            if match and match.group(1) not in _WRAPPERS:
                found.append(match.group(1))
            if match:
                found += [
                    n for n in _foreign_parts(x, depth + 1, seen) if n not in found
                ]
    return found


def check_elementwise(tx: Any, owner: str = "packed") -> None:
    """Raises ``ValueError`` unless ``tx`` declares itself elementwise.

    The message names the first part of ``tx`` that does not (a member of a
    chain, the inner transformation of a wrapper, or ``tx`` itself) in the
    caller's words, and says what to do instead.
    """
    blame = _traits.not_elementwise(tx)
    if blame is None:
        return
    part, reason = blame
    what = _traits.name(part)
    where = "" if part is tx else f" (a part of {_traits.name(tx)})"
    if reason is not None:
        raise ValueError(
            f"{owner}: {what}{where} cannot run on packed buffers: {reason}, "
            "which would see the buffers instead of the leaves. Pass a tree "
            "instead (for params packed with gradtx.pack: "
            "gradtx.pack_labels(packed, fn)), or run it unpacked."
        )
    module = getattr(getattr(part, "update", None), "__module__", None) or ""
    if module.split(".")[0] != "gradtx":  # Optax's, or the user's own
        parts = _foreign_parts(part.update)
        listed = f", whose parts are {', '.join(parts)}," if parts else ""
        raise ValueError(
            f"{owner}: {what}{where}{listed} does not declare itself elementwise "
            "(gradtx cannot know whether a transformation from outside it "
            "looks at whole leaves, as trust ratios, block norms and factored "
            "moments do), so it is refused on packed buffers. Use gradtx's "
            "transformation of the same name where it is elementwise (Adam is, "
            "LAMB is not), or run it unpacked; declare a transformation of your "
            "own that is elementwise with gradtx.declare_elementwise(tx)."
        )
    raise ValueError(
        f"{owner}: {what}{where} is not elementwise: its update of an element "
        "may depend on the whole leaf that holds it (a norm, a shape or a "
        "statistic per leaf, or a function of the params), so on a packed "
        "buffer it would treat many leaves as one. Run it unpacked, or pack "
        "only the elementwise parts "
        f"(e.g. chain(packed(scale_by_adam()), {what}(...), ...))."
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
    give the numbers of the plain run (global norms may differ by rounding).

    ``inner`` must declare itself elementwise (every gradtx primitive that is
    does; chains and wrappers do when all their parts do): ``packed`` raises
    ``ValueError`` when built for one that does not, naming the part to blame:
    trust ratios, block norms, factored moments, Muon, masks or labels
    computed by a function, and every transformation from outside gradtx.

    A tree that is already packed (the params of :func:`gradtx.pack`) is
    passed to ``inner`` as it is, and ``update`` returns packed updates: the
    checked way to step packed params.

    Args:
      inner: the transformation to run on the packed tree.
      min_leaf_size: leaves with at least this many elements stay whole.
      max_leaves_per_buffer: at most this many leaves share a buffer.

    Returns:
      A :class:`GradientTransformation` with ``inner``'s (packed) state.

    Raises:
      ValueError: ``inner`` is not elementwise (see above).

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
    check_elementwise(inner)
    inner = with_extra_args_support(inner)
    options = dict(
        min_leaf_size=min_leaf_size, max_leaves_per_buffer=max_leaves_per_buffer
    )
    check_pack_options(min_leaf_size, max_leaves_per_buffer)

    def layout_of(tree: Any, what: str) -> Any:
        if contains_packed(tree):
            raise TypeError(
                f"packed: `{what}` holds a packed tree (gradtx.pack) inside "
                "an ordinary one; pass the Packed itself, or the plain tree."
            )
        return pack(tree, **options).layout

    def init_fn(params):
        if isinstance(params, Packed):  # gradtx.pack's params: as they are
            return inner.init(params)
        return inner.init(layout_of(params, "params").pack(params))

    def update_fn(updates, state, params=None, **extra_args):
        if isinstance(updates, Packed):  # gradtx.pack's tree: as it is
            if params is not None and not isinstance(params, Packed):
                raise TypeError(
                    "packed: `updates` are packed (gradtx.pack) but `params` "
                    "are not; pass both packed, or both plain."
                )
            return inner.update(updates, state, params, **extra_args)
        if isinstance(params, Packed):
            raise TypeError(
                "packed: `params` are packed (gradtx.pack) but `updates` are "
                "not; pass both packed (packed.layout.pack(grads)), or both plain."
            )
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

    return _traits.composed(GradientTransformation(init_fn, update_fn), [inner])
