"""The Adam family of scalings: Adam (and NAdam), AMSGrad, AdaMax."""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import described, elementwise


class ScaleByAdamState(NamedTuple):
    """Step count (int32, saturating), first and second moments."""

    count: chex.Array
    mu: Updates
    nu: Updates


def check_adam_args(owner, b1, b2, eps, eps_root=0.0, mu_dtype=None):
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)
    return _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)


def first_moment_hat(g, mu, b1, c1, c1_next):
    """``m̂``: bias-corrected, or Nesterov's look-ahead when ``c1_next`` is set."""
    if c1_next is None:
        return mu / c1
    return b1 * (mu / c1_next) + _maths.one_minus(b1) * (g / c1)


def bias_corrections(b1, b2, count, nesterov):
    """``(1 − b1^t, 1 − b2^t, 1 − b1^(t+1) or None)`` for the step count ``t``."""
    c1_next = None
    if nesterov:
        c1_next = _maths.debias_factor(b1, _maths.safe_increment(count))
    c1 = _maths.debias_factor(b1, count)
    return c1, _maths.debias_factor(b2, count), c1_next


class AdamScalars(NamedTuple):
    """Adam's per-step scalars: rates, their complements, bias corrections, εs.

    What :func:`adam_leaf` needs besides the arrays, computed once per step by
    :func:`adam_scalars`. The fused engine hands the same values to its native
    kernel, so both paths share this one definition of Adam's coefficients.
    """

    b1: chex.Numeric
    omb1: chex.Numeric  # 1 − b1, through one_minus
    b2: chex.Numeric
    omb2: chex.Numeric  # 1 − b2, through one_minus
    c1: chex.Numeric  # 1 − b1^t
    c2: chex.Numeric  # 1 − b2^t
    c1n: chex.Numeric | None  # 1 − b1^(t+1) with Nesterov, else None
    eps: chex.Numeric
    eps_root: chex.Numeric


def adam_scalars(b1, b2, eps, eps_root, count, nesterov) -> AdamScalars:
    """:class:`AdamScalars` for step ``count`` (the incremented step count)."""
    c1, c2, c1n = bias_corrections(b1, b2, count, nesterov)
    omb1, omb2 = _maths.one_minus(b1), _maths.one_minus(b2)
    return AdamScalars(b1, omb1, b2, omb2, c1, c2, c1n, eps, eps_root)


def adam_leaf(g, mu, nu, s: AdamScalars):
    """One Adam step of one leaf: ``(u, m', v')``, the per-element maths.

    ``m' = (1 − b1)·g + b1·m``, ``v' = (1 − b2)·|g|² + b2·v``,
    ``m̂ = m' / c1`` (Nesterov: ``b1·(m' / c1n) + (1 − b1)·(g / c1)``),
    ``u = m̂ / (sqrt(v' / c2 + ε_root) + ε)``. The native kernel
    (``gradtx/engines/native_adam.cc``) computes the same expression.
    """
    mu = s.omb1 * g + s.b1 * mu
    nu = s.omb2 * _maths.abs_sq(g) + s.b2 * nu
    if s.c1n is None:
        mu_hat = mu / s.c1
    else:
        mu_hat = s.b1 * (mu / s.c1n) + s.omb1 * (g / s.c1)
    return mu_hat / (jnp.sqrt(nu / s.c2 + s.eps_root) + s.eps), mu, nu


def scale_by_adam(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam scaling: ``u = m̂ / (sqrt(v̂ + ε_root) + ε)``.

    ``m`` and ``v`` are exponential moving averages of ``g`` and ``g²`` with
    rates ``b1`` and ``b2``; ``m̂``, ``v̂`` their bias-corrected values. With
    ``nesterov`` the first moment looks one step ahead (NAdam). See
    :func:`gradtx.adam` for the full rule and references.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: ε added outside the square root (>= 0).
      eps_root: ε added inside the square root (>= 0).
      mu_dtype: dtype of the first moment (default: the params').
      nesterov: use Nesterov momentum (Dozat, 2016).
      nu_dtype: dtype of the second moment (default: the params'). Either
        moment may be stored in bfloat16 to save memory; the arithmetic is
        done in float32 and only the stored value is rounded.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`.
    """
    mu_dtype = check_adam_args("scale_by_adam", b1, b2, eps, eps_root, mu_dtype)
    nu_dtype = _validate.float_dtype("scale_by_adam", "nu_dtype", nu_dtype)
    _validate.flag("scale_by_adam", "nesterov", nesterov)

    def init_fn(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("scale_by_adam", state, ScaleByAdamState)
        count = _maths.safe_increment(state.count)
        scalars = adam_scalars(b1, b2, eps, eps_root, count, nesterov)
        updates, mu, nu = map_leaves(
            lambda g, m, v: adam_leaf(g, m, v, scalars),
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner="scale_by_adam",
            nout=3,
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    tx = GradientTransformation(init_fn, update_fn)
    args = dict(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype)
    args["nu_dtype"] = nu_dtype
    return elementwise(described(tx, "adam", nesterov=nesterov, **args))


class ScaleByAmsgradState(NamedTuple):
    """Step count, moments and the running maximum of the second moment."""

    count: chex.Array
    mu: Updates
    nu: Updates
    nu_max: Updates


def scale_by_amsgrad(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AMSGrad scaling: Adam with ``v̂_max ← max(v̂_max, v̂)`` in the denominator.

    ``u = m̂ / (sqrt(v̂_max + ε_root) + ε)``. See :func:`gradtx.amsgrad`.

    Args:
      b1, b2, eps, eps_root, mu_dtype: as in :func:`scale_by_adam`.
      bias_correction_mu: unbias the first moment.
      bias_correction_nu: unbias the second moment before taking the maximum.
      nu_dtype: dtype of the second moment and its maximum (default: the
        params').

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAmsgradState`.
    """
    owner = "scale_by_amsgrad"
    mu_dtype = check_adam_args(owner, b1, b2, eps, eps_root, mu_dtype)
    nu_dtype = _validate.float_dtype(owner, "nu_dtype", nu_dtype)
    _validate.flag(owner, "bias_correction_mu", bias_correction_mu)
    _validate.flag(owner, "bias_correction_nu", bias_correction_nu)

    def init_fn(params):
        return ScaleByAmsgradState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params, nu_dtype),
            nu_max=square_state_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAmsgradState)
        count = _maths.safe_increment(state.count)
        c1 = _maths.debias_factor(b1, count) if bias_correction_mu else 1
        c2 = _maths.debias_factor(b2, count) if bias_correction_nu else 1

        def leaf(g, mu, nu, nu_max):
            mu = _maths.ema(g, mu, b1)
            nu = _maths.ema_sq(g, nu, b2)
            nu_max = jnp.maximum(nu_max, nu / c2)
            return mu / c1 / (jnp.sqrt(nu_max + eps_root) + eps), mu, nu, nu_max

        updates, mu, nu, nu_max = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            state.nu_max,
            names=["mu", "nu", "nu_max"],
            owner=owner,
            nout=4,
        )
        return updates, ScaleByAmsgradState(count, mu, nu, nu_max)

    return elementwise(GradientTransformation(init_fn, update_fn))


def scale_by_adamax(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdaMax scaling: ``u = m̂ / ν`` with ``ν ← max(b2·ν, |g| + ε)``.

    The infinity-norm variant of Adam (Kingma & Ba, 2015, §7.1). See
    :func:`gradtx.adamax`.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the infinity norm, in [0, 1).
      eps: ε >= 0 added to ``|g|`` (keeps ν > 0).
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the infinity norm ν (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`
      (``nu`` holds the infinity norm).
    """
    check_adam_args("scale_by_adamax", b1, b2, eps)

    mu_dtype = _validate.float_dtype(
        "scale_by_adamax", "mu_dtype", mu_dtype, complex_ok=True
    )
    nu_dtype = _validate.float_dtype("scale_by_adamax", "nu_dtype", nu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=state_zeros_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("scale_by_adamax", state, ScaleByAdamState)
        count = _maths.safe_increment(state.count)
        c1 = _maths.debias_factor(b1, count)

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            nu = _maths.infinity_moment(g, nu, b2, eps)
            return mu / c1 / nu, mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner="scale_by_adamax",
            nout=3,
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))
