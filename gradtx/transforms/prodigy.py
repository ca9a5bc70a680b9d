r"""Prodigy: AdamW whose learning rate is estimated from the distance travelled.

Unlike the other optimizers, Prodigy couples every leaf through two scalars
(a weighted inner product and an L1 norm over the whole tree), so its update is
two passes: per-leaf moments and partial sums, then the global estimate, then
the per-leaf step.
"""

import functools
import operator
from typing import NamedTuple

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
from .._core.lifting import _dtype, map_leaves
from .._core.placement import auto_axes, full_like
from .._core.traits import elementwise


class ProdigyState(NamedTuple):
    """Adam's moments of ``d·g``, the weighted gradient sum ``s``, the starting
    params ``x₀``, the estimate ``d``, the weighted numerator and the step count.
    """

    exp_avg: Updates
    exp_avg_sq: Updates
    grad_sum: Updates
    params0: Updates
    estim_lr: chex.Array
    numerator_weighted: chex.Array
    count: chex.Array


def _lowest_dtype(params):
    dtypes = [jnp.result_type(x) for x in jax.tree.leaves(params)]
    if not dtypes:
        return jnp.dtype(jnp.float32)
    # A real dtype (complex64 -> float32): the estimates are real numbers.
    return jnp.finfo(min(dtypes, key=lambda d: jnp.finfo(d).bits)).dtype


def _total(parts):
    return functools.reduce(operator.add, parts, jnp.zeros((), jnp.float32))


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[chex.Numeric, chex.Numeric] = (0.9, 0.999),
    beta3: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-8,
    estim_lr0: chex.Numeric = 1e-6,
    estim_lr_coef: chex.Numeric = 1.0,
    weight_decay: chex.Numeric = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    r"""Prodigy: learning-rate-free AdamW (D-Adaptation with faster growth).

    With :math:`d_t` the current estimate of the distance to the solution,
    :math:`\eta_t` the schedule, :math:`\lambda_t = d_t \eta_t
    \sqrt{1-\beta_2^t} / (1-\beta_1^t)` and :math:`x_0` the starting params:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) d_t g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2 g_t^2, \\
        r_t = \beta_3 r_{t-1} + \frac{d_t}{d_0} \lambda_t
              \langle g_t, x_0 - x_t \rangle, \quad
        s_t = \beta_3 s_{t-1} + \frac{d_t}{d_0} \lambda_t g_t, \\
        d_{t+1} = \max\left(d_t, \; c \, \frac{r_t}{\|s_t\|_1}\right), \quad
        x_{t+1} = x_t - \lambda_t \left(\frac{m_t}{\sqrt{v_t} + d_{t+1}\epsilon}
                  + w \, x_t\right)

    with :math:`m_0 = v_0 = s_0 = 0`, :math:`r_0 = 0`, :math:`d_0` =
    ``estim_lr0``, :math:`c` = ``estim_lr_coef``, :math:`w` = ``weight_decay``
    and :math:`\beta_3 = \sqrt{\beta_2}` by default. With
    ``safeguard_warmup`` the sum :math:`s_t` uses :math:`d_t` in place of
    :math:`\lambda_t` (no schedule), which keeps a warm-up from shrinking the
    denominator. The optimizer is a single transformation (as in Optax), not a
    chain: :math:`d_t` couples every leaf.

    Differences from Optax (same numbers otherwise): while :math:`s_t = 0`
    (every gradient so far zero) the estimate is kept instead of becoming
    ``0/0 = NaN`` and poisoning every later step; the scalars are accumulated
    in float32 at least; invalid hyperparameters raise.

    Reference: Mishchenko & Defazio, 2024, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner" (Algorithm 4, Adam version).

    Args:
      learning_rate: :math:`\eta`, a schedule multiplier (>= 0, default 1.0;
        typically a warm-up and decay from 1 to 0).
      betas: :math:`(\beta_1, \beta_2)`, Adam's decays, each in [0, 1).
      beta3: :math:`\beta_3` in [0, 1], the decay of the estimate's sums, or
        ``None`` for :math:`\sqrt{\beta_2}`.
      eps: :math:`\epsilon` >= 0, scaled by :math:`d_{t+1}`.
      estim_lr0: :math:`d_0 > 0`, the initial under-estimate.
      estim_lr_coef: :math:`c > 0`, multiplies every estimate.
      weight_decay: :math:`w >= 0`, AdamW-style decay.
      safeguard_warmup: leave the schedule out of :math:`s_t`.

    Returns:
      A :class:`GradientTransformation` with state :class:`ProdigyState`; its
      ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.transforms.prodigy import prodigy
      >>> params = jnp.array([1.0, -2.0])
      >>> opt = prodigy()
      >>> state = opt.init(params)
      >>> u, state = opt.update(jnp.array([0.5, -0.5]), state, params)
      >>> [f"{float(x):.2e}" for x in u]  # the first step is d_0-sized
      ['-1.00e-06', '1.00e-06']
    """
    owner = "prodigy"
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: `betas` must be a pair (b1, b2), got {betas!r}.")
    beta1, beta2 = betas
    _validate.decay(owner, "betas[0]", beta1)
    _validate.decay(owner, "betas[1]", beta2)
    if beta3 is None:
        beta3 = beta2**0.5
    _validate.decay(owner, "beta3", beta3, allow_one=True)
    _validate.non_negative(owner, "eps", eps)
    _validate.positive(owner, "estim_lr0", estim_lr0)
    _validate.positive(owner, "estim_lr_coef", estim_lr_coef)
    _validate.non_negative(owner, "weight_decay", weight_decay)
    _validate.flag(owner, "safeguard_warmup", safeguard_warmup)

    def init_fn(params):
        # At least float32 (float16 params: d0²·g² ≈ 1e-12·g² underflows to 0).
        dtype = jnp.promote_types(_lowest_dtype(params), jnp.float32)
        zeros = jax.tree.map(
            lambda p: full_like(p, 0, jnp.promote_types(_dtype(p), jnp.float32)),
            params,
        )
        return ProdigyState(
            exp_avg=zeros,
            exp_avg_sq=zeros,
            grad_sum=zeros,
            params0=params,
            estim_lr=jnp.asarray(estim_lr0, dtype),
            numerator_weighted=jnp.zeros((), dtype),
            count=jnp.zeros((), jnp.int32),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, ProdigyState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        count = _maths.safe_increment(state.count)
        sched = learning_rate(state.count) if callable(learning_rate) else learning_rate
        d = state.estim_lr.astype(jnp.promote_types(state.estim_lr.dtype, "float32"))
        bc = (1 - beta2**count) ** 0.5 / (1 - beta1**count)
        dlr = d * sched * bc
        weight = d if safeguard_warmup else dlr

        def moments(g, ea, eas, s, p0, p):
            dg = d * g
            ea = beta1 * ea + _maths.one_minus(beta1) * dg
            # (1 − β₂)·d g·conj(d g), associated as Optax's (1 − β₂)·d g·d g.
            eas = beta2 * eas + (_maths.one_minus(beta2) * dg * jnp.conj(dg)).real
            s = beta3 * s + weight * dg / estim_lr0
            return (
                g,
                ea,
                eas,
                s,
                p0,
                p,
                jnp.real(
                    auto_axes(jnp.vdot, g, p0 - p)
                ),  # Explicit axes: a dot product
                jnp.sum(jnp.abs(s)),
            )

        trees = (state.exp_avg, state.exp_avg_sq, state.grad_sum, state.params0)
        _, ea, eas, s, _, _, dots, l1s = map_leaves(
            moments,
            updates,
            *trees,
            params,
            names=["exp_avg", "exp_avg_sq", "grad_sum", "params0", "params"],
            owner=owner,
            nout=8,
        )
        numerator = beta3 * state.numerator_weighted
        numerator = numerator + (d / estim_lr0) * dlr * _total(jax.tree.leaves(dots))
        denominator = _total(jax.tree.leaves(l1s))
        estimate = (
            estim_lr_coef * numerator / jnp.where(denominator > 0, denominator, 1)
        )
        estimate = jnp.where(denominator > 0, estimate, d)
        new_d = jnp.maximum(d, estimate)

        def step(g, ea, eas, p):
            return -weight_decay * dlr * p - dlr * ea / (jnp.sqrt(eas) + new_d * eps)

        updates = map_leaves(
            step,
            updates,
            ea,
            eas,
            params,
            names=["exp_avg", "exp_avg_sq", "params"],
            owner=owner,
        )
        dtype = state.estim_lr.dtype
        return updates, ProdigyState(
            ea,
            eas,
            s,
            state.params0,
            new_d.astype(dtype),
            numerator.astype(state.numerator_weighted.dtype),
            count,
        )

    return elementwise(GradientTransformation(init_fn, update_fn))
