"""Constraints on updates: zeroing NaNs, keeping parameters non-negative."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._core.base import NO_PARAMS_MSG, EmptyState, GradientTransformation, check_state
from .._core.lifting import flatten_like, map_leaves
from .._core.traits import elementwise

NonNegativeParamsState = EmptyState


def keep_params_nonnegative() -> GradientTransformation:
    """Changes the updates so that no parameter becomes negative.

    ``u = −p`` where ``p + g < 0`` (the parameter lands exactly on 0),
    ``u = g`` elsewhere. Put it last in a chain, after the learning rate: it
    acts on the final step. A parameter that is already negative is moved to 0
    by any step that would leave it negative.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`NonNegativeParamsState` (empty); ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import keep_params_nonnegative
      >>> tx = keep_params_nonnegative()
      >>> p = jnp.array([1.0, 2.0])
      >>> tx.update(jnp.array([-3.0, -1.0]), tx.init(p), p)[0].tolist()
      [-1.0, -1.0]
    """
    owner = "keep_params_nonnegative"

    def init_fn(params):
        del params
        return NonNegativeParamsState()

    def leaf(g, p):
        return jnp.where(p + g < 0, -p, g)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        out = map_leaves(
            leaf,
            updates,
            params,
            names=["params"],
            owner=owner,
            complex_ok="complex numbers have no sign to keep non-negative",
        )
        return out, state

    return elementwise(GradientTransformation(init_fn, update_fn))


class ZeroNansState(NamedTuple):
    """Whether the last update of each leaf held a NaN (a bool scalar per leaf)."""

    found_nan: Any


def zero_nans() -> GradientTransformation:
    """Replaces every NaN in the updates by 0, and records where it did.

    The state's ``found_nan`` has the tree structure of the params, with one
    boolean scalar per leaf: ``True`` when the last ``update`` found (and
    zeroed) at least one NaN in that leaf. The transformation itself ignores
    it; it is there for monitoring. Infinities are kept (only NaN is zeroed),
    and for complex updates an element is NaN when either part is.

    Returns:
      A :class:`GradientTransformation` with state :class:`ZeroNansState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import zero_nans
      >>> tx = zero_nans()
      >>> g = {"a": jnp.array([1.0, jnp.nan]), "b": jnp.array([2.0])}
      >>> u, state = tx.update(g, tx.init(g))
      >>> u["a"].tolist(), bool(state.found_nan["a"]), bool(state.found_nan["b"])
      ([1.0, 0.0], True, False)
    """
    owner = "zero_nans"

    def init_fn(params):
        return ZeroNansState(jax.tree.map(lambda _: jnp.array(False), params))

    def leaf(g):
        nan = jnp.isnan(g)
        return jnp.where(nan, jnp.zeros_like(g), g), jnp.any(nan)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        # The flags are per leaf, so only the tree structure can be checked.
        check_state(owner, state, ZeroNansState)
        flatten_like(
            jax.tree.structure(updates), state.found_nan, name="state", owner=owner
        )
        updates, found = map_leaves(leaf, updates, owner=owner, nout=2)
        return updates, ZeroNansState(found)

    return elementwise(GradientTransformation(init_fn, update_fn))
