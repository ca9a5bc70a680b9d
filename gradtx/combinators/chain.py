"""Combining transformations: chain, named_chain, masked."""

from typing import Any

from .._core.base import GradientTransformation, with_extra_args_support
from .._core.traits import composed, described


def check_transforms(owner: str, txs: Any) -> None:
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
    check_transforms("chain", args)
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
    return composed(described(tx, "chain", members=args), args)


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
    check_transforms("named_chain", [t for _, t in args])
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

    return composed(GradientTransformation(init_fn, update_fn), [t for _, t in args])
