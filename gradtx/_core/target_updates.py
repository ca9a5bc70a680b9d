"""Slow copies of the parameters: Polyak averaging and periodic target updates.

Both functions take the latest tensors and a slow copy of them and return the
new slow copy, with the structure, shapes and dtypes of the slow copy. Unlike
Optax's functions of the same names, they check that the two trees match
(naming the leaf path otherwise) instead of broadcasting, and keep the slow
copy's dtypes.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import validation as _validate
from .base import Params
from .lifting import check_shapes, drop_where_none, flatten_like, upcast


def _leaves(owner: str, new_tensors: Any, old_tensors: Any) -> tuple[Any, list, list]:
    """``(treedef, new leaves, old leaves)`` laid out like ``old_tensors``."""
    old, treedef = jax.tree.flatten(old_tensors)
    new = flatten_like(
        treedef, new_tensors, name="new_tensors", owner=owner, ref="old_tensors"
    )
    check_shapes(old_tensors, old, [new], ["new_tensors"], owner)
    return treedef, new, old


def incremental_update(
    new_tensors: Params, old_tensors: Params, step_size: chex.Numeric
) -> Params:
    r"""Polyak (exponential moving) averaging of parameters.

    .. math::
        \bar\theta \leftarrow \alpha\, \theta + (1 - \alpha)\, \bar\theta

    with :math:`\alpha` = ``step_size``. The average is kept for evaluation;
    bfloat16/float16 leaves are averaged in float32 and cast back. ``None``
    leaves of ``new_tensors`` stay ``None``, whatever ``old_tensors`` holds
    there (as in Optax).

    Reference: Polyak & Juditsky, 1992, "Acceleration of stochastic
    approximation by averaging".

    Args:
      new_tensors: the latest parameters :math:`\theta`.
      old_tensors: the moving average :math:`\bar\theta`.
      step_size: :math:`\alpha` in [0, 1] (a number or a JAX scalar).

    Returns:
      The new moving average, with the structure and dtypes of
      ``old_tensors``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import incremental_update
      >>> incremental_update(jnp.array([1.0]), jnp.array([0.0]), 0.25).tolist()
      [0.25]
    """
    owner = "incremental_update"
    _validate.number(owner, "step_size", step_size, low=0.0, high=1.0)
    # A None leaf of `new_tensors` stays None, whatever the average holds.
    old_tensors = drop_where_none(
        new_tensors, old_tensors, name="old_tensors", owner=owner, ref="new_tensors"
    )
    treedef, new, old = _leaves(owner, new_tensors, old_tensors)
    out = [
        (step_size * upcast(n) + (1.0 - step_size) * upcast(o)).astype(o.dtype)
        for n, o in zip(new, old, strict=True)
    ]
    return treedef.unflatten(out)


def periodic_update(
    new_tensors: Params,
    old_tensors: Params,
    steps: chex.Array,
    update_period: int | chex.Array,
) -> Params:
    """Copies ``new_tensors`` when ``steps`` is a multiple of ``update_period``.

    Used for target networks (DQN) and slow teachers (BYOL): the slow copy is
    refreshed every ``update_period`` steps and kept otherwise. The copy is
    chosen with :func:`jax.lax.cond`; leaves are cast to ``old_tensors``'
    dtypes.

    References: Mnih et al., 2015, "Human-level control through deep
    reinforcement learning"; Grill et al., 2020, "Bootstrap your own latent".

    Args:
      new_tensors: the latest parameters.
      old_tensors: the slow copy.
      steps: the number of updates of the online parameters (an int scalar).
      update_period: the period, a whole number >= 1.

    Returns:
      ``new_tensors`` if ``steps % update_period == 0``, else ``old_tensors``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import periodic_update
      >>> new, old = jnp.array([1.0]), jnp.array([0.0])
      >>> periodic_update(new, old, 4, 2).tolist()
      [1.0]
      >>> periodic_update(new, old, 5, 2).tolist()
      [0.0]
    """
    owner = "periodic_update"
    if isinstance(update_period, (jax.Array, np.ndarray)):
        _validate.number(owner, "update_period", update_period, low=1.0)
    else:
        _validate.integer(owner, "update_period", update_period, low=1)
    treedef, new, old = _leaves(owner, new_tensors, old_tensors)
    new = treedef.unflatten(
        [
            jnp.asarray(n).astype(jnp.result_type(o))
            for n, o in zip(new, old, strict=True)
        ]
    )
    return jax.lax.cond(
        jnp.mod(steps, update_period) == 0,
        lambda n, o: n,
        lambda n, o: o,
        new,
        old_tensors,
    )
