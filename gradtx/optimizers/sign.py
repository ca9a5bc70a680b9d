"""Sign-based optimizers: signSGD, Signum, Lion."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.moments import ema
from ..transforms.scaling import learning_rate_step
from ..transforms.sign import scale_by_lion, scale_by_sign
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    r"""signSGD: gradient descent on the sign of each gradient coordinate.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \operatorname{sign}(g_t)

    Every coordinate moves by exactly :math:`\eta_t` (or not at all where the
    gradient is zero), whatever the gradient's magnitude.

    References: Bernstein et al., 2018, "signSGD: Compressed Optimisation for
    Non-Convex Problems"; Balles et al., 2020, "The Geometry of Sign Gradient
    Descent".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import sign_sgd
      >>> opt = sign_sgd(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([-5.0, 0.0, 1e-3]), opt.init(jnp.zeros(3)))
      >>> u.tolist()  # -0.1 * sign(g)
      [0.10000000149011612, -0.0, -0.10000000149011612]
    """
    return chain(scale_by_sign(), learning_rate_step("sign_sgd", learning_rate))


@_validate.in_callers_words()
def signum(
    learning_rate: ScalarOrSchedule,
    beta: chex.Numeric = 0.9,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Signum: signSGD on an exponential moving average of the gradients.

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t, \qquad
        \theta_t = \theta_{t-1} - \eta_t \operatorname{sign}(m_t)

    with :math:`m_0 = 0`. The average is not bias-corrected: dividing by
    :math:`1-\beta^t > 0` would not change its sign.

    References: Bernstein et al., 2018, "signSGD: Compressed Optimisation for
    Non-Convex Problems"; Zhao et al., 2024, "Deconstructing What Makes a Good
    Optimizer for Language Models".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      beta: :math:`\beta`, the decay of the average, in [0, 1].
      accumulator_dtype: dtype of the average (default: the params').

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import signum
      >>> opt = signum(learning_rate=0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> _, state = opt.update(jnp.array([1.0]), state)
      >>> u, _ = opt.update(jnp.array([-0.5]), state)  # m = 0.09 - 0.05 > 0
      >>> round(float(u[0]), 4)
      -0.1
    """
    _validate.decay("signum", "beta", beta, allow_one=True)
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        learning_rate_step("signum", learning_rate),
    )


@_validate.in_callers_words()
def lion(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    r"""Lion (EvoLved Sign Momentum), with decoupled weight decay.

    .. math::
        c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        \theta_t = \theta_{t-1}
            - \eta_t \left(\operatorname{sign}(c_t) + \lambda \theta_{t-1}\right),
        \\
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    with :math:`m_0 = 0` and :math:`\lambda` = ``weight_decay``. The step
    blends the gradient with the momentum of the *previous* step; only the
    momentum is stored, so Lion needs half of Adam's memory. Its steps have
    unit size per coordinate, so its learning rate is usually 3–10× smaller
    than AdamW's and its weight decay as much larger (the decay is multiplied
    by the learning rate, as in PyTorch).

    Reference: Chen et al., 2023, "Symbolic Discovery of Optimization
    Algorithms".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1`, the weight of the momentum in the step, in [0, 1].
      b2: :math:`\beta_2`, the decay of the momentum, in [0, 1].
      mu_dtype: dtype of the momentum (default: the params').
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import lion
      >>> params = jnp.array([1.0, -2.0])
      >>> opt = lion(learning_rate=0.1, weight_decay=0.5)
      >>> u, _ = opt.update(jnp.array([3.0, 0.0]), opt.init(params), params)
      >>> [round(float(x), 4) for x in u]  # -0.1 * (sign(0.3 g) + 0.5 θ)
      [-0.15, 0.1]
    """
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("lion", learning_rate),
    )
