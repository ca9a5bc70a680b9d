r"""Prodigy's scaling: AdamW whose step size is estimated from the distance travelled.

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
from .._core.lifting import dtype_of, map_leaves
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


def scale_by_prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[chex.Numeric, chex.Numeric] = (0.9, 0.999),
    beta3: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-8,
    estim_lr0: chex.Numeric = 1e-6,
    estim_lr_coef: chex.Numeric = 1.0,
    weight_decay: chex.Numeric = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    r"""Prodigy's scaling: the whole step of :func:`gradtx.prodigy`.

    Prodigy estimates its step size :math:`d_t` from a weighted inner product
    and an L1 norm over the whole tree, and the schedule :math:`\eta_t` and the
    weight decay enter that estimate, so the step cannot be split into a
    direction followed by ``scale_by_learning_rate``: this primitive returns
    the full (descent) update, and :func:`gradtx.prodigy` is this primitive
    alone, validated in the alias's words. The update rule, the differences
    from Optax and the reference are in :func:`gradtx.prodigy`.

    Args:
      learning_rate, betas, beta3, eps: as for :func:`gradtx.prodigy`.
      estim_lr0, estim_lr_coef, weight_decay, safeguard_warmup: as for
        :func:`gradtx.prodigy`.

    Returns:
      A :class:`GradientTransformation` with state :class:`ProdigyState`; its
      ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.transforms import scale_by_prodigy
      >>> tx = scale_by_prodigy()
      >>> u, _ = tx.update(jnp.array([0.5]), tx.init(jnp.ones(1)), jnp.ones(1))
      >>> f"{float(u[0]):.2e}"
      '-1.00e-06'
    """
    owner = "scale_by_prodigy"
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

        def zeros():  # a new buffer each: a jitted step may donate the state
            return jax.tree.map(
                lambda p: full_like(p, 0, jnp.promote_types(dtype_of(p), jnp.float32)),
                params,
            )

        return ProdigyState(
            exp_avg=zeros(),
            exp_avg_sq=zeros(),
            grad_sum=zeros(),
            params0=jax.tree.map(jnp.copy, params),
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
