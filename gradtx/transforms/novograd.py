"""NovoGrad's scaling: Adam-like moments with one second moment per leaf.

The second moment is the EMA of the squared norm of each leaf's gradient, so
the state's shape is not the leaf's: the trees are flattened here with the
same checks and casting rules as :func:`gradtx._core.lifting.map_leaves`
(structure and shapes checked by leaf path, float32 arithmetic for bfloat16
and float16, every state leaf written back in its own dtype). The update rule
and the reference are in :func:`gradtx.novograd`.
"""

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
    shape_error,
    state_zeros_like,
    unflatten_columns,
    upcast,
)


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
                raise shape_error(owner, path, "nu", jnp.shape(nu), "()")
            for name, x in (("mu", mu), ("params", p)):
                if jnp.shape(x) != jnp.shape(g):
                    raise shape_error(owner, path, name, jnp.shape(x), jnp.shape(g))
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
        u, mu, nu = unflatten_columns(treedef, out, 3)
        count = _maths.safe_increment(state.count)
        return u, ScaleByNovogradState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)
