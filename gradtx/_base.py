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

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp

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
    "{name}: this transformation needs the current parameters; call "
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


def init_empty_state(params: Params) -> EmptyState:
    """An ``init`` function for stateless transformations."""
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
    """
    if _accepts_extra_args(tx.update):
        return tx

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return tx.update(updates, state, params)

    return GradientTransformation(tx.init, update_fn)


def identity() -> GradientTransformation:
    """Leaves updates unchanged: ``u ← u``. Keeps no state."""

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return GradientTransformation(init_empty_state, update_fn)


def set_to_zero() -> GradientTransformation:
    """Replaces every update by zeros of the same shape and dtype: ``u ← 0``.

    Combined with :func:`gradtx.masked` (or ``partition``) it freezes
    parameters.
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.zeros_like, updates), state

    return GradientTransformation(init_empty_state, update_fn)


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

    ``None`` leaves in ``params`` stay ``None``. The sum is computed in the
    promoted dtype and cast on write, so a bfloat16 parameter receiving a
    float32 update stays bfloat16.

    Args:
      params: the current parameters.
      updates: updates with the same tree structure.

    Returns:
      The new parameters.
    """

    def add(p, u):
        if p is None:
            return None
        p = jnp.asarray(p)
        return jnp.asarray(p + u).astype(p.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)
