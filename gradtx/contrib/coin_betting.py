r"""COCOB-Backprop: learning-rate-free descent by continuous coin betting.

Each coordinate is a gambler that bets a fraction of its wealth (the initial
endowment plus everything it has won) on the sign of the next negative
gradient; the bet *is* the displacement of the parameter from its starting
point. The maths is per coordinate, so it is written for one array and lifted
to pytrees by :func:`gradtx._core.lifting.map_leaves`.

Reference: Orabona & Tommasi, 2017, "Training Deep Networks without Learning
Rates Through Coin Betting" (Algorithm 2), https://arxiv.org/abs/1705.07795.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    ScalarOrSchedule,
    Updates,
)
from .._core.base import check_state as _check_state
from .._core.lifting import check_array_leaves, map_leaves, square_state_like
from .._core.traits import elementwise
from ..combinators.chain import chain
from ..transforms.scaling import scale_by_learning_rate
from ..transforms.weight_decay import add_decayed_weights

__all__ = ["COCOBState", "cocob", "scale_by_cocob"]

_NO_COMPLEX = "COCOB's reward max(R - g·(θ - θ₀), 0) needs an ordering of g"


class COCOBState(NamedTuple):
    r"""Per coordinate, with Optax's field names.

    Attributes:
      init_particles: the starting point :math:`\theta_0` (the params at ``init``).
      cumulative_gradients: :math:`C_t = -\sum_{k \le t} g_k`.
      scale: :math:`L_t = \max(\epsilon, \max_{k \le t} |g_k|)`.
      subgradients: :math:`G_t = \sum_{k \le t} |g_k|`.
      reward: :math:`R_t`, the gambler's winnings (never negative).
    """

    init_particles: Updates
    cumulative_gradients: Updates
    scale: Updates
    subgradients: Updates
    reward: Updates


def scale_by_cocob(
    alpha: chex.Numeric = 100.0, eps: chex.Numeric = 1e-8
) -> GradientTransformation:
    r"""The COCOB-Backprop step, returned as the displacement of the params.

    Unlike most scalings, the output is not a rescaled gradient but
    :math:`\theta_{t+1} - \theta_t` itself (add it to the params; do not
    multiply it by a negative learning rate). See :func:`gradtx.contrib.cocob`
    for the update rule and the reference.

    Args:
      alpha: :math:`\alpha > 0`, which caps the fraction of the wealth bet
        while few gradients have been seen (the paper uses 100).
      eps: :math:`\epsilon > 0`, the starting value of the running maximum
        :math:`L` of ``|g|`` (so that an all-zero gradient divides nothing by
        zero).

    Returns:
      A :class:`GradientTransformation` with state :class:`COCOBState`;
      ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib import scale_by_cocob
      >>> tx = scale_by_cocob(alpha=100.0)
      >>> params = jnp.zeros(2)
      >>> u, _ = tx.update(jnp.array([2.0, -0.5]), tx.init(params), params)
      >>> u.tolist()  # C/(L·max(G + L, αL))·L = -g/(α|g|) on the first step
      [-0.009999999776482582, 0.009999999776482582]
    """
    owner = "scale_by_cocob"
    _validate.positive(owner, "alpha", alpha)
    _validate.positive(owner, "eps", eps)

    def init_fn(params):
        params = check_array_leaves(params)
        # Sums of |g| and a running max: float32 for float16 params, whose
        # range would lose eps (underflow) and long sums (overflow).
        # A new buffer each (a jitted step may donate params and state).
        return COCOBState(
            init_particles=jax.tree.map(jnp.copy, params),
            cumulative_gradients=square_state_like(params),
            scale=square_state_like(params, fill=eps),
            subgradients=square_state_like(params),
            reward=square_state_like(params),
        )

    def leaf(g, p, p0, c, lmax, gsum, r):
        lmax = jnp.maximum(lmax, jnp.abs(g))
        gsum = gsum + jnp.abs(g)
        r = jnp.maximum(r - g * (p - p0), 0.0)
        c = c - g
        bet = c / (lmax * jnp.maximum(gsum + lmax, alpha * lmax)) * (lmax + r)
        return (p0 + bet) - p, p, p0, c, lmax, gsum, r

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _check_state(owner, state, COCOBState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        updates, _, _, c, lmax, gsum, r = map_leaves(
            leaf,
            updates,
            params,
            state.init_particles,
            state.cumulative_gradients,
            state.scale,
            state.subgradients,
            state.reward,
            names=[
                "params",
                "init_particles",
                "cumulative_gradients",
                "scale",
                "subgradients",
                "reward",
            ],
            owner=owner,
            nout=7,
            complex_ok=_NO_COMPLEX,
        )
        return updates, COCOBState(state.init_particles, c, lmax, gsum, r)

    return elementwise(GradientTransformation(init_fn, update_fn))


def cocob(
    learning_rate: ScalarOrSchedule = 1.0,
    alpha: chex.Numeric = 100.0,
    eps: chex.Numeric = 1e-8,
    weight_decay: chex.Numeric = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    r"""COCOB-Backprop (COntinuous COin Betting), a learning-rate-free optimizer.

    With :math:`g_t` the gradient (plus :math:`\lambda\theta_t` with weight
    decay, then times :math:`\eta_t`), every coordinate keeps
    :math:`L_0 = \epsilon` and :math:`C_0 = G_0 = R_0 = 0`, and at each step

    .. math::
        L_t &= \max(L_{t-1}, |g_t|), \qquad G_t = G_{t-1} + |g_t|, \\
        R_t &= \max\big(R_{t-1} - g_t(\theta_t - \theta_0),\ 0\big), \qquad
        C_t = C_{t-1} - g_t, \\
        \theta_{t+1} &= \theta_0 + \frac{C_t}{L_t \max(G_t + L_t,\ \alpha L_t)}
            \,(L_t + R_t).

    :math:`L_t + R_t` is the gambler's wealth (an endowment of :math:`L_t`
    plus the reward :math:`R_t` won so far), :math:`C_t / (L_t \max(\cdot))`
    the signed fraction of it bet; :math:`\alpha` limits that fraction during
    the first steps, while :math:`G_t` is still small. No step size is tuned:
    ``learning_rate`` only rescales the gradients fed to the bettor (1 by
    default; a schedule here acts like a gradient scaling).

    Reference: Orabona & Tommasi, 2017, "Training Deep Networks without
    Learning Rates Through Coin Betting", Algorithm 2 (COCOB-Backprop).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule, multiplying the
        gradients before the bet.
      alpha: :math:`\alpha > 0`, see :func:`scale_by_cocob`.
      eps: :math:`\epsilon > 0`, the initial :math:`L`.
      weight_decay: :math:`\lambda >= 0`, added to the gradient as
        :math:`\lambda\theta_t` (coupled L2).
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import cocob
      >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
      >>> opt = cocob()
      >>> params = jnp.zeros(2)
      >>> state = opt.init(params)
      >>> for _ in range(200):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(f(params) < 1e-2)
      True
    """
    owner = "cocob"
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    _validate.positive(owner, "alpha", alpha)
    _validate.positive(owner, "eps", eps)
    _validate.non_negative(owner, "weight_decay", weight_decay)
    return chain(
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_cocob(alpha, eps),
    )
