"""Weight decay: adding ``λ·θ`` to the updates."""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
)
from .._core.lifting import map_leaves
from .._core.traits import described, elementwise
from ..combinators.masked import masked

AddDecayedWeightsState = EmptyState
"""The state of :func:`add_decayed_weights` with a constant weight decay."""


class WeightDecaySchedule(NamedTuple):
    """The step count, kept when the weight decay is a schedule."""

    count: chex.Array


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Adds the decayed weights to the updates: ``u ← u + λ(t)·θ``.

    Where this sits in a chain decides what it means:

    * **after** an adaptive scaling (and before the learning rate) it is
      *decoupled* weight decay, ``θ ← θ − η(û + λθ)``, as in AdamW
      (:func:`gradtx.adamw`);
    * **before** the adaptive scaling it is *coupled* L2 regularisation: the
      gradient of ``λ/2·‖θ‖²`` is added to the loss gradient and then rescaled
      with it (:func:`gradtx.adam_l2`).

    Args:
      weight_decay: λ >= 0, or a schedule of the step count.
      mask: a tree of booleans like the params (or a function of the params
        returning one): decay only where True. ``None`` decays everything.

    Returns:
      A :class:`GradientTransformation` that needs ``params`` in ``update``.
    """
    _validate.scalar_or_schedule("add_decayed_weights", "weight_decay", weight_decay)
    scheduled = callable(weight_decay)

    def init_fn(params):
        del params
        if scheduled:
            return WeightDecaySchedule(count=jnp.zeros([], jnp.int32))
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        static = not scheduled and isinstance(weight_decay, (int, float))
        if static and weight_decay == 0:  # no decay: params are not needed
            return updates, state
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name="add_decayed_weights"))
        if scheduled:
            wd = weight_decay(state.count)
            state = WeightDecaySchedule(_maths.safe_increment(state.count))
        else:
            wd = weight_decay
        updates = map_leaves(
            lambda g, p: g + wd * p,
            updates,
            params,
            names=["params"],
            owner="add_decayed_weights",
        )
        return updates, state

    tx = GradientTransformation(init_fn, update_fn)
    tx = elementwise(described(tx, "add_decayed_weights", weight_decay=weight_decay))
    if mask is None:
        return tx
    return masked(tx, mask)


def _no_decay(weight_decay) -> bool:
    """Whether ``weight_decay`` is a plain number equal to 0 (no schedule,
    no traced value): then the params are not needed."""
    return isinstance(weight_decay, (int, float)) and weight_decay == 0


class DecayAfterStepState(NamedTuple):
    """The step count of :func:`add_decayed_weights_after_step`."""

    count: chex.Array


def add_decayed_weights_after_step(
    weight_decay: ScalarOrSchedule = 0.0,
    learning_rate: ScalarOrSchedule = 1.0,
    first_step: int = 0,
) -> GradientTransformation:
    r"""Decoupled weight decay of the stepped params: ``u ← (1 − ηλ)·u + λθ``.

    Placed before the learning rate (``u ← −η·u``), the params become
    :math:`\theta - \eta u' = (1 - \eta\lambda)(\theta - \eta u)`: the update
    is taken first and the result decayed, as pytorch-optimizer's SOAP and
    LaProp do (``p ← p − η·u; p ← (1 − ηλ)·p``); :func:`gradtx.soap` and
    :func:`gradtx.laprop` use it. AdamW's :func:`add_decayed_weights`
    decays the params before the update instead: the two differ by
    :math:`\eta^2\lambda u`.

    Args:
      weight_decay: λ >= 0, or a schedule of the step count.
      learning_rate: η >= 0 (the chain's), or a schedule of the step count.
      first_step: calls before this one (counted from 0) pass the updates
        through undecayed (SOAP's first step, which moves nothing: 1).

    Returns:
      A :class:`GradientTransformation` that needs ``params`` in ``update``,
      unless ``weight_decay`` is the number 0 (then it passes the updates
      through, as the aliases' default ``weight_decay=0.0`` should).
    """
    owner = "add_decayed_weights_after_step"
    _validate.scalar_or_schedule(owner, "weight_decay", weight_decay)
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    _validate.integer(owner, "first_step", first_step)

    def init_fn(params):
        del params
        return DecayAfterStepState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        count = state.count
        if params is None:
            if _no_decay(weight_decay):
                return updates, DecayAfterStepState(_maths.safe_increment(count))
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        wd = weight_decay(count) if callable(weight_decay) else weight_decay
        lr = learning_rate(count) if callable(learning_rate) else learning_rate
        wd = jnp.where(count >= first_step, wd, 0.0)
        decayed = map_leaves(
            lambda u, p: u - lr * wd * u + wd * p,
            updates,
            params,
            names=["params"],
            owner=owner,
        )
        return decayed, DecayAfterStepState(_maths.safe_increment(count))

    return elementwise(GradientTransformation(init_fn, update_fn))
