"""PSGD with Kronecker-factored preconditioners (Xi-Lin Li's PSGD-Kron).

Each leaf ``G`` of shape ``(d_1, …, d_k)`` is preconditioned by
``P = Q^T Q`` with ``Q = Q_1 ⊗ … ⊗ Q_k``: one factor per dimension, an
upper-triangular ``(d_i, d_i)`` matrix or a positive diagonal (a vector).
The factors are fitted online by a few matrix products per step, on the
Lie group of invertible triangular (or diagonal) matrices, so that
``P`` approaches ``E[h h^T]^{-1/2}`` for the gradient–probe pairs ``h``.
Here the tensors are multiplied mode by mode (``x ×_i M``: the matrix ``M``
applied along dimension ``i``), so no dimension-count limit applies. The
alias, with the full rule and references, is :func:`gradtx.psgd_kron`.
"""

import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Schedule, Updates, check_state
from .._core.lifting import (
    check_leaf_dtypes,
    check_shapes,
    flatten_like,
    leaf_paths,
    reject_complex,
    state_zeros_like,
    upcast,
)
from .._core.placement import auto_axes, full_like, placement_key, zeros_derived
from .noise import as_key

MEMORY_SAVE_MODES = (None, "one_diag", "all_diag")
# psgd-jax's fixed constants: its default key seed, how often the factors are
# rebalanced (a probability per preconditioner update) and the update RMS cap.
PSGD_JAX_SEED = 5318008
_BALANCE_PROBABILITY = 0.01
_MAX_RMS = 1.1
_REAL_ONLY = (
    "PSGD-Kron's factors and probes are real. Split it with "
    "gradtx.contrib.split_real_and_imaginary"
)


def precond_update_prob_schedule(
    max_prob: float = 1.0,
    min_prob: float = 0.03,
    decay: float = 0.001,
    flat_start: float = 500,
) -> Schedule:
    """psgd-jax's default preconditioner-update probability: flat, then annealed.

    ``p(n) = min(max(max_prob·exp(−decay·(n − flat_start)), min_prob),
    max_prob)``, with ``n = 1, 2, …`` the step: 1 for the first ``flat_start``
    steps with the defaults, then an exponential decay to ``min_prob`` (0.03
    from about step 4000).

    Args:
      max_prob: the probability at the start, in [0, 1].
      min_prob: the floor, in [0, 1].
      decay: the exponential decay rate per step, >= 0.
      flat_start: the step from which the probability decays.

    Returns:
      A schedule ``step -> probability``.

    Examples:
      >>> from gradtx import precond_update_prob_schedule
      >>> p = precond_update_prob_schedule()
      >>> [round(float(p(n)), 3) for n in (1, 500, 1500, 10_000)]
      [1.0, 1.0, 0.368, 0.03]
    """
    owner = "precond_update_prob_schedule"
    _validate.decay(owner, "max_prob", max_prob, allow_one=True)
    _validate.decay(owner, "min_prob", min_prob, allow_one=True)
    _validate.non_negative(owner, "decay", decay)
    _validate.number(owner, "flat_start", flat_start)

    def schedule(step):
        annealed = max_prob * jnp.exp(-decay * (step - flat_start))
        return jnp.minimum(jnp.maximum(annealed, min_prob), max_prob)

    return schedule


def factor_kinds(
    shape: tuple,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
) -> tuple[bool, ...]:
    """Whether each dimension of a leaf of ``shape`` gets a triangular factor.

    A dimension gets a diagonal factor (``False``) when it has size 1, is
    larger than ``max_size_triangular``, the leaf has fewer than
    ``min_ndim_triangular`` dimensions, or ``memory_save_mode`` says so
    (``"one_diag"``: the largest dimension, the last of equal ones;
    ``"all_diag"``: every one). A scalar has no dimensions: ``()``.
    """
    ndim = len(shape)
    diag = [memory_save_mode == "all_diag"] * ndim
    if memory_save_mode == "one_diag" and ndim:
        diag[int(np.argsort(shape)[::-1][0])] = True
    return tuple(
        not (d or n == 1 or n > max_size_triangular or ndim < min_ndim_triangular)
        for n, d in zip(shape, diag, strict=True)
    )


def _factor_shapes(shape: tuple, kinds: tuple) -> list[tuple]:
    if not shape:
        return [()]
    return [(n, n) if tri else (n,) for n, tri in zip(shape, kinds, strict=True)]


def _along(x, m, axis):
    """``x ×_axis m``: ``out[…a…] = Σ_n m[a, n] x[…n…]`` (a vector ``m`` is
    a diagonal)."""
    if m.ndim < 2:
        return x * m.reshape(m.shape + (1,) * (x.ndim - axis - 1))
    return jnp.moveaxis(jnp.tensordot(m, x, axes=(1, axis)), 0, axis)


def _solve_along(x, q, axis):
    """``x ×_axis q^{-T}``: ``out[…a…] = Σ_n x[…n…] (q^{-1})[n, a]``, by a
    triangular solve (``q`` upper triangular) or a division (a diagonal)."""
    if q.ndim < 2:
        return x / q.reshape(q.shape + (1,) * (x.ndim - axis - 1))
    moved = jnp.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, q.shape[0])
    solved = jax.lax.linalg.triangular_solve(q, flat, left_side=False, lower=False)
    return jnp.moveaxis(solved.reshape(moved.shape), -1, axis)


def _gram(x, axis, diag):
    """``X_(i) X_(i)^T`` for the unfolding along ``axis`` (its diagonal only
    when ``diag``)."""
    if diag:
        return jnp.sum(x * x, axis=tuple(a for a in range(x.ndim) if a != axis))
    return _maths.axis_gram(x, axis)


def norm_lower_bound(a: chex.Array) -> chex.Array:
    """A cheap lower bound of the spectral norm of the square matrix ``a``.

    One power-iteration step from the column (or row, whichever has the
    larger norm) of largest norm: Li's estimate, in practice within a factor
    √2 of ``‖a‖₂``; 0 for ``a = 0``. Both candidates are formed (two
    matrix-vector products) and one is selected: no branch to compile.
    """
    top = jnp.max(jnp.abs(a))
    b = a / jnp.where(top > 0, top, 1)
    col, row = jnp.sum(b * b, axis=0), jnp.sum(b * b, axis=1)
    i, j = jnp.argmax(col), jnp.argmax(row)
    unit = lambda x: x / jnp.where(jnp.any(x != 0), jnp.linalg.norm(x), 1)
    from_column = jnp.linalg.norm(unit(b[:, i] @ b) @ b.T)
    from_row = jnp.linalg.norm(b.T @ unit(b @ b[j, :]))
    return top * jnp.where(col[i] > row[j], from_column, from_row)


def _balance(qs, do_balance):
    """The factors rescaled to equal max-norms (their product is unchanged)
    where ``do_balance``."""
    if len(qs) < 2:
        return qs
    norms = jnp.stack([jnp.max(jnp.abs(q)) for q in qs])
    mean = jnp.prod(norms) ** (1 / len(qs))
    return [
        jnp.where(do_balance, q * (mean / n), q) for q, n in zip(qs, norms, strict=True)
    ]


def _fit(qs, g, v, lr):
    """One step of the factors along the Lie group, for a gradient ``g``
    (damped) and its probe ``v``."""
    a, b = g, v
    for i, q in enumerate(qs):
        a = _along(a, q, i) if g.ndim else a * q
        b = _solve_along(b, q, i) if g.ndim else b / q
    tiny = jnp.finfo(g.dtype).tiny
    new = []
    for i, q in enumerate(qs):
        diag = q.ndim < 2
        t1, t2 = (_gram(x, i, diag) if g.ndim else x * x for x in (a, b))
        step = lr * (t1 - t2)
        if diag:
            new.append(q - step * q / (jnp.max(jnp.abs(t1 + t2)) + tiny))
        else:
            step = jnp.triu(step) / (norm_lower_bound(t1 + t2) + tiny)
            new.append(q - step @ q)
    return new


def _precondition(qs, g):
    """``P g = (Q^T Q) g``, mode by mode."""
    if not g.ndim:
        return qs[0] * qs[0] * g
    for i, q in enumerate(qs):
        g = _along(_along(g, q, i), q.T, i)
    return g


def _clip_rms(u):
    rms = jnp.sqrt(jnp.mean(u * u))
    return u / jnp.maximum(1.0, rms / _MAX_RMS)


def _fitted(m, g_fit, qs, key, do_balance, lr):
    """One leaf's factors after one step along the Lie group, on a probe
    drawn from ``key`` (all in the working dtype)."""
    probe = jax.random.normal(key, jnp.shape(m), m.dtype)
    qs = _balance(qs, do_balance)
    damping = jnp.sqrt(jnp.finfo(jnp.float32).eps).astype(m.dtype)
    g = g_fit + damping * jnp.mean(jnp.abs(g_fit)) * probe
    return _fit(qs, g, probe, lr)


def _same_shapes(jobs):
    """The leaves' indices grouped by shapes, dtypes and placement: each
    group's factors are fitted as one batched (``vmap``) program, so a model
    of many same-shaped layers compiles a few programs, not one per leaf."""
    groups = {}
    for i, (m, fit_in, qs, _) in jobs.items():
        key = (
            jnp.shape(m),
            jnp.result_type(m),
            jnp.result_type(fit_in),
            tuple((jnp.shape(q), jnp.result_type(q)) for q in qs),
            placement_key(m),
        )
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _kron_group(jobs, likes, decide, lr):
    """The update and new factors of each leaf of a same-shape group:
    ``[(u, qs), …]``, jobs being ``(m, g_fit, qs, key)``.

    The factors are fitted (every leaf at once, under one ``lax.cond``: the
    probes are drawn only when they are used) in the working dtype, then
    ``P m = (QᵀQ) m`` is clipped to RMS 1.1 and the factors return to their
    state dtype. Explicit axes: all of it in an ``auto_axes`` region (the
    factors act along whole dims); each result keeps its leaf's (or factor's)
    sharding.
    """
    dtypes = [[q.dtype for q in job[2]] for job in jobs]

    def run(decide, lr, jobs):
        do_update, do_balance = decide
        work = jnp.result_type(upcast(jobs[0][0]), *(upcast(q) for q in jobs[0][2]))
        ms = [m.astype(work) for m, _, _, _ in jobs]
        fits = [g.astype(work) for _, g, _, _ in jobs]
        qss = [[q.astype(work) for q in qs] for _, _, qs, _ in jobs]
        keys = [key for *_, key in jobs]

        def fit_all(qss):
            if len(jobs) == 1:
                return [_fitted(ms[0], fits[0], qss[0], keys[0], do_balance, lr)]
            stack = lambda xs: jax.tree.map(lambda *x: jnp.stack(x), *xs)
            batched = jax.vmap(_fitted, in_axes=(0, 0, 0, 0, None, None))
            new = batched(
                stack(ms), stack(fits), stack(qss), jnp.stack(keys), do_balance, lr
            )
            return [[q[k] for q in new] for k in range(len(jobs))]

        qss = jax.lax.cond(do_update, fit_all, lambda qss: qss, qss)
        return [
            (
                _clip_rms(_precondition(qs, m)),
                [q.astype(d) for q, d in zip(qs, ds, strict=True)],
            )
            for m, qs, ds in zip(ms, qss, dtypes, strict=True)
        ]

    out_like = [(g, job[2]) for g, job in zip(likes, jobs, strict=True)]
    return auto_axes(run, decide, lr, jobs, out_like=out_like)


class KronState(NamedTuple):
    """Step count (int32, saturating); the momentum (the params' shapes);
    per leaf, the list of its Kronecker factors ``Q_i`` (``(d_i, d_i)``
    upper-triangular or ``(d_i,)`` diagonal; one ``()`` factor for a scalar);
    the steps since the last preconditioner update (int32)."""

    count: chex.Array
    mu: Updates
    qs: Any
    update_counter: chex.Array


def _check_options(owner, max_size_triangular, min_ndim_triangular, memory_save_mode):
    _validate.integer(owner, "max_size_triangular", max_size_triangular)
    _validate.integer(owner, "min_ndim_triangular", min_ndim_triangular)
    if memory_save_mode not in MEMORY_SAVE_MODES:
        raise ValueError(
            f"{owner}: `memory_save_mode` must be one of {MEMORY_SAVE_MODES}, "
            f"got {memory_save_mode!r}."
        )


def _check_probability(owner, name, value):
    if not callable(value):
        _validate.decay(owner, name, value, allow_one=True)


def _draws(key, count, n):
    """psgd-jax's key use: ``(balance?, one probe key per leaf)`` at ``count``."""
    k = jax.random.split(jax.random.fold_in(key, count))[1]
    k, kb = jax.random.split(k)
    do_balance = jax.random.uniform(kb) < _BALANCE_PROBABILITY
    kv = jax.random.split(k)[1]
    return do_balance, jax.random.split(kv, n)


def _inverse(p):
    if isinstance(p, (int, float)):  # as psgd-jax, 1/p in Python; 1/0: never
        return math.inf if p == 0 else 1 / p
    return 1 / p


def scale_by_kron(
    b1: chex.Numeric = 0.9,
    preconditioner_update_probability: Any = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    preconditioner_lr: chex.Numeric = 0.1,
    preconditioner_init_scale: chex.Numeric = 1.0,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    key: Any = None,
) -> GradientTransformation:
    r"""PSGD-Kron scaling: ``u = clip(P m̂)`` with ``P = Q^T Q``, ``Q`` fitted online.

    ``m ← b1·m + (1 − b1)·g`` is bias-corrected to ``m̂``. When the
    preconditioner updates (a deterministic counter: every ``⌈1/p⌉``-th step
    for the update probability ``p``), each factor takes one step on its
    group with the damped ``h = m̂ + √ε₃₂·mean|m̂|·v`` and a Gaussian probe
    ``v``; then ``P m̂`` is formed with the new factors and its RMS capped at
    1.1. See :func:`gradtx.psgd_kron` for the full rule, the key scheme and
    references.

    Args:
      b1: momentum decay, in [0, 1).
      preconditioner_update_probability: ``p`` in [0, 1] or a schedule of the
        step (1, 2, …); ``None``: :func:`precond_update_prob_schedule` ``()``.
      max_size_triangular: dimensions larger than this get a diagonal factor.
      min_ndim_triangular: leaves with fewer dimensions get diagonal factors.
      memory_save_mode: ``None``, ``"one_diag"`` or ``"all_diag"``.
      momentum_into_precond_update: fit the preconditioner to ``m̂`` (else to
        the raw gradient).
      preconditioner_lr: the factors' step size, > 0.
      preconditioner_init_scale: ``Q_0 = s^{1/k}·I`` per factor, > 0.
      mu_dtype: dtype of the momentum (default: the params').
      precond_dtype: dtype of the factors (default: the params', at least
        float32).
      key: ``None`` for psgd-jax's probes, or a PRNG key or integer seed.

    Returns:
      A :class:`GradientTransformation` with state :class:`KronState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_kron
      >>> tx = scale_by_kron()
      >>> state = tx.init({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
      >>> [q.shape for q in state.qs["w"]], [q.shape for q in state.qs["b"]]
      ([(2, 2), (3, 3)], [(3,)])
    """
    owner = "scale_by_kron"
    _validate.decay(owner, "b1", b1)
    if preconditioner_update_probability is None:
        preconditioner_update_probability = precond_update_prob_schedule()
    prob = preconditioner_update_probability
    _check_probability(owner, "preconditioner_update_probability", prob)
    _check_options(owner, max_size_triangular, min_ndim_triangular, memory_save_mode)
    _validate.flag(owner, "momentum_into_precond_update", momentum_into_precond_update)
    _validate.positive(owner, "preconditioner_lr", preconditioner_lr)
    _validate.positive(owner, "preconditioner_init_scale", preconditioner_init_scale)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype)
    precond_dtype = _validate.float_dtype(owner, "precond_dtype", precond_dtype)
    base_key = jax.random.PRNGKey(PSGD_JAX_SEED) if key is None else as_key(owner, key)

    def kinds_of(shape):
        opts = (max_size_triangular, min_ndim_triangular, memory_save_mode)
        return factor_kinds(shape, *opts)

    def q_dtype(p):
        if precond_dtype is not None:
            return precond_dtype
        return jnp.result_type(upcast(p), jnp.float32)

    def factor(p, shape, dims, value):
        """``value·I`` (a matrix) or ``value`` (a vector or scalar), placed as
        the dimension of ``p`` it preconditions."""
        if tuple(shape) == jnp.shape(p):  # a vector's or a scalar's factor
            return full_like(p, value, q_dtype(p))
        zeros = zeros_derived(p, shape, q_dtype(p), dims)
        return zeros + value * (
            jnp.eye(shape[0], dtype=zeros.dtype) if shape[1:] else 1
        )

    def init_leaf(p):
        shape = jnp.shape(p)
        if not shape:
            return [factor(p, (), (), preconditioner_init_scale)]
        scale = preconditioner_init_scale ** (1 / len(shape))
        return [
            factor(p, s, (i,) + (None,) * (len(s) - 1), scale)
            for i, s in enumerate(_factor_shapes(shape, kinds_of(shape)))
        ]

    def init_fn(params):
        mu = state_zeros_like(params, mu_dtype)
        leaves, treedef = jax.tree.flatten(params)
        reject_complex(owner, params, [leaves], _REAL_ONLY)
        qs = treedef.unflatten([init_leaf(p) for p in leaves])
        zero = lambda: jnp.zeros([], jnp.int32)  # two buffers (donation)
        return KronState(count=zero(), mu=mu, qs=qs, update_counter=zero())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, KronState)
        leaves, treedef = jax.tree.flatten(updates)
        mus = flatten_like(treedef, state.mu, name="mu", owner=owner)
        qss = flatten_like(treedef, state.qs, name="qs", owner=owner)
        check_shapes(updates, leaves, [mus], ["mu"], owner)
        check_leaf_dtypes(owner, updates, leaves, [mus], ["mu"])
        reject_complex(owner, updates, [leaves], _REAL_ONLY)
        _check_factors(owner, updates, leaves, qss, kinds_of)
        count = _maths.safe_increment(state.count)
        p = prob(count) if callable(prob) else prob
        counter = _maths.safe_increment(state.update_counter)
        do_update = counter >= _inverse(p)
        do_balance, keys = _draws(base_key, state.count, max(len(leaves), 1))
        debias = _maths.debias_factor(b1, count)
        outs, new_mu, jobs = [], [], {}
        for i, (g, mu, qs, k) in enumerate(zip(leaves, mus, qss, keys, strict=False)):
            g32 = upcast(g)
            new = _maths.ema(g32, upcast(mu), b1)
            new_mu.append(new.astype(jnp.result_type(mu)))
            outs.append(g)
            if not math.prod(jnp.shape(g)):  # zero-size: nothing to fit
                continue
            m = new / debias
            jobs[i] = (m, m if momentum_into_precond_update else g32, list(qs), k)
        new_qs = list(qss)
        for members in _same_shapes(jobs):
            results = _kron_group(
                [jobs[i] for i in members],
                [leaves[i] for i in members],
                (do_update, do_balance),
                preconditioner_lr,
            )
            for i, (u, qs) in zip(members, results, strict=True):
                outs[i] = u.astype(jnp.result_type(leaves[i]))
                new_qs[i] = qs
        new_state = KronState(
            count=count,
            mu=treedef.unflatten(new_mu),
            qs=treedef.unflatten(new_qs),
            update_counter=jnp.where(do_update, 0, counter).astype(jnp.int32),
        )
        return treedef.unflatten(outs), new_state

    return GradientTransformation(init_fn, update_fn)


def _check_factors(owner, updates, leaves, qss, kinds_of):
    for i, (g, qs) in enumerate(zip(leaves, qss, strict=True)):
        shape = jnp.shape(g)
        want = _factor_shapes(shape, kinds_of(shape))
        got = [jnp.shape(q) for q in qs] if isinstance(qs, (list, tuple)) else qs
        if got != want:
            raise ValueError(
                f"{owner}: leaf {leaf_paths(updates)[i]} of shape {shape} needs "
                f"factors of shapes {want}, got {got}. Was the state made by "
                "`init` with other options or parameters?"
            )
