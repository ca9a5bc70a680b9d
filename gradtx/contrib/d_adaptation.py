r"""D-Adaptation for AdamW: Adam whose base step size is estimated on the fly.

D-Adaptation keeps a lower bound :math:`d` on the distance from the start to a
solution and uses it as the learning rate; the bound only grows. The AdamW
form estimates the distance in the infinity norm, weighting the gradients by
Adam's denominator. The whole rule is one transformation (not a chain): the
estimated step :math:`d_t` enters the moments themselves, so no primitive of
the rule can be used on its own.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

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
from .._core.traits import elementwise

__all__ = ["DAdaptAdamWState", "dadapt_adamw"]


def scalar_dtype(params: Any) -> jnp.dtype:
    """The dtype of the scalar state: the params' lowest float, at least float32."""
    dtypes = [
        jnp.result_type(x)
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.floating)
    ]
    if not dtypes:
        return jnp.dtype(jnp.float32)
    lowest = min(dtypes, key=lambda d: jnp.finfo(d).bits)
    return jnp.promote_types(lowest, jnp.float32)


class DAdaptAdamWState(NamedTuple):
    """The state of :func:`dadapt_adamw` (Optax's field names and order).

    Attributes:
      exp_avg: first moment of the ``d``-scaled gradients.
      exp_avg_sq: second moment of the gradients.
      grad_sum: the ``sqrt(b2)``-weighted sum of the ``d``-scaled gradients.
      estim_lr: ``d``, the current distance (learning-rate) estimate, a scalar.
      numerator_weighted: the weighted numerator of the ``d`` estimate.
      count: the step count (int32, saturating).
    """

    exp_avg: Updates
    exp_avg_sq: Updates
    grad_sum: Updates
    estim_lr: chex.Array
    numerator_weighted: chex.Array
    count: chex.Array


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[chex.Numeric, chex.Numeric] = (0.9, 0.999),
    eps: chex.Numeric = 1e-8,
    estim_lr0: chex.Numeric = 1e-6,
    weight_decay: chex.Numeric = 0.0,
) -> GradientTransformation:
    r"""D-Adapted AdamW: AdamW with its base learning rate estimated as it runs.

    With :math:`\lambda_t` the learning rate (a factor, best a schedule whose
    peak is 1), :math:`d_t` the estimate (``estim_lr``, started at
    ``estim_lr0``), :math:`\beta = \sqrt{\beta_2}` and :math:`t = 1, 2, \dots`:

    .. math::
        \delta_t = d_{t-1} \lambda_t
            \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}, \qquad
        r_t = \Big\langle g_t, \frac{s_{t-1}}{\sqrt{v_{t-1}} + \epsilon}
            \Big\rangle,
        \\
        m_t = \beta_1 m_{t-1} + (1-\beta_1) \delta_t g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        s_t = \beta s_{t-1} + (1-\beta) \delta_t g_t,
        \\
        n_t = \beta n_{t-1} + (1-\beta) \delta_t r_t, \qquad
        d_t = \max\Big(d_{t-1}, \frac{n_t}{(1-\beta) \|s_t\|_1}\Big),
        \\
        \theta_t = \theta_{t-1} - \delta_t w\, \theta_{t-1}
            - \frac{m_t}{\sqrt{v_t} + \epsilon}

    with :math:`m_0 = v_0 = s_0 = 0`, :math:`n_0 = 0` and :math:`w` =
    ``weight_decay``. The new estimate :math:`d_t` is used from the next step.
    The update needs ``params``.

    Differences from Optax, outside its numbers for float32 params: the
    scalar state (``estim_lr``, ``numerator_weighted``) is float32 for
    bfloat16/float16 params (Optax stores them in the params' dtype, where
    ``d`` keeps 3 significant digits), and a step where
    :math:`\|s_t\|_1 = 0` (all gradients so far zero) keeps :math:`d`
    instead of making it NaN.

    Reference: Defazio & Mishchenko, 2023, "Learning-Rate-Free Learning by
    D-Adaptation" (https://arxiv.org/abs/2301.07733).

    Args:
      learning_rate: :math:`\lambda`, a factor >= 0 of the estimated step, or
        a schedule (e.g. a warmup then decay from 1.0).
      betas: :math:`(\beta_1, \beta_2)`, the moment decays, each in [0, 1).
      eps: :math:`\epsilon` >= 0, added to Adam's denominator.
      estim_lr0: :math:`d_0` > 0, an underestimate of the learning rate.
      weight_decay: :math:`w` >= 0, decoupled weight decay (scaled by
        :math:`\delta_t`).

    Returns:
      A :class:`~gradtx.GradientTransformation` with state
      :class:`DAdaptAdamWState`; its ``update`` needs ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import dadapt_adamw
      >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
      >>> opt = dadapt_adamw()
      >>> x = jnp.zeros(2)
      >>> state = opt.init(x)
      >>> for _ in range(300):
      ...     u, state = opt.update(jax.grad(f)(x), state, x)
      ...     x = gradtx.apply_updates(x, u)
      >>> bool(f(x) < 1e-2), bool(state.estim_lr > 1.0)  # d grew from 1e-6
      (True, True)
    """
    owner = "dadapt_adamw"
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: `betas` must be a pair (b1, b2), got {betas!r}.")
    b1, b2 = betas
    _validate.decay(owner, "betas[0]", b1)
    _validate.decay(owner, "betas[1]", b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.positive(owner, "estim_lr0", estim_lr0)
    _validate.non_negative(owner, "weight_decay", weight_decay)
    sb2 = b2**0.5

    def init_fn(params):
        dtype = scalar_dtype(params)
        return DAdaptAdamWState(
            exp_avg=state_zeros_like(params),
            exp_avg_sq=square_state_like(params),
            grad_sum=state_zeros_like(params),
            estim_lr=jnp.asarray(estim_lr0, dtype),
            numerator_weighted=jnp.zeros([], dtype),
            count=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, DAdaptAdamWState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        count = _maths.safe_increment(state.count)
        bc = _maths.debias_factor(b2, count) ** 0.5 / _maths.debias_factor(b1, count)
        dtype = state.numerator_weighted.dtype
        dlr = (state.estim_lr * lr * bc).astype(dtype)

        def leaf(g, m, v, s, p):
            dot = jnp.sum(g * (s / (jnp.sqrt(v) + eps)))  # with the old s, v
            m = b1 * m + _maths.one_minus(b1) * dlr * g
            v = b2 * v + _maths.one_minus(b2) * g * g
            s = sb2 * s + (1 - sb2) * dlr * g
            u = -weight_decay * dlr * p - m / (jnp.sqrt(v) + eps)
            # p is returned unchanged (map_leaves casts output k like input k);
            # the per-leaf scalars follow, uncast.
            return u, m, v, s, p, dot, jnp.sum(jnp.abs(s))

        updates, m, v, s, _, dots, l1s = map_leaves(
            leaf,
            updates,
            state.exp_avg,
            state.exp_avg_sq,
            state.grad_sum,
            params,
            names=["exp_avg", "exp_avg_sq", "grad_sum", "params"],
            owner=owner,
            nout=7,
            complex_ok="its distance estimate orders real numbers",
        )
        dot = sum(jax.tree.leaves(dots), jnp.zeros([], dtype))
        l1 = sum(jax.tree.leaves(l1s), jnp.zeros([], dtype))
        numerator = sb2 * state.numerator_weighted + (1 - sb2) * dlr * dot
        numerator = numerator.astype(dtype)
        denom = (1 - sb2) * l1
        d_hat = numerator / jnp.where(denom == 0, 1.0, denom)
        estim_lr = jnp.where(
            denom == 0, state.estim_lr, jnp.maximum(state.estim_lr, d_hat)
        ).astype(dtype)
        return updates, DAdaptAdamWState(m, v, s, estim_lr, numerator, count)

    return elementwise(GradientTransformation(init_fn, update_fn))
