"""Lookahead: k fast steps forward, one slow step back."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    OptState,
    Params,
    check_state,
    with_extra_args_support,
)
from .._core.lifting import map_leaves
from .._core.traits import composed


class LookaheadState(NamedTuple):
    """The fast optimizer's state and the fast steps taken since the last sync.

    Attributes:
      fast_state: the state of the fast optimizer.
      steps_since_sync: an int32 scalar in ``[0, sync_period)``.
    """

    fast_state: OptState
    steps_since_sync: chex.Array


class LookaheadParams(NamedTuple):
    """The fast and the slow parameters of :func:`lookahead`.

    Compute gradients at ``fast``; evaluate (and deploy) ``slow``, which
    generalise better (Zhang et al., 2019).

    Attributes:
      fast: the parameters the fast optimizer moves.
      slow: the parameters moved once per sync period.
    """

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> "LookaheadParams":
        """Fast and slow parameters both equal to ``params``."""
        return cls(fast=params, slow=params)


def _check_sync_period(owner: str, sync_period) -> None:
    if isinstance(sync_period, jax.core.Tracer):
        return
    is_array = isinstance(sync_period, (jax.Array, np.ndarray))
    if is_array and jnp.issubdtype(sync_period.dtype, jnp.integer):
        sync_period = int(sync_period) if np.ndim(sync_period) == 0 else sync_period
    _validate.integer(owner, "sync_period", sync_period, low=1)


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int,
    slow_step_size: chex.Numeric,
    reset_state: bool = False,
) -> GradientTransformation:
    r"""Lookahead: run a fast optimizer, pull slow weights towards it every k steps.

    With fast weights :math:`\phi`, slow weights :math:`\theta`, k =
    ``sync_period`` and :math:`\alpha` = ``slow_step_size``: the fast optimizer
    moves :math:`\phi` for k steps; then

    .. math::
        \theta \leftarrow \theta + \alpha (\phi - \theta), \qquad
        \phi \leftarrow \theta

    Both moves are folded into the updates of a :class:`LookaheadParams` (give
    ``update`` the pair as ``params``; apply the updates unchanged with
    :func:`gradtx.apply_updates`, or fast and slow fall out of sync).

    ``init`` accepts the pair or the fast params alone (as Optax does).
    ``reset_state`` re-initialises the fast optimizer's state at each sync; it
    selects the fresh state with ``where`` rather than Optax's
    ``(1 − s)·old + s·new``, so state leaves keep their dtype and an inf in the
    old state cannot become NaN (same numbers otherwise).

    Reference: Zhang, Lucas, Hinton & Ba, 2019, "Lookahead Optimizer: k steps
    forward, 1 step back".

    Args:
      fast_optimizer: the inner optimizer.
      sync_period: k >= 1, the number of fast steps per slow step.
      slow_step_size: :math:`\alpha` in [0, 1].
      reset_state: re-initialise the fast optimizer's state after each sync.

    Returns:
      A :class:`GradientTransformation` with state :class:`LookaheadState`,
      whose updates are a :class:`LookaheadParams`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import sgd
      >>> from gradtx import apply_updates
      >>> from gradtx import LookaheadParams, lookahead
      >>> opt = lookahead(sgd(0.5), sync_period=2, slow_step_size=0.5)
      >>> params = LookaheadParams.init_synced(jnp.array([1.0]))
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     updates, state = opt.update(params.fast, state, params)  # grad of x²/2
      ...     params = apply_updates(params, updates)
      >>> float(params.fast[0]), float(params.slow[0])
      (0.625, 0.625)
    """
    owner = "lookahead"
    if not (hasattr(fast_optimizer, "init") and hasattr(fast_optimizer, "update")):
        raise TypeError(
            f"{owner}: `fast_optimizer` must be a gradient transformation, got "
            f"{fast_optimizer!r}."
        )
    _check_sync_period(owner, sync_period)
    _validate.number(owner, "slow_step_size", slow_step_size, low=0.0, high=1.0)
    _validate.flag(owner, "reset_state", reset_state)
    fast_tx = with_extra_args_support(fast_optimizer)

    def init_fn(params):
        fast = params.fast if isinstance(params, LookaheadParams) else params
        return LookaheadState(
            fast_state=fast_tx.init(fast),
            steps_since_sync=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, LookaheadState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        if not (hasattr(params, "fast") and hasattr(params, "slow")):
            raise TypeError(
                f"{owner}: `params` must be a LookaheadParams(fast, slow), got "
                f"{type(params).__name__}; build it with "
                "`LookaheadParams.init_synced(params)`."
            )
        updates, fast_state = fast_tx.update(
            updates, state.fast_state, params.fast, **extra_args
        )
        sync = (state.steps_since_sync == sync_period - 1).astype(jnp.float32)
        names = ["fast params", "slow params"]

        def fast_leaf(u, f, s):
            return u - sync * _maths.one_minus(slow_step_size) * (f + u - s)

        def slow_leaf(u, f, s):
            return slow_step_size * sync * (f + u - s)

        trees = (updates, params.fast, params.slow)
        new = LookaheadParams(
            fast=map_leaves(fast_leaf, *trees, names=names, owner=owner),
            slow=map_leaves(slow_leaf, *trees, names=names, owner=owner),
        )
        if reset_state:
            fresh = fast_tx.init(params.fast)
            fast_state = jax.tree.map(
                lambda old, new: jnp.where(sync > 0, new, old), fast_state, fresh
            )
        steps = (state.steps_since_sync + 1) % sync_period
        return new, LookaheadState(fast_state, steps.astype(jnp.int32))

    return composed(GradientTransformation(init_fn, update_fn), [fast_tx])
