"""Adan optimizer."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adan import scale_by_adan
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def adan(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.98,
    b2: chex.Numeric = 0.92,
    b3: chex.Numeric = 0.99,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    r"""Adan: adaptive Nesterov momentum estimated from gradient differences.

    With :math:`\Delta_t = g_t - g_{t-1}` (:math:`\Delta_1 = 0`),

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) \Delta_t, \\
        n_t = \beta_3 n_{t-1} + (1-\beta_3) (g_t + (1-\beta_2)\Delta_t)^2,
        \\
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{\hat m_t + (1-\beta_2) \hat v_t}
                 {\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with zero-started moments and hats the Adam bias corrections
    (:math:`\hat m_t = m_t / (1-\beta_1^t)`, …). The paper writes its decays
    as :math:`1-\beta` (0.02, 0.08, 0.01) and applies the weight decay as a
    proximal step :math:`/(1 + \lambda\eta)`; this is Optax's convention:
    decays close to 1, decoupled weight decay as in AdamW.

    Reference: Xie et al., 2022, "Adan: Adaptive Nesterov Momentum Algorithm
    for Faster Optimizing Deep Models".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2, b3: :math:`\beta_1, \beta_2, \beta_3` in [0, 1).
      eps, eps_root: :math:`\epsilon`, :math:`\epsilon_{root}` >= 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of booleans like the params (or a function returning one):
        decay only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adan
      >>> opt, params = adan(learning_rate=0.1), jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)  # first step: -0.1 * g / |g|
      -0.1
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("adan", learning_rate),
    )
