r"""Schedule-Free learning: a wrapper that replaces momentum and schedules.

The wrapper keeps the base optimizer's iterate :math:`z` in its state and
hands out the interpolation :math:`y` as the parameters; the averaged sequence
:math:`x`, the one to evaluate, is recomputed from the other two by
:func:`schedule_free_eval_params`. See :func:`schedule_free` for the rule.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import lifting as _tree
from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    OptState,
    Params,
    ScalarOrSchedule,
    check_state,
    with_extra_args_support,
)
from .._core.lifting import map_leaves
from .._core.traits import composed


class ScheduleFreeState(NamedTuple):
    """State of :func:`schedule_free`.

    Attributes:
      b1: the interpolation weight β₁ (read by
        :func:`schedule_free_eval_params`).
      weight_sum: Σ w_i, the total averaging weight so far.
      step_count: the 1-based step (int32, saturating).
      max_lr: the largest learning rate seen so far.
      base_optimizer_state: the wrapped optimizer's state.
      z: the base optimizer's iterate z_t.
    """

    b1: chex.Array
    weight_sum: chex.Array
    step_count: chex.Array
    max_lr: chex.Array
    base_optimizer_state: OptState
    z: Params


def _scalar_dtype(params: Params) -> jnp.dtype:
    """float64 when every floating leaf is float64, else float32 (never bf16)."""
    floats = [
        jnp.result_type(x)
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    if floats and all(d == jnp.float64 for d in floats):
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def _find_state(state: Any) -> Any:
    if hasattr(state, "b1") and hasattr(state, "z"):
        return state
    is_sf = lambda x: isinstance(x, ScheduleFreeState)
    found = [s for s in jax.tree.leaves(state, is_leaf=is_sf) if is_sf(s)]
    if len(found) != 1:
        raise ValueError(
            "schedule_free_eval_params: `state` must be a ScheduleFreeState (or "
            f"contain exactly one), got {type(state).__name__} containing "
            f"{len(found)}."
        )
    return found[0]


def schedule_free_eval_params(state: OptState, params: Params) -> Params:
    r"""The parameters to evaluate: the average :math:`x_t` of :func:`schedule_free`.

    .. math::
        x_t = \left(y_t - (1 - \beta_1) z_t\right) / \beta_1

    Train (take gradients) at ``params`` (:math:`y_t`); evaluate, checkpoint
    for deployment or report losses at the returned :math:`x_t`.

    Unlike Optax's helper, ``state`` may also be a state that holds one
    :class:`ScheduleFreeState` (e.g. inside a ``chain``); any other state
    raises a ``ValueError``.

    Args:
      state: the state of a :func:`schedule_free` optimizer.
      params: the current parameters :math:`y_t`.

    Returns:
      :math:`x_t`, a tree like ``params`` (and of its dtypes).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import schedule_free_eval_params
      >>> from gradtx import schedule_free_sgd
      >>> opt = schedule_free_sgd(learning_rate=0.5, b1=0.5)
      >>> params = jnp.array([2.0])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(params, state, params)  # grad of x²/2
      >>> params = params + updates
      >>> float(params[0]), float(schedule_free_eval_params(state, params)[0])
      (1.0, 1.0)
    """
    state = _find_state(state)
    b1 = state.b1
    return map_leaves(
        lambda y, z: (y - _maths.one_minus(b1) * z) / b1,
        params,
        state.z,
        names=["state.z"],
        owner="schedule_free_eval_params",
    )


def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    weight_lr_power: chex.Numeric = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-Free: interpolate and average instead of momentum and decay.

    With :math:`z_t` the iterate of ``base_optimizer`` (whose update is
    :math:`\Delta_t`; for SGD :math:`\Delta_t = -\gamma_t g_t`), the
    gradient taken at the returned parameters :math:`y_t`, and
    :math:`x_t` the running average:

    .. math::
        z_{t+1} &= z_t + \Delta_t(g(y_t)), \\
        c_{t+1} &= \frac{w_t}{\sum_{i \le t} w_i}, \qquad
            w_t = \big(\max_{i \le t} \gamma_i\big)^{r}, \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \\
        y_{t+1} &= \beta_1 x_{t+1} + (1 - \beta_1)\, z_{t+1},

    starting from :math:`x_1 = y_1 = z_1 = \theta_0`, with :math:`r` =
    ``weight_lr_power``. Only :math:`z` is stored; :math:`x_t` is recomputed
    from :math:`y_t` and :math:`z_t` (so it stays right if another
    transformation alters :math:`y`), and :func:`schedule_free_eval_params`
    returns it. :math:`c = 0` while :math:`\sum w = 0` (a warmup starting at
    0). Switch the base optimizer's momentum off (e.g. Adam with ``b1 = 0``):
    the interpolation replaces it.

    As in Optax, the learning-rate schedule for :math:`w_t` is evaluated at
    the 1-based step (the base optimizer evaluates its own at the 0-based one).

    Differences from Optax: ``b1`` must be in (0, 1] (0 divides by zero in
    :func:`schedule_free_eval_params`, which Optax only warns about);
    ``weight_sum``, ``max_lr`` and ``b1`` are kept in float32 when the params
    are bfloat16/float16 (Optax keeps them in the params' dtype, where the
    weight sum stops growing after ~256 equal steps and ``b1 = 0.9`` rounds to
    0.898), and the arithmetic runs in float32 (cast on write).

    Reference: Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, 2024,
    "The Road Less Scheduled" (arXiv:2405.15682).

    Args:
      base_optimizer: the optimizer giving :math:`\Delta_t` (without momentum).
      learning_rate: :math:`\gamma_t` >= 0 or a schedule: the base
        optimizer's learning rate, used here to weight the average.
      b1: :math:`\beta_1` in (0, 1], the interpolation weight.
      weight_lr_power: :math:`r` >= 0.
      state_dtype: dtype of :math:`z` (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`ScheduleFreeState`;
      ``update`` needs ``params`` and passes extra keyword arguments on to
      ``base_optimizer``.
    """
    owner = "schedule_free"
    if not (hasattr(base_optimizer, "init") and hasattr(base_optimizer, "update")):
        raise TypeError(
            f"{owner}: `base_optimizer` must be a gradient transformation, got "
            f"{type(base_optimizer).__name__}."
        )
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    _validate.number(owner, "b1", b1, low=0.0, high=1.0, low_open=True)
    _validate.non_negative(owner, "weight_lr_power", weight_lr_power)
    state_dtype = _validate.float_dtype(owner, "state_dtype", state_dtype)
    base_optimizer = with_extra_args_support(base_optimizer)

    def init_fn(params):
        dt = _scalar_dtype(params)
        z = jax.tree.map(
            lambda p: jnp.array(p, dtype=_tree.state_dtype(p, state_dtype), copy=True),
            params,
        )
        return ScheduleFreeState(
            b1=jnp.asarray(b1, dt),
            weight_sum=jnp.zeros([], dt),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], dt),
            base_optimizer_state=base_optimizer.init(params),
            z=z,
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, ScheduleFreeState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        lr = learning_rate
        if callable(lr):
            lr = jnp.asarray(lr(state.step_count), state.max_lr.dtype)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr**weight_lr_power
        weight_sum = state.weight_sum + weight
        ratio = jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf)
        c = jnp.where(jnp.isnan(weight) | jnp.isnan(weight_sum), jnp.nan, ratio)

        steps, base_state = base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra_args
        )
        # z is rounded to its dtype before x is formed from it, so the x
        # recomputed next step from the stored z is the x used now.
        _, z = map_leaves(
            lambda d, z: (d, z + d),
            steps,
            state.z,
            names=["state.z"],
            owner=owner,
            nout=2,
        )

        def leaf(g, y, z_old, z_new):
            del g
            x = (y - _maths.one_minus(b1) * z_old) / b1
            x = (1 - c) * x + c * z_new
            return (b1 * x + _maths.one_minus(b1) * z_new) - y

        updates = map_leaves(
            leaf,
            updates,
            params,
            state.z,
            z,
            names=["params", "state.z", "new z"],
            owner=owner,
        )
        return updates, ScheduleFreeState(
            b1=state.b1,
            weight_sum=weight_sum,
            step_count=_maths.safe_increment(state.step_count),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )

    return composed(GradientTransformation(init_fn, update_fn), [base_optimizer])
