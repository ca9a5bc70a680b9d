r"""ACProp: AdaBelief's centred second moment, applied asynchronously.

The step divides the current gradient by the root of the second moment of
the prediction errors *up to the previous step*, so that numerator and
denominator are independent. The maths is per element, written for one array
and lifted to pytrees by :func:`gradtx._core.lifting.map_leaves`.

Reference: Zhuang, Ding, Tang, Dvornek, Tatikonda & Duncan, 2021, "Momentum
Centering and Asynchronous Update for Adaptive Gradient Methods",
https://arxiv.org/abs/2110.05454.
"""

from typing import Any

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule, check_state
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import elementwise
from ..combinators.chain import chain
from ..transforms.adam import check_adam_args
from ..transforms.belief import ScaleByBeliefState
from ..transforms.scaling import scale_by_learning_rate
from ..transforms.weight_decay import add_decayed_weights

__all__ = ["acprop", "scale_by_acprop"]


def scale_by_acprop(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-16,
    eps_root: chex.Numeric = 1e-16,
) -> GradientTransformation:
    r"""ACProp's scaling: ``u = g / (sqrt(ŝ_{t−1}) + ε)`` (``ŝ_0 = 1``).

    See :func:`gradtx.contrib.acprop` for the update rule and the reference.
    The state is :class:`gradtx.ScaleByBeliefState` (AdaBelief's), as in Optax.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment of the prediction error, in [0, 1).
      eps: :math:`\epsilon >= 0` added outside the square root.
      eps_root: :math:`\bar\epsilon >= 0` added to :math:`s` at every step.

    Returns:
      A :class:`GradientTransformation` with state ``ScaleByBeliefState``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib import scale_by_acprop
      >>> tx = scale_by_acprop()
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.array([3.0, -2.0]), state)
      >>> u.tolist()  # ŝ_0 = 1: the first update is the gradient
      [3.0, -2.0]
    """
    owner = "scale_by_acprop"
    check_adam_args(owner, b1, b2, eps, eps_root)

    def init_fn(params):
        return ScaleByBeliefState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params),
            nu=square_state_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByBeliefState)
        first = state.count == 0
        debias = _maths.debias_factor(b2, jnp.where(first, 1, state.count))

        def leaf(g, mu, nu):
            nu_hat = jnp.where(first, 1.0, nu / debias)
            step = g / (jnp.sqrt(nu_hat) + eps)
            new_nu = _maths.ema_sq(g - mu, nu, b2) + eps_root
            return step, _maths.ema(g, mu, b1), new_nu

        updates, mu, nu = map_leaves(
            leaf, updates, state.mu, state.nu, names=["mu", "nu"], owner=owner, nout=3
        )
        count = _maths.safe_increment(state.count)
        return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))


def acprop(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-16,
    eps_root: chex.Numeric = 1e-16,
    weight_decay: chex.Numeric = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    r"""ACProp: AdaBelief's centred second moment in an asynchronous update.

    With :math:`m_0 = s_0 = 0` and :math:`t = 1, 2, \dots`:

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        s_t = \beta_2 s_{t-1} + (1 - \beta_2)\, (g_t - m_{t-1})^2
            + \bar\epsilon, \\
        \hat s_{t-1} &= \frac{s_{t-1}}{1 - \beta_2^{t-1}}
            \quad (\hat s_0 = 1), \qquad
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{g_t}{\sqrt{\hat s_{t-1}} + \epsilon} + \lambda \theta_{t-1}\right)

    (:math:`|g_t - m_{t-1}|^2` for complex leaves). The step uses the
    gradient itself, not the momentum, over a denominator that has not seen
    :math:`g_t` yet ("asynchronous"); the second moment tracks the squared
    error of the *previous* momentum as a prediction of the gradient, as in
    the authors' code. The momentum :math:`m` is kept only to centre
    :math:`s`. Weight decay :math:`\lambda` is decoupled (added after the
    scaling) and multiplied by the learning rate.

    Reference: Zhuang et al., 2021, "Momentum Centering and Asynchronous
    Update for Adaptive Gradient Methods".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: :math:`\epsilon >= 0`, outside the square root.
      eps_root: :math:`\bar\epsilon >= 0`, added to :math:`s_t`.
      weight_decay: :math:`\lambda >= 0`.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Returns:
      A :class:`GradientTransformation`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import acprop
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> opt = acprop(learning_rate=0.05)
      >>> params = jnp.zeros(3)
      >>> state = opt.init(params)
      >>> for _ in range(300):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(f(params) < 1e-2)
      True
    """
    check_adam_args("acprop", b1, b2, eps, eps_root)
    _validate.scalar_or_schedule("acprop", "learning_rate", learning_rate)
    _validate.scalar_or_schedule("acprop", "weight_decay", weight_decay)
    return chain(
        scale_by_acprop(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
