"""Rprop optimizer."""

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation
from ..combinators.chain import chain
from ..transforms.rprop import scale_by_rprop
from ..transforms.scaling import scale


@_validate.in_callers_words()
def rprop(
    learning_rate: chex.Numeric,
    eta_minus: chex.Numeric = 0.5,
    eta_plus: chex.Numeric = 1.2,
    min_step_size: chex.Numeric = 1e-6,
    max_step_size: chex.Numeric = 50.0,
) -> GradientTransformation:
    r"""Rprop (iRprop⁻): per-coordinate step sizes driven by gradient signs.

    .. math::
        s_t = \operatorname{sign}(g_t)\operatorname{sign}(\tilde g_{t-1}),
        \quad
        \Delta_t = \begin{cases}
            \min(\eta^+ \Delta_{t-1}, \Delta_{max}) & s_t > 0 \\
            \max(\eta^- \Delta_{t-1}, \Delta_{min}) & s_t < 0 \\
            \Delta_{t-1} & s_t = 0
        \end{cases}, \\
        \tilde g_t = \begin{cases} 0 & s_t < 0 \\ g_t & \text{otherwise}
        \end{cases}, \quad
        \theta_t = \theta_{t-1} - \Delta_t \operatorname{sign}(\tilde g_t)

    with :math:`\Delta_0` = ``learning_rate`` and :math:`\tilde g_0 = 0`. Only
    the signs of the gradients matter; a sign change undoes nothing but skips
    the step and shrinks :math:`\Delta`.

    Unlike Optax 0.2.8, whose updates lag one step behind (see
    :func:`gradtx.scale_by_rprop`), the step at :math:`t` uses :math:`g_t`.

    References: Riedmiller & Braun, 1993, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm"; Igel & Hüsken, 2003,
    "Empirical Evaluation of the Improved Rprop Learning Algorithms".

    Args:
      learning_rate: :math:`\Delta_0 > 0`, the initial step size (a number).
      eta_minus: :math:`\eta^-` in [0, 1].
      eta_plus: :math:`\eta^+` >= 1.
      min_step_size, max_step_size: :math:`0 \le \Delta_{min} \le \Delta_{max}`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import rprop
      >>> opt = rprop(learning_rate=0.1)
      >>> s = opt.init(jnp.zeros(1))
      >>> steps = []
      >>> for g in [1.0, 1.0, -1.0, 1.0]:
      ...     u, s = opt.update(jnp.array([g]), s)
      ...     steps.append(round(float(u[0]), 4) + 0.0)
      >>> steps
      [-0.1, -0.12, 0.0, -0.06]
    """
    return chain(
        scale_by_rprop(
            learning_rate, eta_minus, eta_plus, min_step_size, max_step_size
        ),
        scale(-1.0),
    )
