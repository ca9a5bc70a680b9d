"""Sophia's scaling and its Hessian-diagonal estimator (Hutchinson's).

:func:`scale_by_sophia` divides the momentum by a running estimate of the
Hessian's diagonal and clips the result; the estimate comes from another
transformation, by default :func:`hutchinson_estimator_diag_hessian`, which
needs the objective as the extra argument ``obj_fn``. The full rule, with the
reference, is in :func:`gradtx.sophia`.
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
    OptState,
    Updates,
    check_state,
    with_extra_args_support,
)
from .._core.lifting import map_leaves, state_zeros_like, tree_zeros_like
from .._core.tree_ops import random_like


class HutchinsonState(NamedTuple):
    """The PRNG key for the next random probe vector."""

    key: chex.PRNGKey


def hutchinson_estimator_diag_hessian(
    random_seed: chex.PRNGKey | None = None,
) -> GradientTransformation:
    r"""Hutchinson's estimate of the Hessian diagonal: ``ĥ = v ⊙ (H v)``.

    ``v`` has independent Rademacher (±1) entries, drawn afresh each call;
    ``E[v ⊙ Hv] = diag(H)``: unbiased, but noisy where ``H`` has large
    off-diagonal entries (exact for a separable objective). ``H v`` is a
    forward-over-reverse Hessian-vector product of ``obj_fn`` at ``params``.
    The incoming updates are ignored.

    ``update`` needs ``params`` and the extra keyword argument ``obj_fn``
    (``params -> scalar loss``). Each probe leaf has its param leaf's dtype
    (Optax casts every probe to the params' lowest dtype, which fails for
    params of mixed dtypes).

    Reference: Hutchinson, 1989, "A stochastic estimator of the trace of the
    influence matrix for Laplacian smoothing splines"; Bekas, Kokiopoulou &
    Saad, 2007, "An estimator for the diagonal of a matrix".

    Args:
      random_seed: the initial PRNG key (default ``jax.random.PRNGKey(0)``).

    Returns:
      A :class:`GradientTransformation` with state :class:`HutchinsonState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import hutchinson_estimator_diag_hessian
      >>> est = hutchinson_estimator_diag_hessian()
      >>> obj_fn = lambda p: jnp.sum(jnp.array([1.0, 3.0]) * p**2)  # separable
      >>> p = jnp.zeros(2)
      >>> h, _ = est.update(p, est.init(p), p, obj_fn=obj_fn)
      >>> h.tolist()
      [2.0, 6.0]
    """

    def init_fn(params):
        del params
        key = jax.random.PRNGKey(0) if random_seed is None else random_seed
        return HutchinsonState(key=key)

    def update_fn(updates, state, params=None, obj_fn=None, **extra_args):
        del updates, extra_args
        check_state("hutchinson_estimator_diag_hessian", state, HutchinsonState)
        owner = "hutchinson_estimator_diag_hessian"
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        if obj_fn is None:
            raise ValueError(
                f"{owner}: `update` needs the objective: pass `obj_fn=` (a "
                "function params -> scalar loss) as a keyword argument."
            )
        key, subkey = jax.random.split(state.key)
        signs = random_like(subkey, params, jax.random.rademacher, jnp.float32)
        signs = jax.tree.map(lambda s, p: s.astype(jnp.result_type(p)), signs, params)
        hvp = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
        diag = map_leaves(
            lambda hv, v: hv * v,
            hvp,
            signs,
            names=["probe"],
            owner=owner,
            complex_ok="real Rademacher probes do not estimate a complex diagonal",
        )
        return diag, HutchinsonState(key=key)

    return GradientTransformation(init_fn, update_fn)


DEFAULT_HESSIAN_FN = hutchinson_estimator_diag_hessian()
"""Sophia's default estimator: Hutchinson's, with the key ``PRNGKey(0)``."""


class SophiaState(NamedTuple):
    """Step count, momentum, Hessian-diagonal EMA and the estimator's state."""

    count: chex.Array
    mu: Updates
    nu: Updates
    hessian_fn_state: OptState


def _check_sophia_args(
    owner, b1, b2, eps, gamma, clip_threshold, update_interval, hessian_fn,
    mu_dtype, verbose, print_every,
):  # fmt: skip
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    _validate.positive(owner, "eps", eps)
    _validate.non_negative(owner, "gamma", gamma)
    if clip_threshold is not None:
        _validate.positive(owner, "clip_threshold", clip_threshold)
    _validate.integer(owner, "update_interval", update_interval, low=1, array_ok=True)
    if not (hasattr(hessian_fn, "init") and hasattr(hessian_fn, "update")):
        raise TypeError(
            f"{owner}: `hessian_diagonal_fn` must be a gradient transformation, "
            f"got {type(hessian_fn).__name__}."
        )
    _validate.flag(owner, "verbose", verbose)
    _validate.integer(owner, "print_win_rate_every_n_steps", print_every, array_ok=True)
    return _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)


def _maybe_positive(every) -> bool:
    return isinstance(every, jax.core.Tracer) or bool(every)


def _print_win_rate(updates, clip_threshold, count, every):
    inside = [jnp.sum(jnp.abs(u) < clip_threshold) for u in jax.tree.leaves(updates)]
    size = sum(jnp.size(u) for u in jax.tree.leaves(updates))
    rate = sum(inside) / max(size, 1)
    jax.lax.cond(
        (every > 0) & (count % jnp.maximum(every, 1) == 0),
        lambda: jax.debug.print("Sophia optimizer win rate: {}", rate),
        lambda: None,
    )


def scale_by_sophia(
    b1: chex.Numeric = 0.965,
    b2: chex.Numeric = 0.99,
    eps: chex.Numeric = 1e-8,
    gamma: chex.Numeric = 0.01,
    clip_threshold: chex.Numeric | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: GradientTransformation = DEFAULT_HESSIAN_FN,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    """Sophia scaling: ``u = clip(m̂ / max(γ·h, ε), ±ρ)``.

    ``m`` is the EMA of the gradients (rate ``b1``, bias-corrected); ``h`` the
    EMA (rate ``b2``) of the Hessian-diagonal estimates of
    ``hessian_diagonal_fn``, refreshed on steps 1, k + 1, 2k + 1, … (k =
    ``update_interval``) *after* the step is taken, so each step uses the
    estimate from the previous refresh. See :func:`gradtx.sophia`.

    Args:
      b1: decay of the momentum, in [0, 1).
      b2: decay of the Hessian-diagonal EMA, in [0, 1).
      eps: ε > 0, the floor of the denominator (Optax accepts 0, which gives
        NaN where ``γ·h <= 0``).
      gamma: γ >= 0, the scale of the Hessian diagonal.
      clip_threshold: ρ > 0, or ``None`` for no clipping.
      update_interval: k >= 1, the steps between Hessian-diagonal refreshes.
      hessian_diagonal_fn: the estimator; its ``update`` gets the gradients,
        its state, ``params`` and every extra keyword argument.
      mu_dtype: dtype of the momentum (default: the params').
      verbose: print the fraction of unclipped coordinates (the "win rate").
      print_win_rate_every_n_steps: print every n steps (``0``: never, even
        with ``verbose``; Optax takes ``count % 0`` there).

    Returns:
      A :class:`GradientTransformation` with state :class:`SophiaState`; its
      ``update`` needs ``params`` (and ``obj_fn`` for the default estimator).
    """
    owner = "scale_by_sophia"
    mu_dtype = _check_sophia_args(
        owner, b1, b2, eps, gamma, clip_threshold, update_interval,
        hessian_diagonal_fn, mu_dtype, verbose, print_win_rate_every_n_steps,
    )  # fmt: skip
    hessian_fn = with_extra_args_support(hessian_diagonal_fn)

    def init_fn(params):
        return SophiaState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=tree_zeros_like(params),
            hessian_fn_state=hessian_fn.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, SophiaState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        count = _maths.safe_increment(state.count)
        c1 = _maths.debias_factor(b1, count)

        def leaf(g, m, h):
            m = _maths.ema(g, m, b1)
            u = (m / c1) / jnp.maximum(gamma * h, eps)
            if clip_threshold is not None:
                u = jnp.clip(u, -clip_threshold, clip_threshold)
            return u, m

        steps, mu = map_leaves(
            leaf, updates, state.mu, state.nu, names=["mu", "nu"], owner=owner,
            nout=2, complex_ok="it clips by value and needs a real Hessian diagonal",
        )  # fmt: skip
        # The interval may be an array (inject_hyperparams), traced under jit.
        every = print_win_rate_every_n_steps
        if verbose and clip_threshold is not None and _maybe_positive(every):
            _print_win_rate(steps, clip_threshold, count, every)

        def refresh(hess_state, nu):
            diag, hess_state = hessian_fn.update(
                updates, hess_state, params, **extra_args
            )
            nu = map_leaves(
                lambda n, d: _maths.ema(d, n, b2),
                nu,
                diag,
                names=["hessian diagonal"],
                owner=owner,
            )
            return hess_state, nu

        hess_state, nu = jax.lax.cond(
            state.count % update_interval == 0,
            refresh,
            lambda s, n: (s, n),
            state.hessian_fn_state,
            state.nu,
        )
        return steps, SophiaState(count, mu, nu, hess_state)

    return GradientTransformation(init_fn, update_fn)
