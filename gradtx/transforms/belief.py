"""Sign-based and Adam-variant scalings: sign, Lion, AdaBelief, Yogi, RAdam.

As elsewhere, each rule is written for one array and lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves`; a factory validates its hyperparameters,
builds the state and computes the per-step scalars (bias corrections, RAdam's
rectification). The full update rules, with references, are in the aliases of
:mod:`gradtx.optimizers.belief`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state, init_empty_state
from .._core.lifting import (
    map_leaves,
    square_state_like,
    state_zeros_like,
    tree_full_like,
)
from .adam import (
    ScaleByAdamState,
    _bias_corrections,
    _check_adam_args,
    _first_moment_hat,
)

_NO_COMPLEX_SIGN = "the sign of a complex number is undefined"


def scale_by_sign() -> GradientTransformation:
    """Replaces every update by its sign: ``u = sign(g)`` (−1, 0 or 1).

    See :func:`gradtx.sign_sgd` and :func:`gradtx.signum`.

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.transforms.belief import scale_by_sign
      >>> tx = scale_by_sign()
      >>> u, _ = tx.update(jnp.array([-3.0, 0.0, 0.5]), tx.init(None))
      >>> u.tolist()
      [-1.0, 0.0, 1.0]
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return map_leaves(
            jnp.sign,
            updates,
            owner="scale_by_sign",
            complex_ok=_NO_COMPLEX_SIGN,
        ), state

    return GradientTransformation(init_empty_state, update_fn)


class ScaleByLionState(NamedTuple):
    """Step count (int32, saturating) and the momentum ``m``."""

    count: chex.Array
    mu: Updates


_LION_MODES = ("hard", "smooth", "refined")


def _lion_sign(x, mode, smooth_beta):
    if mode == "hard":
        return jnp.sign(x)
    if mode == "smooth":
        return jnp.tanh(smooth_beta * x)
    return jnp.where(jnp.abs(x) < 1.0, x, jnp.sign(x))  # refined


def scale_by_lion(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: float = 1.0,
) -> GradientTransformation:
    """Lion scaling: ``u = sign((1 − b1)·g + b1·m)``, then ``m ← (1 − b2)·g + b2·m``.

    The step interpolates the gradient and the *previous* momentum with ``b1``;
    the momentum itself is tracked with the slower ``b2``. See
    :func:`gradtx.lion` for the full rule and reference.

    Args:
      b1: interpolation weight of the momentum in the step, in [0, 1].
      b2: decay of the momentum, in [0, 1].
      mu_dtype: dtype of the momentum (default: the params').
      mode: ``"hard"`` takes the sign; ``"smooth"`` takes
        ``tanh(smooth_beta · x)``; ``"refined"`` keeps ``x`` where ``|x| < 1``
        and takes the sign elsewhere.
      smooth_beta: the slope > 0 of the ``"smooth"`` mode.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByLionState`.
    """
    owner = "scale_by_lion"
    _validate.decay(owner, "b1", b1, allow_one=True)
    _validate.decay(owner, "b2", b2, allow_one=True)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype)
    if mode not in _LION_MODES:
        raise ValueError(f"{owner}: `mode` must be one of {_LION_MODES}, got {mode!r}.")
    _validate.positive(owner, "smooth_beta", smooth_beta)

    def init_fn(params):
        return ScaleByLionState(
            count=jnp.zeros([], jnp.int32), mu=state_zeros_like(params, mu_dtype)
        )

    def leaf(g, m):
        step = _lion_sign(_maths.ema(g, m, b1), mode, smooth_beta)
        return step, _maths.ema(g, m, b2)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByLionState)
        updates, mu = map_leaves(
            leaf,
            updates,
            state.mu,
            names=["mu"],
            owner=owner,
            nout=2,
            complex_ok=_NO_COMPLEX_SIGN,
        )
        return updates, ScaleByLionState(_maths.safe_increment(state.count), mu)

    return GradientTransformation(init_fn, update_fn)


def _check_moment_args(owner, b1, b2, eps, eps_root, nesterov=False):
    _check_adam_args(owner, b1, b2, eps, eps_root)
    _validate.flag(owner, "nesterov", nesterov)


class ScaleByBeliefState(NamedTuple):
    """Step count, first moment and second moment of the prediction error."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_belief(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-16,
    eps_root: chex.Numeric = 1e-16,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief scaling: ``u = m̂ / (sqrt(ŝ) + ε)``.

    ``s`` averages ``(g − m)²`` (the "belief": how far the gradient is from its
    running mean) instead of Adam's ``g²``, plus ``eps_root`` each step. See
    :func:`gradtx.adabelief` for the full rule and reference.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment of the prediction error, in [0, 1).
      eps: ε >= 0 added outside the square root.
      eps_root: ε >= 0 added to ``s`` at every step (stored in the state).
      nesterov: use Nesterov's look-ahead first moment (as in NAdam).
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByBeliefState`.
    """
    owner = "scale_by_belief"
    _check_moment_args(owner, b1, b2, eps, eps_root, nesterov)

    mu_dtype = _validate.float_dtype("scale_by_belief", "mu_dtype", mu_dtype)
    nu_dtype = _validate.float_dtype("scale_by_belief", "nu_dtype", nu_dtype)

    def init_fn(params):
        return ScaleByBeliefState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByBeliefState)
        count = _maths.safe_increment(state.count)
        c1, c2, c1_next = _bias_corrections(b1, b2, count, nesterov)

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            nu = _maths.ema_sq(g - mu, nu, b2) + eps_root
            mu_hat = _first_moment_hat(g, mu, b1, c1, c1_next)
            return mu_hat / (jnp.sqrt(nu / c2) + eps), mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def scale_by_yogi(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-3,
    eps_root: chex.Numeric = 0.0,
    initial_accumulator_value: chex.Numeric = 1e-6,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Yogi scaling: ``v ← v − (1 − b2)·sign(v − g²)·g²``; ``u = m̂ / (sqrt(v̂) + ε)``.

    Adam with an additive second-moment update, so that ``v`` changes by at
    most ``(1 − b2)·g²`` per step. See :func:`gradtx.yogi`.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: rate of the second moment, in [0, 1).
      eps: ε >= 0 added outside the square root.
      eps_root: ε >= 0 added inside the square root.
      initial_accumulator_value: the starting value (>= 0) of both moments.
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`.
    """
    owner = "scale_by_yogi"
    _check_moment_args(owner, b1, b2, eps, eps_root)
    _validate.non_negative(
        owner, "initial_accumulator_value", initial_accumulator_value
    )

    mu_dtype = _validate.float_dtype("scale_by_yogi", "mu_dtype", mu_dtype)
    nu_dtype = _validate.float_dtype("scale_by_yogi", "nu_dtype", nu_dtype)

    initial_value = initial_accumulator_value

    def init_fn(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_full_like(
                state_zeros_like(params, mu_dtype), initial_accumulator_value
            ),
            nu=square_state_like(params, nu_dtype, fill=initial_value),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdamState)
        count = _maths.safe_increment(state.count)
        c1, c2, _ = _bias_corrections(b1, b2, count, False)

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            g2 = _maths.abs_sq(g)
            nu = nu - _maths.one_minus(b2) * jnp.sign(nu - g2) * g2
            return (mu / c1) / (jnp.sqrt(nu / c2 + eps_root) + eps), mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def _radam_rho(b2, count):
    """``(ρ_t, r_t)``: the length of the approximated SMA and its rectification.

    ``ρ_∞ = 2/(1 − b2) − 1`` is computed once (in Python precision for a Python
    ``b2``), ``ρ_t = ρ_∞ − 2t·b2^t/(1 − b2^t)`` and
    ``r_t = sqrt((ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t))``.
    """
    rho_inf = 2.0 / _maths.one_minus(b2) - 1.0
    b2t = b2**count
    rho = rho_inf - 2 * count * b2t / (1 - b2t)
    num = (rho - 4.0) * (rho - 2.0) * rho_inf
    r = jnp.sqrt(num / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
    return rho, r


def scale_by_radam(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    threshold: chex.Numeric = 5.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Rectified Adam scaling: ``u = r_t·m̂ / (sqrt(v̂ + ε_root) + ε)`` once
    ``ρ_t >= threshold``, plain momentum ``u = m̂`` before.

    ``ρ_t`` estimates how many gradients the second moment has averaged; ``r_t``
    rectifies the variance of the adaptive step while that number is small.
    See :func:`gradtx.radam` for the full rule and reference.

    Args:
      b1, b2: moment decays in [0, 1).
      eps, eps_root: ε >= 0 outside / inside the square root.
      threshold: the value of ``ρ_t`` from which the adaptive step is used,
        >= 4 (below 4, ``r_t`` would be the root of a negative number: NaN).
      nesterov: use Nesterov's look-ahead first moment (as in NAdam).
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`.
    """
    owner = "scale_by_radam"
    _check_moment_args(owner, b1, b2, eps, eps_root, nesterov)
    _validate.number(owner, "threshold", threshold, low=4.0)

    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype)
    nu_dtype = _validate.float_dtype(owner, "nu_dtype", nu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdamState)
        count = _maths.safe_increment(state.count)
        c1, c2, c1_next = _bias_corrections(b1, b2, count, nesterov)
        rho, r = _radam_rho(b2, count)
        adaptive = rho >= threshold

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            nu = _maths.ema_sq(g, nu, b2)
            mu_hat = _first_moment_hat(g, mu, b1, c1, c1_next)
            step = r * mu_hat / (jnp.sqrt(nu / c2 + eps_root) + eps)
            return jnp.where(adaptive, step, mu_hat), mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
