"""The protocol every gradtx optimizer follows.

A gradient transformation is a pair of pure functions::

    state = init(params)
    updates, state = update(updates, state, params=None, **extra_args)

``init`` builds the optimizer state (a pytree of arrays) from the parameters;
``update`` maps raw updates (usually gradients) to transformed updates and a new
state. Both are traceable, so they can be jitted, vmapped, scanned and sharded.
The state's structure, shapes and dtypes never change from one step to the
next. Extra keyword arguments (a loss value, a key, …) are passed to every
transformation in a chain; those that do not need them ignore them.

Nothing here depends on Optax, but the protocol is the same: a gradtx
transformation can be used wherever an Optax one is expected, and the reverse.
"""

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp

from . import traits as _traits
from .lifting import flatten_like, leaf_paths

Params = chex.ArrayTree
"""A pytree of parameters."""
Updates = chex.ArrayTree
"""A pytree of updates (gradients on the way in, steps on the way out)."""
OptState = chex.ArrayTree
"""A pytree of optimizer state."""
Schedule = Callable[[chex.Numeric], chex.Numeric]
"""A function from the step count (an int32 scalar) to a value."""
ScalarOrSchedule = float | jax.Array | Schedule
"""A hyperparameter given either as a number or as a schedule."""

NO_PARAMS_MSG = (
    "{name}: `update` needs the current parameters; call "
    "`update(updates, state, params)` with `params`."
)


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)``.

    Attributes:
      init: ``init(params) -> state``.
      update: ``update(updates, state, params=None, **extra_args) ->
        (updates, state)``. gradtx's own transformations accept and ignore
        extra keyword arguments they do not use.
    """

    init: TransformInitFn
    update: TransformUpdateFn


GradientTransformationExtraArgs = GradientTransformation
"""Optax's name for a transformation whose ``update`` takes extra kwargs.

gradtx has a single type: every gradtx transformation accepts extra keyword
arguments, so this is the same class.
"""

TransformUpdateExtraArgsFn = TransformUpdateFn
"""Optax's name for an ``update`` function that takes extra kwargs (the same)."""

MaskOrFn = Any | Callable[[Params], Any]
"""A tree of bools like the params, or a function from the params to one."""


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


def check_state(owner: str, state: Any, expected: type | tuple[type, ...]) -> None:
    """Raises unless ``state`` is an instance of ``expected`` (the init's class).

    Catches, at trace time and for free, a state that is ``None`` (``update``
    before ``init``), the state of another transformation (an Adam state
    restored into AdaBelief has the same fields but another class), or a
    checkpoint restored as plain lists and dicts.
    """
    if isinstance(state, expected):
        return
    classes = expected if isinstance(expected, tuple) else (expected,)
    want = " or ".join(f"`{c.__name__}`" for c in classes)
    if state is None:
        got = "None: was `init` called, and its result passed to `update`?"
    elif isinstance(state, (list, dict)):
        got = (
            f"a {type(state).__name__}: a checkpoint restored without its "
            "structure? Rebuild it with `gradtx.restore_state`."
        )
    elif isinstance(state, tuple) and hasattr(state, "_fields"):
        got = f"a `{type(state).__name__}`, the state of another transformation."
    else:
        got = f"an object of type `{type(state).__name__}`."
    raise ValueError(
        f"{owner}: `state` must be the {want} made by this transformation's "
        f"`init`; got {got}"
    )


def init_empty_state(params: Params) -> EmptyState:
    """An ``init`` function for stateless transformations.

    Args:
      params: the params (ignored).

    Returns:
      An :class:`EmptyState`.
    """
    del params
    return EmptyState()


def _accepts_extra_args(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def with_extra_args_support(tx: GradientTransformation) -> GradientTransformation:
    """Wraps ``tx`` so that its ``update`` accepts (and drops) extra kwargs.

    A transformation whose ``update`` already takes ``**kwargs`` is returned
    unchanged. This lets a chain forward extra arguments to every member,
    including third-party transformations written as ``update(u, s, p)``.

    Args:
      tx: a :class:`GradientTransformation` (or any ``(init, update)`` pair).

    Returns:
      ``tx`` itself, or a :class:`GradientTransformation` with the same
      ``init`` and state whose ``update`` drops extra keyword arguments.
    """
    if _accepts_extra_args(tx.update):
        return tx

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return tx.update(updates, state, params)

    return _traits.copy_traits(tx, GradientTransformation(tx.init, update_fn))


def identity() -> GradientTransformation:
    """Leaves updates unchanged: ``u ← u``. Keeps no state."""

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return _traits.elementwise(GradientTransformation(init_empty_state, update_fn))


def set_to_zero() -> GradientTransformation:
    """Replaces every update by zeros of the same shape and dtype: ``u ← 0``.

    Combined with :func:`gradtx.masked` (or ``partition``) it freezes
    parameters.
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.zeros_like, updates), state

    return _traits.elementwise(GradientTransformation(init_empty_state, update_fn))


def stateless(
    f: Callable[[Updates, Params | None], Updates],
) -> GradientTransformation:
    """Builds a stateless transformation from a function of whole trees.

    Args:
      f: ``f(updates, params) -> updates``; ``params`` may be ``None``.

    Returns:
      A transformation whose state is :class:`EmptyState`.
    """

    def update_fn(updates, state, params=None, **extra_args):
        del state, extra_args
        return f(updates, params), EmptyState()

    return GradientTransformation(init_empty_state, update_fn)


def stateless_with_tree_map(
    f: Callable[[chex.Array, chex.Array | None], chex.Array],
) -> GradientTransformation:
    """Builds a stateless transformation from a function of one array.

    Args:
      f: ``f(update, param) -> update`` applied leaf by leaf; ``param`` is
        ``None`` when ``update`` is called without params.

    Returns:
      A transformation whose state is :class:`EmptyState`.
    """

    def tree_f(updates, params):
        if params is None:
            return jax.tree.map(lambda u: f(u, None), updates)
        return jax.tree.map(f, updates, params)

    return stateless(tree_f)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns ``params + updates``, each leaf cast back to its param's dtype.

    ``None`` leaves in ``params`` stay ``None``, whatever ``updates`` holds
    there (as in Optax). The sum is computed in the
    promoted dtype and cast on write, so a bfloat16 parameter receiving a
    float32 update stays bfloat16.

    Args:
      params: the current parameters.
      updates: updates with the same tree structure.

    Returns:
      The new parameters.
    """

    p_leaves, treedef = jax.tree.flatten(params, is_leaf=_is_none)
    u_leaves = flatten_like(
        treedef,
        updates,
        name="updates",
        owner="apply_updates",
        ref="params",
        hint="Were the updates computed for these params?",
    )
    out = []
    for i, (p, u) in enumerate(zip(p_leaves, u_leaves, strict=True)):
        out.append(None if p is None else _add_update(p, u, i, params))
    return treedef.unflatten(out)


def _is_none(x: Any) -> bool:
    return x is None


def _describe(x: Any) -> str:
    """A short description of a non-array leaf for an error message."""
    text = getattr(x, "__name__", None) or repr(x)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(x).__qualname__} ({text})"


def _add_update(p: Any, u: Any, i: int, params: Params) -> Any:
    """``p + u`` cast to ``p``'s dtype, or an error naming the leaf."""
    path = lambda: leaf_paths(params, is_leaf=_is_none)[i]  # only for a message
    try:
        p = jnp.asarray(p)
    except (TypeError, ValueError):
        raise TypeError(
            f"apply_updates: the param at leaf {path()} is not an array but "
            f"{_describe(p)}, which cannot be updated. Keep such leaves out of "
            "both trees (or make them None in both): with Equinox, optimise "
            "`eqx.filter(model, eqx.is_inexact_array)` and apply the updates "
            "with `eqx.apply_updates(model, updates)`, which skips them."
        ) from None
    if u is None:
        raise TypeError(
            f"apply_updates: the update at leaf {path()} is None but the param is "
            f"an array of shape {p.shape}. A None leaf must be None in `params` "
            "too (it then stays None); give a zero update to leave a param as is."
        )
    u_dtype = jnp.result_type(u)
    if u_dtype == jax.dtypes.float0:
        return p  # no gradient, no change (an integer leaf under jax.grad)
    if jnp.shape(u) != p.shape:
        raise ValueError(
            f"apply_updates: shape mismatch at leaf {path()}: `params` has shape "
            f"{p.shape} but `updates` has shape {jnp.shape(u)} (no broadcasting)."
        )
    p_inexact = jnp.issubdtype(p.dtype, jnp.inexact)
    if (not p_inexact and jnp.issubdtype(u_dtype, jnp.inexact)) or (
        p.dtype == jnp.bool_
    ):
        raise TypeError(
            f"apply_updates: leaf {path()} is a {p.dtype} parameter and its update "
            f"is {u_dtype}: adding would round or flip it silently. Keep integer "
            "and boolean leaves out of the optimizer, or give them `float0` or "
            "integer zero updates (`gradtx.masked`, `gradtx.freeze`)."
        )
    if jnp.issubdtype(u_dtype, jnp.complexfloating) and not jnp.issubdtype(
        p.dtype, jnp.complexfloating
    ):
        raise TypeError(
            f"apply_updates: leaf {path()} is a real {p.dtype} parameter but its "
            f"update is {u_dtype}: the imaginary part would be dropped."
        )
    return jnp.asarray(p + u).astype(p.dtype)
