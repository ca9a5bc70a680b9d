"""Momentum and running-average transformations: trace, ema, RMS, RSS.

Each transformation is a per-array rule (``_*_leaf``) lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves`; the factory only validates, builds the state
and computes per-step scalars (bias corrections).
"""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp
from jax import lax

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    map_leaves,
    square_state_like,
    state_zeros_like,
    tree_zeros_like,
)
from .._core.traits import elementwise


class TraceState(NamedTuple):
    """The momentum buffer ``v`` of :func:`trace`."""

    trace: Updates


def trace_leaf(g, t, *, decay, nesterov):
    t = g + decay * t
    return (g + decay * t if nesterov else t), t


def trace(
    decay: chex.Numeric,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Heavy-ball momentum: ``v ← g + β·v``; ``u = v`` (Nesterov: ``u = g + β·v``).

    See :func:`gradtx.sgd` for the full update rule.

    Args:
      decay: the momentum coefficient β, in [0, 1].
      nesterov: use Nesterov's look-ahead form (Sutskever et al., 2013).
      accumulator_dtype: dtype of the buffer (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`TraceState`.
    """
    _validate.decay("trace", "decay", decay, allow_one=True)
    _validate.flag("trace", "nesterov", nesterov)
    acc_dtype = _validate.float_dtype(
        "trace", "accumulator_dtype", accumulator_dtype, complex_ok=True
    )

    def init_fn(params):
        return TraceState(trace=state_zeros_like(params, acc_dtype))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("trace", state, TraceState)
        leaf = lambda g, t: trace_leaf(g, t, decay=decay, nesterov=nesterov)
        updates, new = map_leaves(
            leaf, updates, state.trace, names=["trace"], owner="trace", nout=2
        )
        return updates, TraceState(trace=new)

    return elementwise(GradientTransformation(init_fn, update_fn))


class EmaState(NamedTuple):
    """Step count and the running average."""

    count: chex.Array
    ema: Updates


def ema(
    decay: chex.Numeric, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Exponential moving average: ``e ← (1 − β)·g + β·e``; ``u = e / (1 − β^t)``.

    Args:
      decay: β, in [0, 1] ([0, 1) when ``debias``).
      debias: divide by ``1 − β^t`` (t counts from 1) to remove the bias of
        starting from zero.
      accumulator_dtype: dtype of the average (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`EmaState`.
    """
    _validate.flag("ema", "debias", debias)
    _validate.decay("ema", "decay", decay, allow_one=not debias)
    acc_dtype = _validate.float_dtype(
        "ema", "accumulator_dtype", accumulator_dtype, complex_ok=True
    )

    def init_fn(params):
        return EmaState(
            count=jnp.zeros([], jnp.int32), ema=state_zeros_like(params, acc_dtype)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("ema", state, EmaState)
        count = _maths.safe_increment(state.count)
        c = _maths.debias_factor(decay, count) if debias else None

        def leaf(g, e):
            e = _maths.ema(g, e, decay)
            return (e if c is None else e / c), e

        updates, new = map_leaves(
            leaf, updates, state.ema, names=["ema"], owner="ema", nout=2
        )
        return updates, EmaState(count=count, ema=new)

    return elementwise(GradientTransformation(init_fn, update_fn))


def _inv_root(x, eps, eps_in_sqrt):
    return lax.rsqrt(x + eps) if eps_in_sqrt else 1 / (jnp.sqrt(x) + eps)


def _check_rms_args(owner, decay, eps, initial_scale, eps_in_sqrt, bias_correction):
    _validate.decay(owner, "decay", decay, allow_one=not bias_correction)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "initial_scale", initial_scale)
    _validate.flag(owner, "eps_in_sqrt", eps_in_sqrt)
    _validate.flag(owner, "bias_correction", bias_correction)


class ScaleByRmsState(NamedTuple):
    """The running average of squared gradients."""

    nu: Updates


class ScaleByRmsWithCountState(NamedTuple):
    """Step count and the running average of squared gradients."""

    count: chex.Array
    nu: Updates


def scale_by_rms(
    decay: chex.Numeric = 0.9,
    eps: chex.Numeric = 1e-8,
    initial_scale: chex.Numeric = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp scaling: ``ν ← ρ·ν + (1 − ρ)·g²``; ``u = g / sqrt(ν̂ + ε)``.

    With ``eps_in_sqrt=False`` the denominator is ``sqrt(ν̂) + ε``;
    ``ν̂ = ν / (1 − ρ^t)`` with ``bias_correction``, else ``ν``. See
    :func:`gradtx.rmsprop` for the full rule and reference.

    Args:
      decay: ρ, in [0, 1).
      eps: ε >= 0.
      initial_scale: the starting value of ν (>= 0).
      eps_in_sqrt: put ε inside the square root.
      bias_correction: unbias ν (meaningful when ``initial_scale == 0``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByRmsState`
      (or :class:`ScaleByRmsWithCountState` with ``bias_correction``).
    """
    _check_rms_args(
        "scale_by_rms", decay, eps, initial_scale, eps_in_sqrt, bias_correction
    )

    def init_fn(params):
        nu = square_state_like(params, fill=initial_scale)
        if bias_correction:
            return ScaleByRmsWithCountState(count=jnp.zeros([], jnp.int32), nu=nu)
        return ScaleByRmsState(nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("scale_by_rms", state, (ScaleByRmsState, ScaleByRmsWithCountState))
        count = _maths.safe_increment(state.count) if bias_correction else None
        c = _maths.debias_factor(decay, count) if bias_correction else None

        def leaf(g, nu):
            nu = _maths.ema_sq(g, nu, decay)
            nu_hat = nu if c is None else nu / c
            return _inv_root(nu_hat, eps, eps_in_sqrt) * g, nu

        updates, nu = map_leaves(
            leaf, updates, state.nu, names=["nu"], owner="scale_by_rms", nout=2
        )
        if bias_correction:
            return updates, ScaleByRmsWithCountState(count=count, nu=nu)
        return updates, ScaleByRmsState(nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))


class ScaleByRStdDevState(NamedTuple):
    """Running averages of gradients and of squared gradients."""

    mu: Updates
    nu: Updates


class ScaleByRStdDevWithCountState(NamedTuple):
    """Step count and running averages of gradients and squared gradients."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_stddev(
    decay: chex.Numeric = 0.9,
    eps: chex.Numeric = 1e-8,
    initial_scale: chex.Numeric = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """Centered RMSProp scaling: ``u = g / sqrt(ν̂ − μ̂² + ε)``.

    ``μ ← ρ·μ + (1 − ρ)·g`` and ``ν ← ρ·ν + (1 − ρ)·g²`` estimate the mean and
    the second moment, so ``ν − μ²`` estimates the variance (Graves, 2013,
    "Generating Sequences With Recurrent Neural Networks", eq. 38–41). With
    ``eps_in_sqrt=False`` the denominator is ``sqrt(ν̂ − μ̂²) + ε``; ``μ̂, ν̂``
    are ``μ, ν`` divided by ``1 − ρ^t`` with ``bias_correction``.

    Args:
      decay: ρ, in [0, 1] ([0, 1) with ``bias_correction``).
      eps: ε >= 0.
      initial_scale: the starting value of ν (>= 0); μ starts at 0.
      eps_in_sqrt: put ε inside the square root.
      bias_correction: unbias μ and ν (meaningful when ``initial_scale == 0``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByRStdDevState`
      (or :class:`ScaleByRStdDevWithCountState` with ``bias_correction``).
    """
    _check_rms_args(
        "scale_by_stddev", decay, eps, initial_scale, eps_in_sqrt, bias_correction
    )

    def init_fn(params):
        mu = tree_zeros_like(params)
        nu = square_state_like(params, fill=initial_scale)
        if bias_correction:
            count = jnp.zeros([], jnp.int32)
            return ScaleByRStdDevWithCountState(count=count, mu=mu, nu=nu)
        return ScaleByRStdDevState(mu=mu, nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(
            "scale_by_stddev",
            state,
            (ScaleByRStdDevState, ScaleByRStdDevWithCountState),
        )
        count = _maths.safe_increment(state.count) if bias_correction else None
        c = _maths.debias_factor(decay, count) if bias_correction else None

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, decay)
            nu = _maths.ema_sq(g, nu, decay)
            mu_hat, nu_hat = (mu, nu) if c is None else (mu / c, nu / c)
            var = nu_hat - _maths.abs_sq(mu_hat)
            return _inv_root(var, eps, eps_in_sqrt) * g, mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner="scale_by_stddev",
            nout=3,
        )
        if bias_correction:
            return updates, ScaleByRStdDevWithCountState(count=count, mu=mu, nu=nu)
        return updates, ScaleByRStdDevState(mu=mu, nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))


class ScaleByRssState(NamedTuple):
    """The running sum of squared gradients."""

    sum_of_squares: Updates


def scale_by_rss(
    initial_accumulator_value: chex.Numeric = 0.1, eps: chex.Numeric = 1e-7
) -> GradientTransformation:
    """Adagrad scaling: ``s ← s + g²``; ``u = g / sqrt(s + ε)`` (0 where s = 0).

    See :func:`gradtx.adagrad` for the full rule and reference.

    Args:
      initial_accumulator_value: the starting value of s (>= 0).
      eps: ε >= 0.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByRssState`.
    """
    _validate.non_negative(
        "scale_by_rss", "initial_accumulator_value", initial_accumulator_value
    )
    _validate.non_negative("scale_by_rss", "eps", eps)

    def init_fn(params):
        return ScaleByRssState(
            sum_of_squares=square_state_like(params, fill=initial_accumulator_value)
        )

    def leaf(g, s):
        s = s + _maths.abs_sq(g)
        # s == 0 only for all-zero gradients so far; a NaN stays visible.
        return jnp.where(s == 0, 0.0, lax.rsqrt(s + eps)) * g, s

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("scale_by_rss", state, ScaleByRssState)
        updates, s = map_leaves(
            leaf,
            updates,
            state.sum_of_squares,
            names=["sum_of_squares"],
            owner="scale_by_rss",
            nout=2,
        )
        return updates, ScaleByRssState(sum_of_squares=s)

    return elementwise(GradientTransformation(init_fn, update_fn))
