r"""MoMo: momentum methods whose step size is a Polyak step on a model of the loss.

MoMo keeps exponential averages of the gradients, of the losses and of
:math:`\langle g, \theta\rangle`; together they define a lower model of the
loss, and the step is the smaller of the learning rate and the step that
takes the model down to a known lower bound of the loss (0 for most tasks).
The loss value is given to ``update`` as the keyword argument ``value``.

Each optimizer is one transformation (as in Optax, whose state it keeps
field for field): the step size depends on the averaged gradients and the
params together, so the rule does not split into primitives.
"""

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
    ScalarOrSchedule,
    Updates,
    check_state,
)
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .d_adaptation import scalar_dtype

__all__ = ["MomoAdamState", "MomoState", "momo", "momo_adam"]

# A squared norm at or below float64's machine epsilon means "no direction":
# the step is 0 (Optax's threshold).
_TINY = float(np.finfo(np.float64).eps)
_NO_COMPLEX = "its step compares real inner products with the loss"


def _check_value(owner: str, value) -> None:
    if value is None:
        raise TypeError(
            f"{owner}: `update` needs the loss: call "
            "`update(updates, state, params, value=loss)` (jax.value_and_grad "
            "gives both)."
        )
    if jnp.ndim(value) != 0:
        raise ValueError(
            f"{owner}: `value` must be a scalar loss, got shape {jnp.shape(value)}."
        )


def _sum(tree, dtype):
    return sum(jax.tree.leaves(tree), jnp.zeros([], dtype))


def _check_common(owner, learning_rate, lower_bound, weight_decay, adapt_lower_bound):
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    _validate.number(owner, "lower_bound", lower_bound)
    _validate.non_negative(owner, "weight_decay", weight_decay)
    _validate.flag(owner, "adapt_lower_bound", adapt_lower_bound)


def _polyak_step(num, sq_norm, cap):
    """``min(cap, max(num, 0) / sq_norm)``, and 0 where ``sq_norm`` is ~0."""
    tiny = sq_norm <= _TINY
    t1 = jnp.maximum(num, 0.0) / jnp.where(tiny, 1.0, sq_norm)
    return jnp.minimum(cap, jnp.where(tiny, 0.0, t1))


def _step_size(
    barf,
    gamma,
    iprod,
    sq_norm,
    state_lb,
    alpha,
    weight_decay,
    lower_bound,
    adapt_lower_bound,
    bc1=1.0,
):
    """MoMo's step ``tau``, the decay factor and the next lower bound.

    ``bc1`` is MoMo-Adam's bias correction of the averages (1 for MoMo, where
    every product with it is exact, so both share these lines).
    """
    k = 1 + alpha * weight_decay
    lb = state_lb
    if adapt_lower_bound:
        cap = k * (barf - gamma) + iprod
        lower = jnp.maximum(cap / (2 * bc1 * k), lower_bound)
        lb = jnp.where(cap < k * bc1 * lb, lower, lb)
    num = k * (barf - bc1 * lb - gamma) + iprod
    tau = _polyak_step(num, sq_norm, alpha / bc1)
    new_lb = state_lb
    if adapt_lower_bound:
        drop = (barf + iprod - gamma - 0.5 * tau * sq_norm) / bc1
        new_lb = jnp.maximum(drop, lower_bound)
    return tau, alpha * weight_decay / k, new_lb


class MomoState(NamedTuple):
    r"""The state of :func:`momo` (Optax's field names and order).

    Attributes:
      exp_avg: :math:`d_t`, the average of the gradients.
      barf: :math:`\bar f_t`, the average of the losses (a scalar).
      gamma: :math:`\gamma_t`, the average of :math:`\langle g, \theta\rangle`.
      lb: the lower bound of the loss in use.
      count: the step count (int32, saturating).
    """

    exp_avg: Updates
    barf: chex.Array
    gamma: chex.Array
    lb: chex.Array
    count: chex.Array


def momo(
    learning_rate: ScalarOrSchedule = 1.0,
    beta: chex.Numeric = 0.9,
    lower_bound: chex.Numeric = 0.0,
    weight_decay: chex.Numeric = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    r"""MoMo: SGD with momentum and a Polyak-type adaptive step size.

    With :math:`f_t` the loss (``value=``), :math:`\alpha_t` the learning
    rate, :math:`\lambda` the weight decay, :math:`f_*` the lower bound and
    :math:`\beta_1 = 0` at the first step (:math:`\beta` after):

    .. math::
        d_t = \beta d_{t-1} + (1-\beta) g_t, \quad
        \bar f_t = \beta \bar f_{t-1} + (1-\beta) f_t, \quad
        \gamma_t = \beta \gamma_{t-1} + (1-\beta) \langle g_t, \theta_{t-1}
            \rangle,
        \\
        \tau_t = \min\Big(\alpha_t, \frac{\big((1+\alpha_t\lambda)
            (\bar f_t - f_* - \gamma_t) + \langle d_t, \theta_{t-1}\rangle
            \big)_+}{\|d_t\|^2}\Big),
        \\
        \theta_t = \frac{\theta_{t-1}}{1 + \alpha_t \lambda} - \tau_t d_t

    and :math:`\tau_t = 0` where :math:`\|d_t\|^2` is ~0. With
    ``adapt_lower_bound`` the bound is estimated on the fly (the paper's
    MoMo*): it is lowered to :math:`\max(h_t / (2(1+\alpha_t\lambda)),
    f_*)` when :math:`h_t = (1+\alpha_t\lambda)(\bar f_t - \gamma_t) +
    \langle d_t, \theta_{t-1}\rangle` falls below
    :math:`(1+\alpha_t\lambda)` times it, and set after the step to
    :math:`\max(\bar f_t + \langle d_t, \theta_{t-1}\rangle - \gamma_t -
    \tfrac12\tau_t\|d_t\|^2, f_*)`.

    The paper's proximal weight decay divides the whole step,
    :math:`\theta_t = (\theta_{t-1} - \tau_t d_t)/(1+\alpha_t\lambda)`;
    Optax divides only :math:`\theta_{t-1}`, and gradtx keeps Optax's numbers
    (the two agree for :math:`\lambda = 0`).

    ``update`` needs ``params`` and the loss as ``value=`` (a missing or
    non-scalar ``value`` raises a clear error; Optax fails inside its maths or
    broadcasts). The scalar state is float32 for bfloat16/float16 params.

    Reference: Schaipp, Ohana, Eickenberg, Defazio & Gower, 2023, "MoMo:
    Momentum Models for Adaptive Learning Rates"
    (https://arxiv.org/abs/2305.07583).

    Args:
      learning_rate: :math:`\alpha`, the largest step (>= 0), or a schedule.
      beta: :math:`\beta`, the momentum (averaging) coefficient, in [0, 1).
      lower_bound: :math:`f_*`, a lower bound of the loss (0 for most tasks).
      weight_decay: :math:`\lambda` >= 0.
      adapt_lower_bound: estimate the lower bound on the fly.

    Returns:
      A :class:`~gradtx.GradientTransformation` with state :class:`MomoState`;
      its ``update`` needs ``params`` and ``value=``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import momo
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = momo()
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> state = opt.init(x)
      >>> for _ in range(100):
      ...     loss, g = jax.value_and_grad(f)(x)
      ...     u, state = opt.update(g, state, x, value=loss)
      ...     x = gradtx.apply_updates(x, u)
      >>> bool(f(x) < 1e-2)  # from 14
      True
    """
    owner = "momo"
    _check_common(owner, learning_rate, lower_bound, weight_decay, adapt_lower_bound)
    _validate.decay(owner, "beta", beta)

    def init_fn(params):
        dtype = scalar_dtype(params)
        return MomoState(
            exp_avg=state_zeros_like(params),
            barf=jnp.zeros([], dtype),
            gamma=jnp.zeros([], dtype),
            lb=jnp.asarray(lower_bound, dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del extra_args
        check_state(owner, state, MomoState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        _check_value(owner, value)
        dtype = state.barf.dtype
        first = state.count == 0
        b = jnp.where(first, 0.0, beta)
        c = jnp.where(first, 1.0, _maths.one_minus(beta))

        def averages(g, d, p):
            d = b * d + c * g
            return g, d, p, jnp.sum(g * p), jnp.sum(d * d), jnp.sum(d * p)

        _, exp_avg, _, gp, dd, dp = map_leaves(
            averages,
            updates,
            state.exp_avg,
            params,
            names=["exp_avg", "params"],
            owner=owner,
            nout=6,
            complex_ok=_NO_COMPLEX,
        )
        sq_norm, iprod = _sum(dd, dtype), _sum(dp, dtype)
        barf = b * state.barf + c * jnp.asarray(value, dtype)
        gamma = b * state.gamma + c * _sum(gp, dtype)
        alpha = learning_rate(state.count) if callable(learning_rate) else learning_rate
        tau, shrink, new_lb = _step_size(
            barf, gamma, iprod, sq_norm, state.lb, alpha, weight_decay,
            lower_bound, adapt_lower_bound,
        )  # fmt: skip
        updates = map_leaves(
            lambda g, d, p: -shrink * p - tau * d,
            updates,
            exp_avg,
            params,
            names=["exp_avg", "params"],
            owner=owner,
        )
        new_state = MomoState(
            exp_avg=exp_avg,
            barf=barf.astype(dtype),
            gamma=gamma.astype(dtype),
            lb=jnp.asarray(new_lb).astype(dtype),
            count=_maths.safe_increment(state.count),
        )
        return updates, new_state

    return GradientTransformation(init_fn, update_fn)


class MomoAdamState(NamedTuple):
    r"""The state of :func:`momo_adam` (Optax's field names and order).

    Attributes:
      exp_avg: :math:`d_t`, the average of the gradients.
      exp_avg_sq: :math:`v_t`, the average of the squared gradients.
      barf: :math:`\bar f_t`, the average of the losses (a scalar).
      gamma: :math:`\gamma_t`, the average of :math:`\langle g, \theta\rangle`.
      lb: the lower bound of the loss in use.
      count: the step count (int32, saturating).
    """

    exp_avg: Updates
    exp_avg_sq: Updates
    barf: chex.Array
    gamma: chex.Array
    lb: chex.Array
    count: chex.Array


def momo_adam(
    learning_rate: ScalarOrSchedule = 1e-2,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    lower_bound: chex.Numeric = 0.0,
    weight_decay: chex.Numeric = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    r"""MoMo-Adam: Adam(W) with a Polyak-type adaptive step size.

    The averages of :func:`momo` with :math:`\beta = \beta_1` from the first
    step (no special first step), Adam's second moment :math:`v_t` and the
    preconditioner :math:`D_t = \epsilon + \sqrt{v_t / (1-\beta_2^t)}`; with
    :math:`\rho_t = 1-\beta_1^t`:

    .. math::
        \tau_t = \min\Big(\frac{\alpha_t}{\rho_t}, \frac{\big((1+\alpha_t
            \lambda)(\bar f_t - \rho_t f_* - \gamma_t) + \langle d_t,
            \theta_{t-1}\rangle\big)_+}{\langle d_t, d_t / D_t\rangle}\Big),
        \qquad
        \theta_t = \theta_{t-1}
            - \frac{\alpha_t\lambda}{1+\alpha_t\lambda}\theta_{t-1}
            - \tau_t \frac{d_t}{D_t}

    and :math:`\tau_t = 0` where :math:`\langle d_t, d_t/D_t\rangle` is ~0.
    With ``adapt_lower_bound`` the bound is lowered to :math:`\max(h_t /
    (2\rho_t(1+\alpha_t\lambda)), f_*)` when :math:`h_t < (1+\alpha_t\lambda)
    \rho_t f_*^{(t-1)}` (:math:`h_t` as in :func:`momo`), and set after the
    step to :math:`\max((\bar f_t + \langle d_t, \theta_{t-1}\rangle -
    \gamma_t - \tfrac12\tau_t\langle d_t, d_t/D_t\rangle)/\rho_t, f_*)`.

    As in :func:`momo`, the weight decay divides :math:`\theta_{t-1}` only
    (Optax's form; the paper divides the whole step by :math:`1+\alpha_t
    \lambda`). ``update`` needs ``params`` and the loss as ``value=``. The
    scalar state is float32 for bfloat16/float16 params.

    Reference: Schaipp, Ohana, Eickenberg, Defazio & Gower, 2023, "MoMo:
    Momentum Models for Adaptive Learning Rates"
    (https://arxiv.org/abs/2305.07583).

    Args:
      learning_rate: :math:`\alpha`, the largest step (>= 0), or a schedule.
      b1: :math:`\beta_1`, decay of the averages, in [0, 1).
      b2: :math:`\beta_2`, decay of the second moment, in [0, 1).
      eps: :math:`\epsilon` >= 0 in the preconditioner.
      lower_bound: :math:`f_*`, a lower bound of the loss (0 for most tasks).
      weight_decay: :math:`\lambda` >= 0, decoupled as in AdamW.
      adapt_lower_bound: estimate the lower bound on the fly.

    Returns:
      A :class:`~gradtx.GradientTransformation` with state
      :class:`MomoAdamState`; its ``update`` needs ``params`` and ``value=``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import momo_adam
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = momo_adam(learning_rate=1.0)
      >>> x = jnp.array([1.0, 2.0, 3.0])
      >>> state = opt.init(x)
      >>> for _ in range(100):
      ...     loss, g = jax.value_and_grad(f)(x)
      ...     u, state = opt.update(g, state, x, value=loss)
      ...     x = gradtx.apply_updates(x, u)
      >>> bool(f(x) < 1e-2)  # from 14
      True
    """
    owner = "momo_adam"
    _check_common(owner, learning_rate, lower_bound, weight_decay, adapt_lower_bound)
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)

    def init_fn(params):
        dtype = scalar_dtype(params)
        return MomoAdamState(
            exp_avg=state_zeros_like(params),
            exp_avg_sq=square_state_like(params),
            barf=jnp.zeros([], dtype),
            gamma=jnp.zeros([], dtype),
            lb=jnp.asarray(lower_bound, dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del extra_args
        check_state(owner, state, MomoAdamState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        _check_value(owner, value)
        dtype = state.barf.dtype
        count = _maths.safe_increment(state.count)
        bc1 = _maths.debias_factor(b1, count).astype(dtype)
        bc2 = _maths.debias_factor(b2, count).astype(dtype)

        def averages(g, d, v, p):
            d = b1 * d + _maths.one_minus(b1) * g
            v = b2 * v + _maths.one_minus(b2) * g * g
            precond = eps + jnp.sqrt(v / bc2)
            sums = jnp.sum(g * p), jnp.sum(d * (d / precond)), jnp.sum(d * p)
            return g, d, v, p, *sums

        _, exp_avg, exp_avg_sq, _, gp, dd, dp = map_leaves(
            averages,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            params,
            names=["exp_avg", "exp_avg_sq", "params"],
            owner=owner,
            nout=7,
            complex_ok=_NO_COMPLEX,
        )
        sq_norm, iprod = _sum(dd, dtype), _sum(dp, dtype)
        barf = b1 * state.barf + _maths.one_minus(b1) * jnp.asarray(value, dtype)
        gamma = b1 * state.gamma + _maths.one_minus(b1) * _sum(gp, dtype)
        alpha = learning_rate(state.count) if callable(learning_rate) else learning_rate
        tau, shrink, new_lb = _step_size(
            barf, gamma, iprod, sq_norm, state.lb, alpha, weight_decay,
            lower_bound, adapt_lower_bound, bc1,
        )  # fmt: skip

        def step(g, d, v, p):
            return -shrink * p - tau * d / (eps + jnp.sqrt(v / bc2))

        updates = map_leaves(
            step,
            updates,
            exp_avg,
            exp_avg_sq,
            params,
            names=["exp_avg", "exp_avg_sq", "params"],
            owner=owner,
        )
        new_state = MomoAdamState(
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            barf=barf.astype(dtype),
            gamma=gamma.astype(dtype),
            lb=jnp.asarray(new_lb).astype(dtype),
            count=count,
        )
        return updates, new_state

    return GradientTransformation(init_fn, update_fn)
