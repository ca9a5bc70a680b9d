"""Changing the layout the inner transformation sees: :func:`flatten`."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._core.base import GradientTransformation, with_extra_args_support
from .._core.lifting import check_shapes, flatten_like
from .._core.placement import auto_axes, on_mesh, whole
from .._core.traits import composed
from .chain import check_transforms


def _concat(leaves: list[Any]) -> jax.Array:
    if not leaves:
        return jnp.zeros([0], jnp.float32)
    if any(on_mesh(x) for x in leaves):
        # Leaves split differently do not concatenate under JAX's sharding
        # types: let the compiler gather them (docs/sharding.md).
        return jax.jit(lambda ls: auto_axes(_concat_plain, ls))(leaves)
    return _concat_plain(leaves)


def _concat_plain(leaves: list[Any]) -> jax.Array:
    # Whole on every device: left to propagation, the vector's split would
    # spread back to leaves split otherwise, and the step would move them.
    return jnp.concatenate([whole(jnp.ravel(x)) for x in leaves])


def flatten(inner: GradientTransformation) -> GradientTransformation:
    """Runs ``inner`` on one vector: all leaves raveled and concatenated.

    Many small leaves (biases, norms) cost one kernel each per operation; one
    long vector costs one. The inner state is built on the flat vector, so it
    holds one buffer per moment instead of one per leaf. Elementwise
    transformations give the same numbers flattened or not; ones that look at
    a leaf as a whole (per-leaf norms, shapes) do not.

    Unlike Optax's ``flatten``, each output leaf is cast back to its update's
    dtype (a mixed float32/bfloat16 tree is concatenated in float32, but the
    bfloat16 leaves come back as bfloat16), an empty tree is accepted, and
    params that do not match the updates raise an error naming the leaf.

    Args:
      inner: the transformation to run on the flat vector.

    Returns:
      A :class:`GradientTransformation` whose state is ``inner``'s state for
      the flat vector.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import flatten
      >>> from gradtx import scale
      >>> tx = flatten(scale(2.0))
      >>> grads = {"b": jnp.ones(2), "w": jnp.ones((2, 2))}
      >>> u, _ = tx.update(grads, tx.init(grads))
      >>> u["w"].tolist()
      [[2.0, 2.0], [2.0, 2.0]]
    """
    owner = "flatten"
    check_transforms(owner, [inner])
    inner = with_extra_args_support(inner)

    def init_fn(params):
        return inner.init(_concat(jax.tree.leaves(params)))

    def update_fn(updates, state, params=None, **extra_args):
        leaves, treedef = jax.tree.flatten(updates)
        flat_params = None
        if params is not None:
            p_leaves = flatten_like(treedef, params, name="params", owner=owner)
            check_shapes(updates, leaves, [p_leaves], ["params"], owner)
            flat_params = _concat(p_leaves)
        flat, state = inner.update(_concat(leaves), state, flat_params, **extra_args)
        ends = np.cumsum([np.size(x) for x in leaves])[:-1].tolist()
        pieces = jnp.split(whole(flat), ends) if leaves else []
        out = [
            jnp.reshape(piece, jnp.shape(x)).astype(jnp.result_type(x))
            for piece, x in zip(pieces, leaves, strict=True)
        ]
        return treedef.unflatten(out), state

    return composed(GradientTransformation(init_fn, update_fn), [inner])
