"""Applying accumulated updates every k steps."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import map_leaves, tree_zeros_like
from .._core.traits import elementwise


class ApplyEvery(NamedTuple):
    """Steps since the last emitted update (mod ``k``) and the running sum."""

    count: chex.Array
    grad_acc: Updates


def _whole_number(owner: str, name: str, value, low: int):
    """A concrete whole number >= ``low`` as an int; a tracer is passed through."""
    if isinstance(value, jax.core.Tracer):
        return value
    array = isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0
    if array and jnp.issubdtype(value.dtype, jnp.integer):
        value = int(value)
    _validate.integer(owner, name, value, low=low)
    return int(value)


def apply_every(k: int = 1) -> GradientTransformation:
    """Sums the updates of ``k`` consecutive steps and emits the sum every ``k``-th.

    Steps ``1 … k − 1`` of each cycle return zeros; step ``k`` returns the sum
    of the cycle's ``k`` updates, and the next cycle starts from zero. The
    other members of a chain still update their state at every step, so this
    is not the same as a ``k`` times larger batch; use ``MultiSteps`` for
    that.

    Args:
      k: the number of steps per emitted update (a whole number >= 1).

    Returns:
      A :class:`GradientTransformation` with state :class:`ApplyEvery`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import apply_every
      >>> tx = apply_every(2)
      >>> state = tx.init(jnp.zeros(1))
      >>> u, state = tx.update(jnp.array([1.0]), state)
      >>> v, state = tx.update(jnp.array([2.0]), state)
      >>> u.tolist(), v.tolist()
      ([0.0], [3.0])
    """
    owner = "apply_every"
    k = _whole_number(owner, "k", k, low=1)

    def init_fn(params):
        return ApplyEvery(jnp.zeros([], jnp.int32), tree_zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("apply_every", state, ApplyEvery)
        phase = state.count % k
        keep, emit = phase != 0, phase == k - 1

        def leaf(g, acc):
            acc = jnp.where(keep, acc, jnp.zeros_like(acc)) + g
            return jnp.where(emit, acc, jnp.zeros_like(acc)), acc

        updates, acc = map_leaves(
            leaf, updates, state.grad_acc, names=["grad_acc"], owner=owner, nout=2
        )
        return updates, ApplyEvery(_maths.safe_increment(state.count) % k, acc)

    return elementwise(GradientTransformation(init_fn, update_fn))
