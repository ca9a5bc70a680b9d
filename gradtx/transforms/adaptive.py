"""Adaptive scalings beyond Adam: NovoGrad, AdaDelta, Adan, SM3, Rprop, OGD.

Each rule is written for one array. Element-wise rules are lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves`; NovoGrad (one second moment per leaf) and SM3
(one accumulator per axis of a leaf) keep state whose shape is not the leaf's,
so they flatten the trees themselves with the same checks and casting rules
(structure and shapes checked by leaf path, float32 arithmetic for bfloat16 and
float16, every state leaf written back in its own dtype). The full update
rules, with references, are in the aliases of :mod:`gradtx.optimizers.adaptive`.
"""

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import NO_PARAMS_MSG, GradientTransformation, Updates, check_state
from .._core.lifting import (
    cast_to,
    dtype_of,
    flatten_like,
    leaf_paths,
    map_leaves,
    state_zeros_like,
    tree_full_like,
    tree_zeros_like,
    upcast,
)
from .._core.placement import zeros_derived
from .._core.traits import elementwise


def _shape_error(owner, path, name, got, want):
    return ValueError(
        f"{owner}: shape mismatch at leaf {path}: `{name}` has shape {got} but "
        f"{want} was expected from `updates`. Was the state made by `init` on "
        "parameters of another shape?"
    )


def _unflatten_columns(treedef, rows, n):
    """``n`` trees from per-leaf tuples ``rows`` (each of ``n`` items)."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * n
    return tuple(treedef.unflatten(list(c)) for c in cols)


def _is_zero(value: Any) -> bool:
    """True for a concrete scalar equal to 0 (not a schedule, not a tracer)."""
    if callable(value) or isinstance(value, jax.core.Tracer):
        return False
    return float(value) == 0.0


class ScaleByNovogradState(NamedTuple):
    """Step count, first moment (like the params) and one second moment per leaf."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_novograd(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.25,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    weight_decay: Any = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad scaling: layer-wise second moment, ``m ← b1·m + g/(sqrt(v) + ε) + λθ``.

    ``v`` is one scalar per leaf, an average of ``‖g‖²``; the first step sets
    ``v = ‖g‖²`` and ``m = g/(sqrt(v) + ε) + λθ``. See :func:`gradtx.novograd`.

    Args:
      b1: decay of the first moment, in [0, 1].
      b2: decay of the per-leaf second moment, in [0, 1].
      eps, eps_root: ε >= 0 outside / inside the square root.
      weight_decay: λ >= 0, or a schedule of the step count (Optax accepts
        only a number here).
      mu_dtype: dtype of the first moment (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByNovogradState`;
      ``update`` needs ``params`` unless ``weight_decay`` is 0.
    """
    owner = "scale_by_novograd"
    _validate.decay(owner, "b1", b1, allow_one=True)
    _validate.decay(owner, "b2", b2, allow_one=True)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)
    _validate.scalar_or_schedule(owner, "weight_decay", weight_decay)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
    decays = not _is_zero(weight_decay)

    def init_fn(params):
        nu = jax.tree.map(lambda p: jnp.zeros([], dtype_of(p)), params)
        return ScaleByNovogradState(
            count=jnp.zeros([], jnp.int32), mu=state_zeros_like(params, mu_dtype), nu=nu
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, ScaleByNovogradState)
        if decays and params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        leaves, treedef = jax.tree.flatten(updates)
        mus = flatten_like(treedef, state.mu, name="mu", owner=owner)
        nus = flatten_like(treedef, state.nu, name="nu", owner=owner)
        ps = (
            leaves
            if params is None
            else flatten_like(treedef, params, name="params", owner=owner)
        )
        wd = weight_decay(state.count) if callable(weight_decay) else weight_decay
        first = state.count == 0
        out = []
        for path, g, mu, nu, p in zip(
            leaf_paths(updates), leaves, mus, nus, ps, strict=True
        ):
            if jnp.shape(nu) != ():
                raise _shape_error(owner, path, "nu", jnp.shape(nu), "()")
            for name, x in (("mu", mu), ("params", p)):
                if jnp.shape(x) != jnp.shape(g):
                    raise _shape_error(owner, path, name, jnp.shape(x), jnp.shape(g))
            g32, sq = upcast(g), jnp.sum(_maths.abs_sq(upcast(g)))
            v = jnp.where(first, sq, _maths.ema(sq, upcast(nu), b2))
            step = g32 / (jnp.sqrt(v + eps_root) + eps)
            if decays:
                step = step + wd * upcast(p)
            m = jnp.where(first, step, b1 * upcast(mu) + step)
            out.append(
                (
                    cast_to(m, dtype_of(g)),
                    cast_to(m, dtype_of(mu)),
                    cast_to(v, dtype_of(nu)),
                )
            )
        u, mu, nu = _unflatten_columns(treedef, out, 3)
        count = _maths.safe_increment(state.count)
        return u, ScaleByNovogradState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByAdaDeltaState(NamedTuple):
    """Running averages of squared gradients (``e_g``) and squared steps (``e_x``)."""

    e_g: Updates
    e_x: Updates


def scale_by_adadelta(
    rho: chex.Numeric = 0.9, eps: chex.Numeric = 1e-6
) -> GradientTransformation:
    """AdaDelta scaling: ``u = sqrt(E[Δx²] + ε) / sqrt(E[g²] + ε) · g``.

    Both averages decay with ``rho``; ``E[Δx²]`` uses the steps up to the
    previous one. See :func:`gradtx.adadelta`.

    Args:
      rho: decay of both running averages, in [0, 1].
      eps: ε > 0 inside both square roots. Unlike Optax, 0 is rejected: the
        average of the steps starts at 0, so with ``eps = 0`` every step is 0
        (and ``0/0 = NaN`` where a gradient is 0).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdaDeltaState`.
    """
    owner = "scale_by_adadelta"
    _validate.decay(owner, "rho", rho, allow_one=True)
    _validate.positive(owner, "eps", eps)

    def init_fn(params):
        return ScaleByAdaDeltaState(
            e_g=tree_zeros_like(params), e_x=tree_zeros_like(params)
        )

    def leaf(g, e_g, e_x):
        e_g = _maths.ema_sq(g, e_g, rho)
        u = jnp.sqrt(e_x + eps) / jnp.sqrt(e_g + eps) * g
        return u, e_g, _maths.ema_sq(u, e_x, rho)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdaDeltaState)
        updates, e_g, e_x = map_leaves(
            leaf,
            updates,
            state.e_g,
            state.e_x,
            names=["e_g", "e_x"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

    return elementwise(GradientTransformation(init_fn, update_fn))


class ScaleByAdanState(NamedTuple):
    """Moments of the gradient (``m``), its difference (``v``), the squared
    look-ahead (``n``); the previous gradient ``g`` and the step count ``t``."""

    m: Updates
    v: Updates
    n: Updates
    g: Updates
    t: chex.Array


def scale_by_adan(
    b1: chex.Numeric = 0.98,
    b2: chex.Numeric = 0.92,
    b3: chex.Numeric = 0.99,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
) -> GradientTransformation:
    """Adan scaling: ``u = (m̂ + (1 − b2)·v̂) / (sqrt(n̂ + ε_root) + ε)``.

    ``m``, ``v`` and ``n`` average the gradient, its change since the last step
    (0 at the first step) and the square of the look-ahead gradient
    ``g + (1 − b2)·Δg``; hats are bias corrections. See :func:`gradtx.adan`.

    Args:
      b1, b2, b3: decays of ``m``, ``v``, ``n``, in [0, 1).
      eps, eps_root: ε >= 0 outside / inside the square root.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdanState`.
    """
    owner = "scale_by_adan"
    for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
        _validate.decay(owner, name, value)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)

    def init_fn(params):
        zeros = functools.partial(tree_zeros_like, params)
        return ScaleByAdanState(
            m=zeros(), v=zeros(), n=zeros(), g=zeros(), t=jnp.zeros([], jnp.int32)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdanState)
        first = state.t == 0
        t = _maths.safe_increment(state.t)
        c1, c2, c3 = (_maths.debias_factor(b, t) for b in (b1, b2, b3))

        def leaf(g, m, v, n, g_prev):
            diff = jnp.where(first, jnp.zeros_like(g), g - g_prev)
            m = _maths.ema(g, m, b1)
            v = _maths.ema(diff, v, b2)
            mix = _maths.one_minus(b2)
            n = _maths.ema_sq(g + mix * diff, n, b3)
            step = (m / c1 + mix * (v / c2)) / (jnp.sqrt(n / c3 + eps_root) + eps)
            return step, m, v, n, g

        updates, m, v, n, g = map_leaves(
            leaf,
            updates,
            state.m,
            state.v,
            state.n,
            state.g,
            names=["m", "v", "n", "g"],
            owner=owner,
            nout=5,
        )
        return updates, ScaleByAdanState(m=m, v=v, n=n, g=g, t=t)

    return elementwise(GradientTransformation(init_fn, update_fn))


class ScaleBySM3State(NamedTuple):
    """``mu``: per leaf, a list of accumulators, one vector per axis (one array
    like the leaf for rank <= 1); ``nu``: the momentum, like the params."""

    mu: Updates
    nu: Updates


def _sm3_shapes(shape):
    """The accumulators' shapes: one vector per axis, one scalar for a scalar."""
    return [(n,) for n in shape] if shape else [()]


def _sm3_cover(x):
    dtype, shape = dtype_of(x), jnp.shape(x)
    dims = [(i,) for i in range(len(shape))] if shape else [()]
    shapes = _sm3_shapes(shape)
    return [zeros_derived(x, s, dtype, d) for s, d in zip(shapes, dims, strict=True)]


def _sm3_leaf(g, mus, nu, *, b1, b2, eps):
    """Returns ``(update, [new accumulators], new momentum)`` for one array."""
    if g.ndim < 2:
        prev = mus[0]
    else:
        axes = [
            m.reshape([-1 if i == k else 1 for k in range(g.ndim)])
            for i, m in enumerate(mus)
        ]
        prev = functools.reduce(jnp.minimum, axes)
    if isinstance(b2, jax.core.Tracer):
        fresh = jnp.where(b2 == 1.0, 1.0, _maths.one_minus(b2))
    else:
        fresh = 1.0 if b2 == 1.0 else _maths.one_minus(b2)
    acc = fresh * _maths.abs_sq(g) + b2 * prev
    step = g * jnp.where(acc == 0, 0.0, jax.lax.rsqrt(acc + eps))  # NaN stays NaN
    nu = _maths.ema(step, nu, b1)
    if g.ndim < 2:
        return nu, [acc], nu
    rest = lambda i: tuple(k for k in range(g.ndim) if k != i)
    return nu, [jnp.max(acc, axis=rest(i), initial=0.0) for i in range(g.ndim)], nu


def scale_by_sm3(
    b1: chex.Numeric = 0.9, b2: chex.Numeric = 1.0, eps: chex.Numeric = 1e-8
) -> GradientTransformation:
    """SM3 scaling: Adagrad with one accumulator per row, column, … of each leaf.

    For a leaf of rank >= 2, ``ν = b2'·g² + b2·min_axes(μ)`` (``b2' = 1`` when
    ``b2 = 1``, else ``1 − b2``), ``μ_axis ← max`` of ``ν`` over the other axes;
    the step ``g/sqrt(ν + ε)`` (0 where ``ν = 0``) is averaged with momentum
    ``b1``. Leaves of rank <= 1 keep a full accumulator. See :func:`gradtx.sm3`.

    Args:
      b1: momentum decay, in [0, 1].
      b2: decay of the accumulators, in [0, 1]; 1 sums (SM3 proper).
      eps: ε >= 0 inside the square root.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleBySM3State`.
      Unlike Optax, scalar leaves (one accumulator of shape ``()``) and empty
      leaves of rank >= 2 work, and so do complex leaves (the accumulators hold
      ``|g|² = conj(g)·g``), which Optax rejects.
    """
    owner = "scale_by_sm3"
    _validate.decay(owner, "b1", b1, allow_one=True)
    _validate.decay(owner, "b2", b2, allow_one=True)
    _validate.non_negative(owner, "eps", eps)

    def init_fn(params):
        return ScaleBySM3State(
            mu=jax.tree.map(_sm3_cover, params), nu=tree_zeros_like(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleBySM3State)
        leaves, treedef = jax.tree.flatten(updates)
        mus = flatten_like(treedef, state.mu, name="mu", owner=owner)
        nus = flatten_like(treedef, state.nu, name="nu", owner=owner)
        out = []
        for path, g, mu, nu in zip(leaf_paths(updates), leaves, mus, nus, strict=True):
            want = _sm3_shapes(jnp.shape(g))
            got = (
                [jnp.shape(m) for m in mu]
                if isinstance(mu, (list, tuple))
                else jnp.shape(mu)
            )
            if got != want:
                raise _shape_error(owner, path, "mu", got, want)
            if jnp.shape(nu) != jnp.shape(g):
                raise _shape_error(owner, path, "nu", jnp.shape(nu), jnp.shape(g))
            u, new_mu, new_nu = _sm3_leaf(
                upcast(g), [upcast(m) for m in mu], upcast(nu), b1=b1, b2=b2, eps=eps
            )
            new_mu = [cast_to(a, dtype_of(m)) for a, m in zip(new_mu, mu, strict=True)]
            out.append((cast_to(u, dtype_of(g)), new_mu, cast_to(new_nu, dtype_of(nu))))
        u, mu, nu = _unflatten_columns(treedef, out, 3)
        return u, ScaleBySM3State(mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByRpropState(NamedTuple):
    """Per-coordinate step sizes and the previous step (0 after a sign change)."""

    step_sizes: Updates
    prev_updates: Updates


def scale_by_rprop(
    learning_rate: chex.Numeric,
    eta_minus: chex.Numeric = 0.5,
    eta_plus: chex.Numeric = 1.2,
    min_step_size: chex.Numeric = 1e-6,
    max_step_size: chex.Numeric = 50.0,
) -> GradientTransformation:
    """Rprop (iRprop⁻) scaling: ``u = Δ·sign(g)`` with a per-coordinate step ``Δ``.

    ``Δ`` grows by ``eta_plus`` while the gradient keeps its sign and shrinks
    by ``eta_minus`` (step skipped) when it flips, within
    ``[min_step_size, max_step_size]``. The update points *up* the gradient;
    :func:`gradtx.rprop` negates it.

    Differences from Optax 0.2.8, whose ``update`` returns the step computed at
    the *previous* call (all zeros at the first), a one-step lag (reported
    upstream as google-deepmind/optax#1725): gradtx returns the current step,
    as the paper and ``torch.optim.Rprop`` do. The step sizes and the state
    are the same as Optax's. The sign test uses ``sign(g)·sign(g_prev)``, not
    the product ``g·g_prev``, which can underflow to 0.

    Args:
      learning_rate: the initial step size ``Δ₀ > 0`` (a number).
      eta_minus: the shrink factor, in [0, 1].
      eta_plus: the growth factor, >= 1.
      min_step_size, max_step_size: the bounds of ``Δ``, ``0 <= min <= max``.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByRpropState`.
    """
    owner = "scale_by_rprop"
    _validate.positive(owner, "learning_rate", learning_rate)
    _validate.number(owner, "eta_minus", eta_minus, low=0.0, high=1.0)
    _validate.number(owner, "eta_plus", eta_plus, low=1.0)
    _validate.non_negative(owner, "min_step_size", min_step_size)
    low = 0.0 if isinstance(min_step_size, jax.core.Tracer) else float(min_step_size)
    _validate.number(owner, "max_step_size", max_step_size, low=low)

    def init_fn(params):
        return ScaleByRpropState(
            step_sizes=tree_full_like(params, learning_rate),
            prev_updates=tree_zeros_like(params),
        )

    def leaf(g, step, prev):
        agree = jnp.sign(g) * jnp.sign(prev)  # the sign of g·prev, without underflow
        factor = jnp.where(agree > 0, eta_plus, eta_minus)
        step = jnp.where(
            agree == 0, step, jnp.clip(step * factor, min_step_size, max_step_size)
        )
        u = jnp.where(agree < 0, jnp.zeros_like(g), step * jnp.sign(g))
        return u, step, u

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByRpropState)
        updates, steps, prev = map_leaves(
            leaf,
            updates,
            state.step_sizes,
            state.prev_updates,
            names=["step_sizes", "prev_updates"],
            owner=owner,
            nout=3,
            complex_ok="it compares the signs of successive gradients",
        )
        return updates, ScaleByRpropState(step_sizes=steps, prev_updates=prev)

    return elementwise(GradientTransformation(init_fn, update_fn))


class ScaleByOptimisticGradientState(NamedTuple):
    """Whether no update was made yet (bool) and the previous gradient."""

    is_initial_step: chex.Array
    previous_gradient: Updates


def scale_by_optimistic_gradient(
    alpha: chex.Numeric = 1.0, beta: chex.Numeric = 1.0
) -> GradientTransformation:
    """Optimistic gradient: ``u = (α + β)·g_t − β·g_{t−1}`` (``g_0 := g_1``).

    See :func:`gradtx.optimistic_gradient_descent` and
    :func:`gradtx.optimistic_adam_v2`.

    Args:
      alpha: α >= 0, the weight of the current gradient.
      beta: β >= 0, the weight of the optimistic correction ``g_t − g_{t−1}``.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleByOptimisticGradientState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_optimistic_gradient
      >>> tx = scale_by_optimistic_gradient()
      >>> s = tx.init(jnp.zeros(1))
      >>> u, s = tx.update(jnp.array([1.0]), s)  # the first step: g
      >>> u, s = tx.update(jnp.array([3.0]), s)  # then 2·3 − 1
      >>> u.tolist()
      [5.0]
    """
    owner = "scale_by_optimistic_gradient"
    _validate.non_negative(owner, "alpha", alpha)
    _validate.non_negative(owner, "beta", beta)

    def init_fn(params):
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.array(True), previous_gradient=tree_zeros_like(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByOptimisticGradientState)
        first = state.is_initial_step

        def leaf(g, prev):
            prev = jnp.where(first, g, prev)
            return (alpha + beta) * g - beta * prev, g

        updates, prev = map_leaves(
            leaf,
            updates,
            state.previous_gradient,
            names=["previous_gradient"],
            owner=owner,
            nout=2,
        )
        return updates, ScaleByOptimisticGradientState(jnp.array(False), prev)

    return elementwise(GradientTransformation(init_fn, update_fn))
