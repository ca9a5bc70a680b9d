r"""L-BFGS preconditioning: multiply the update by an inverse-Hessian estimate.

The estimate is built from the last ``memory_size`` pairs :math:`(s_i, y_i)`
of parameter and update differences, kept in stacked buffers (leading axis of
length ``memory_size``) used as a ring: pair :math:`k` lives in slot
:math:`k \bmod m`. The product with the update is the classic two-loop
recursion, each loop a ``lax.scan`` over the slots from newest to oldest and
back. The full rule and references are in :func:`gradtx.lbfgs`.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    Params,
    Updates,
    check_state,
)
from .._core.lifting import map_leaves, tree_zeros_like
from .._core.maths import safe_increment
from .._core.placement import zeros_derived
from .._core.traits import elementwise
from .backtracking import tree_add_scale, tree_sq_norm, tree_vdot


class ScaleByLBFGSState(NamedTuple):
    """Step count, last params and updates, and the memory of differences.

    ``diff_params_memory`` and ``diff_updates_memory`` are trees like the
    params with a leading axis of length ``memory_size`` (the ring of
    :math:`s_i = w_{i+1} - w_i` and :math:`y_i = g_{i+1} - g_i`);
    ``weights_memory`` holds :math:`\\rho_i = 1 / \\langle y_i, s_i\\rangle`
    (0 for an empty slot).
    """

    count: chex.Array
    params: Params
    updates: Updates
    diff_params_memory: chex.ArrayTree
    diff_updates_memory: chex.ArrayTree
    weights_memory: chex.Array


def _two_loop(g, s_mem, y_mem, rho, gamma, oldest, owner):
    """``H g`` by the two-loop recursion; slots visited newest to oldest, then back."""
    m = rho.shape[0]
    order = (oldest + jnp.arange(m)) % m  # oldest pair first
    slot = lambda mem, i: jax.tree.map(lambda x: x[i], mem)
    vdot = lambda a, b: tree_vdot(a, b, owner=owner, name="memory", ref="updates")

    def backward(q, i):
        alpha = rho[i] * vdot(slot(s_mem, i), q)
        return tree_add_scale(q, -alpha, slot(y_mem, i)), alpha

    q, alphas = jax.lax.scan(backward, g, order, reverse=True)
    r = map_leaves(lambda x: gamma * x, q, owner=owner)

    def forward(r, i_alpha):
        i, alpha = i_alpha
        beta = rho[i] * vdot(slot(y_mem, i), r)
        return tree_add_scale(r, alpha - beta, slot(s_mem, i)), None

    r, _ = jax.lax.scan(forward, r, (order, alphas))
    return r


def scale_by_lbfgs(
    memory_size: int = 10,
    scale_init_precond: bool = True,
) -> GradientTransformation:
    r"""Multiplies updates by the L-BFGS inverse-Hessian estimate: ``u = H_k g``.

    First stores the newest pair :math:`(s, y) = (w_k - w_{k-1}, g_k -
    g_{k-1})` (nothing at the first step), then applies the two-loop
    recursion from :math:`H^0_k = \gamma_k I`, with :math:`\gamma_k =
    \langle s, y\rangle / \langle y, y\rangle` when ``scale_init_precond``
    (1 if :math:`y = 0`; at the first step :math:`\min(1, 1/\|g_0\|)`, so the
    first step has length at most 1), else 1. A pair with
    :math:`\langle y, s\rangle = 0` gets weight 0 (it is ignored). The result
    is a descent direction with the sign of the gradient: follow it with a
    negative scaling and, usually, a line search, as :func:`gradtx.lbfgs`
    does, which also gives the full rule and references.

    Args:
      memory_size: the number :math:`m` >= 1 of pairs kept.
      scale_init_precond: use the scaled identity :math:`\gamma_k I`.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByLBFGSState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_lbfgs
      >>> tx = scale_by_lbfgs(memory_size=3)
      >>> w = jnp.array([1.0, 2.0])
      >>> u, state = tx.update(jnp.array([3.0, 4.0]), tx.init(w), w)
      >>> u.tolist()  # first step: the gradient over its norm (5)
      [0.6000000238418579, 0.800000011920929]
    """
    owner = "scale_by_lbfgs"
    _validate.integer(owner, "memory_size", memory_size, low=1)
    _validate.flag(owner, "scale_init_precond", scale_init_precond)
    m = int(memory_size)

    def init_fn(params):
        ring = jax.tree.map(
            lambda x: zeros_derived(
                x,
                (m, *jnp.shape(x)),
                jnp.result_type(x),
                (None, *range(jnp.ndim(x))),
            ),
            params,
        )
        return ScaleByLBFGSState(
            count=jnp.zeros([], jnp.int32),
            params=tree_zeros_like(params),
            updates=tree_zeros_like(params),
            diff_params_memory=ring,
            diff_updates_memory=ring,
            weights_memory=jnp.zeros(m, jnp.result_type(float)),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, ScaleByLBFGSState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        first = state.count == 0
        oldest = state.count % m  # the slot the newest pair overwrites next time
        slot = (state.count - 1) % m
        # The newest pair (zero at the first step, where there is no previous).
        sub = lambda a, b: jnp.where(first, jnp.zeros_like(a - b), a - b)
        s = map_leaves(sub, params, state.params, names=["state.params"], owner=owner)
        y = map_leaves(
            sub, updates, state.updates, names=["state.updates"], owner=owner
        )
        sy = tree_vdot(y, s, owner=owner, name="params", ref="updates")
        rho = jnp.where(first | (sy == 0.0), 0.0, 1.0 / sy)
        write = lambda mem, new: jax.tree.map(
            lambda x, v: x.at[slot].set(v.astype(x.dtype)), mem, new
        )
        s_mem = write(state.diff_params_memory, s)
        y_mem = write(state.diff_updates_memory, y)
        rho_mem = state.weights_memory.at[slot].set(rho)

        if scale_init_precond:
            yy = tree_sq_norm(y)
            gamma = jnp.where(yy > 0.0, sy / yy, 1.0)
            g_norm = jnp.sqrt(tree_sq_norm(jax.lax.stop_gradient(updates)))
            gamma = jnp.where(first, jnp.minimum(1.0, 1.0 / g_norm), gamma)
        else:
            gamma = 1.0
        direction = _two_loop(updates, s_mem, y_mem, rho_mem, gamma, oldest, owner)
        cast = lambda tree, like: jax.tree.map(
            lambda a, b: jnp.asarray(a).astype(jnp.result_type(b)), tree, like
        )
        new_state = ScaleByLBFGSState(
            count=safe_increment(state.count),
            params=cast(params, state.params),
            updates=cast(updates, state.updates),
            diff_params_memory=s_mem,
            diff_updates_memory=y_mem,
            weights_memory=rho_mem,
        )
        return cast(direction, updates), new_state

    return elementwise(GradientTransformation(init_fn, update_fn))
