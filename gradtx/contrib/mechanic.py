r"""Mechanic: a learned global scale for the steps of any base optimizer.

The wrapper keeps the base optimizer's accumulated steps :math:`\Delta_t`
(recomputed from :math:`\theta_t = \theta_0 - s_t \Delta_t`, so no extra
buffer beyond :math:`\theta_0`) and learns the scale :math:`s` by online
betting on the correlation between the gradient and :math:`\Delta`, for
several momentum-like decays at once.

Reference: Cutkosky, Defazio & Mehta, 2023, "Mechanic: A Learning Rate
Tuner", https://arxiv.org/abs/2306.00144.
"""

from typing import NamedTuple

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
from .._core.lifting import check_array_leaves, global_norm, map_leaves
from .distance_over_gradients import scalar_state_dtype

__all__ = ["MechanicState", "mechanize"]


class MechanicState(NamedTuple):
    """Optax's Mechanic state: the base optimizer's state, the step count
    (int32, saturating), the per-decay vectors ``r`` (reward), ``m`` (max of
    ``|h|``), ``v`` (sum of ``h²``) and ``s`` (scale), each of shape
    ``(num_betas,)``, and the reference point ``x0``."""

    base_optimizer_state: OptState
    count: chex.Array
    r: chex.Array
    m: chex.Array
    v: chex.Array
    s: chex.Array
    x0: Updates


def _real_dot(a_leaves, b_leaves):
    total = jnp.zeros((), jnp.float32)
    for a, b in zip(a_leaves, b_leaves, strict=True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        total = total + jnp.sum(jnp.real(jnp.conj(a) * b))
    return total


def mechanize(
    base_optimizer: GradientTransformation,
    weight_decay: chex.Numeric = 1e-2,
    eps: chex.Numeric = 1e-8,
    s_init: chex.Numeric = 1e-6,
    num_betas: int = 6,
) -> GradientTransformation:
    r"""Wraps ``base_optimizer`` so that Mechanic learns the scale of its steps.

    With :math:`u_t` the base optimizer's update for the gradient :math:`g_t`
    (a descent step, e.g. :math:`-\eta\hat m_t`), :math:`S_t = \sum_i s_{t,i}`
    and betas :math:`\beta_i = 1 - 10^{-i}`, :math:`i = 1 … n`:

    .. math::
        \Delta_{t-1} &= (\theta_0 - \theta_t) / (S_t + \epsilon), \qquad
        \Delta_t = \Delta_{t-1} - u_t, \\
        \tilde g_t &= g_t + \lambda S_t \frac{\|g_t\|}{\|\theta_t\| + \epsilon}
            \theta_t, \qquad h_t = \langle \tilde g_t, \Delta_{t-1} \rangle, \\
        m_{t,i} &= \max(\beta_i m_{t-1,i},\ |h_t| + \epsilon), \qquad
        v_{t,i} = \beta_i^2 v_{t-1,i} + h_t^2, \\
        r_{t,i} &= \beta_i r_{t-1,i} + \operatorname{clip}(h_t, \pm m_{t-1,i})\,
            s_{t,i}, \qquad
        s_{t+1,i} = \frac{\frac{s_{\text{init}}}{n} m_{t,i} + \max(r_{t,i}, 0)}
            {\sqrt{v_{t,i}} + \epsilon}, \\
        \theta_{t+1} &= \theta_0 - S_{t+1}\, \Delta_t

    with norms and the inner product over the whole tree (its real part for
    complex leaves) and :math:`\theta_0` the params at the first ``update``
    (not at ``init``, so that weights loaded after ``init`` count). The
    weight decay :math:`\lambda` acts only on Mechanic's own gradient
    :math:`\tilde g` (the base optimizer sees :math:`g_t`); the clipping of
    :math:`h_t` came after the paper, in its authors' code. Keep the base
    optimizer's learning rate (or schedule peak) at about 1: Mechanic finds
    the scale.

    Reference: Cutkosky, Defazio & Mehta, 2023, "Mechanic: A Learning Rate
    Tuner".

    Args:
      base_optimizer: the optimizer whose steps are scaled (any
        :class:`GradientTransformation`; extra ``update`` arguments reach it).
      weight_decay: :math:`\lambda >= 0`, see above.
      eps: :math:`\epsilon > 0`.
      s_init: :math:`s_{\text{init}} > 0`, the initial total scale is
        :math:`n s_{\text{init}}`.
      num_betas: :math:`n >= 1`, the number of decays run in parallel.

    Returns:
      A :class:`GradientTransformation` with state :class:`MechanicState`;
      ``update`` needs ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import mechanize
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> opt = mechanize(gradtx.sgd(learning_rate=1.0))
      >>> params = jnp.zeros(3)
      >>> state = opt.init(params)
      >>> for _ in range(200):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(f(params) < 1e-2)
      True
    """
    owner = "mechanize"
    if not (hasattr(base_optimizer, "init") and hasattr(base_optimizer, "update")):
        raise TypeError(
            f"{owner}: `base_optimizer` must be a GradientTransformation "
            f"(init, update), got {type(base_optimizer).__name__}."
        )
    _validate.non_negative(owner, "weight_decay", weight_decay)
    _validate.positive(owner, "eps", eps)
    _validate.positive(owner, "s_init", s_init)
    _validate.integer(owner, "num_betas", num_betas, low=1)
    num_betas = int(num_betas)
    base = with_extra_args_support(base_optimizer)

    def init_fn(params):
        params = check_array_leaves(params)
        dtype = scalar_state_dtype(params)
        zeros = jnp.zeros([num_betas], dtype)
        return MechanicState(
            base_optimizer_state=base.init(params),
            count=jnp.zeros([], jnp.int32),
            r=zeros,
            m=zeros,
            v=zeros,
            s=jnp.full([num_betas], s_init, dtype),
            x0=jax.tree.map(jnp.copy, params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, MechanicState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        base_updates, base_state = base.update(
            updates, state.base_optimizer_state, params, **extra_args
        )
        first = state.count == 0
        x0 = map_leaves(
            lambda p, x: jnp.where(first, p, x),
            params,
            state.x0,
            names=["x0"],
            owner=owner,
        )
        s_sum = jnp.sum(state.s)
        decay = (
            weight_decay * s_sum * global_norm(updates) / (global_norm(params) + eps)
        )
        names = ["params", "x0", "base optimizer updates"]

        def leaf(g, p, x, u):
            g = g + decay * p
            delta_prev = (x - p) / (s_sum + eps)
            return g, p, x, u, delta_prev, delta_prev - u

        g_wd, _, _, _, delta_prev, delta = map_leaves(
            leaf, updates, params, x0, base_updates, names=names, owner=owner, nout=6
        )
        h = _real_dot(jax.tree.leaves(g_wd), jax.tree.leaves(delta_prev))
        dtype = state.s.dtype
        betas = jnp.array([1.0 - 0.1**i for i in range(1, num_betas + 1)], dtype)
        clipped = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + eps)
        v = betas**2 * state.v + h**2
        r = betas * state.r + clipped * state.s
        wealth = (s_init / num_betas) * m + jnp.maximum(0.0, r)
        s = (wealth / (jnp.sqrt(v) + eps)).astype(dtype)
        total = jnp.sum(s)
        new_updates = map_leaves(
            lambda g, d, x, p: (x - total * d) - p,
            updates,
            delta,
            x0,
            params,
            names=["delta", "x0", "params"],
            owner=owner,
        )
        new_state = MechanicState(
            base_optimizer_state=base_state,
            count=_maths.safe_increment(state.count),
            r=r.astype(dtype),
            m=m.astype(dtype),
            v=v.astype(dtype),
            s=s,
            x0=x0,
        )
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)
