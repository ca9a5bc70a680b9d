r"""MADGRAD: momentumized, adaptive, dual-averaged gradient descent.

The params are a running mix of the current point and a dual-averaging
point :math:`z` computed from the initial params and weighted sums of the
gradients and of their squares (with a cube root, not Adam's square root).
The maths is per element, written for one array and lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves`.

Reference: Defazio & Jelassi, 2021, "Adaptivity without Compromise: A
Momentumized, Adaptive, Dual Averaged Gradient Method for Stochastic
Optimization", https://arxiv.org/abs/2101.11075.
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
    ScalarOrSchedule,
    Updates,
)
from .._core.base import check_state as _check_state
from .._core.lifting import (
    check_array_leaves,
    map_leaves,
    square_state_like,
    state_zeros_like,
)
from .._core.traits import elementwise
from ..combinators.chain import chain
from ..transforms.weight_decay import add_decayed_weights

__all__ = ["MadgradState", "madgrad", "scale_by_madgrad"]


class MadgradState(NamedTuple):
    """Optax's MADGRAD state: the step count :math:`k` (int32, saturating), the
    weighted sums :math:`G_k` of squared gradients and :math:`s_k` of
    gradients, and the initial params :math:`x_0`."""

    count: chex.Array
    grad_sum_sq: Updates
    s: Updates
    x0: Updates


def _check(owner, learning_rate, momentum, eps):
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    _validate.decay(owner, "momentum", momentum)
    _validate.positive(owner, "eps", eps)


def scale_by_madgrad(
    learning_rate: ScalarOrSchedule,
    momentum: chex.Numeric = 0.9,
    eps: chex.Numeric = 1e-6,
) -> GradientTransformation:
    r"""MADGRAD's step, returned as the displacement :math:`x_{k+1} - x_k`.

    The learning rate is part of the rule (it weights the sums), so it is an
    argument here and the output is added to the params as is. See
    :func:`gradtx.contrib.madgrad` for the update rule and the reference.

    Args:
      learning_rate: :math:`\gamma`, a number >= 0 or a schedule of the step.
      momentum: :math:`\beta` in [0, 1), the weight of the current point.
      eps: :math:`\epsilon > 0`, added to the learning rate and to the cube root.

    Returns:
      A :class:`GradientTransformation` with state :class:`MadgradState`;
      ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib import scale_by_madgrad
      >>> tx = scale_by_madgrad(learning_rate=1.0, momentum=0.0)
      >>> p = jnp.zeros(2)
      >>> u, _ = tx.update(jnp.array([8.0, -1.0]), tx.init(p), p)
      >>> [round(x, 4) for x in u.tolist()]  # -γg / (γg²)^(1/3) on the first step
      [-2.0, 1.0]
    """
    owner = "scale_by_madgrad"
    _check(owner, learning_rate, momentum, eps)

    def init_fn(params):
        params = check_array_leaves(params)
        return MadgradState(
            count=jnp.zeros([], jnp.int32),
            grad_sum_sq=square_state_like(params),
            s=state_zeros_like(params),
            x0=jax.tree.map(jnp.copy, params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _check_state(owner, state, MadgradState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        # Array sums, so that inject_hyperparams (float32 arrays) and Python
        # floats round alike.
        lamb = (jnp.asarray(lr) + jnp.asarray(eps)) * jnp.sqrt(state.count + 1)

        def leaf(g, p, x0, big_g, s):
            big_g = big_g + lamb * _maths.abs_sq(g)
            s = s + lamb * g
            z = x0 - s / (jnp.cbrt(jnp.real(big_g)) + eps)
            new_p = _maths.one_minus(momentum) * z + momentum * p
            return new_p - p, p, x0, big_g, s

        updates, _, _, big_g, s = map_leaves(
            leaf,
            updates,
            params,
            state.x0,
            state.grad_sum_sq,
            state.s,
            names=["params", "x0", "grad_sum_sq", "s"],
            owner=owner,
            nout=5,
        )
        count = _maths.safe_increment(state.count)
        return updates, MadgradState(count, big_g, s, state.x0)

    return elementwise(GradientTransformation(init_fn, update_fn))


def madgrad(
    learning_rate: ScalarOrSchedule,
    momentum: chex.Numeric = 0.9,
    weight_decay: chex.Numeric = 0.0,
    eps: chex.Numeric = 1e-6,
) -> GradientTransformation:
    r"""MADGRAD, a dual-averaging optimizer with momentum and cube-root adaptivity.

    With :math:`g_k` the gradient (plus :math:`\lambda x_k` with weight decay),
    :math:`\lambda_k = (\gamma_k + \epsilon)\sqrt{k + 1}` for
    :math:`k = 0, 1, \dots` and :math:`G_0 = s_0 = 0`:

    .. math::
        G_{k+1} &= G_k + \lambda_k\, g_k^2, \qquad
        s_{k+1} = s_k + \lambda_k\, g_k, \\
        z_{k+1} &= x_0 - \frac{s_{k+1}}{G_{k+1}^{1/3} + \epsilon}, \qquad
        x_{k+1} = \beta\, x_k + (1 - \beta)\, z_{k+1}

    element by element (:math:`|g_k|^2` for complex leaves). The growing
    weights :math:`\lambda_k` put more weight on recent gradients, and the
    momentum :math:`\beta` averages the dual-averaging iterates :math:`z`
    (the paper's :math:`c_{k+1} = 1 - \beta`). As in the authors' PyTorch
    code, :math:`\epsilon` is added to the learning rate too.

    Reference: Defazio & Jelassi, 2021, "Adaptivity without Compromise: A
    Momentumized, Adaptive, Dual Averaged Gradient Method for Stochastic
    Optimization".

    Args:
      learning_rate: :math:`\gamma`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1).
      weight_decay: :math:`\lambda >= 0`, added to the gradient as
        :math:`\lambda x_k` (coupled L2).
      eps: :math:`\epsilon > 0`.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import madgrad
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> opt = madgrad(learning_rate=0.1)
      >>> params = jnp.zeros(3)
      >>> state = opt.init(params)
      >>> for _ in range(300):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(f(params) < 1e-3)
      True
    """
    _check("madgrad", learning_rate, momentum, eps)
    _validate.non_negative("madgrad", "weight_decay", weight_decay)
    return chain(
        add_decayed_weights(weight_decay),
        scale_by_madgrad(learning_rate=learning_rate, momentum=momentum, eps=eps),
    )
