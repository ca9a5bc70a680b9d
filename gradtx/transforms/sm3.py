"""SM3's scaling: second moments covered by per-axis accumulators (memory-efficient)."""

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    cast_to,
    dtype_of,
    flatten_like,
    leaf_paths,
    shape_error,
    tree_zeros_like,
    unflatten_columns,
    upcast,
)
from .._core.placement import zeros_derived


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
                raise shape_error(owner, path, "mu", got, want)
            if jnp.shape(nu) != jnp.shape(g):
                raise shape_error(owner, path, "nu", jnp.shape(nu), jnp.shape(g))
            u, new_mu, new_nu = _sm3_leaf(
                upcast(g), [upcast(m) for m in mu], upcast(nu), b1=b1, b2=b2, eps=eps
            )
            new_mu = [cast_to(a, dtype_of(m)) for a, m in zip(new_mu, mu, strict=True)]
            out.append((cast_to(u, dtype_of(g)), new_mu, cast_to(new_nu, dtype_of(nu))))
        u, mu, nu = unflatten_columns(treedef, out, 3)
        return u, ScaleBySM3State(mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
