"""AdaDelta optimizer."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adadelta import scale_by_adadelta
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: chex.Numeric = 0.9,
    eps: chex.Numeric = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    r"""AdaDelta: steps whose units match the parameters', no learning rate needed.

    .. math::
        G_t = \rho G_{t-1} + (1-\rho) g_t^2, \quad
        \Delta_t = \frac{\sqrt{X_{t-1} + \epsilon}}{\sqrt{G_t + \epsilon}} g_t,
        \quad X_t = \rho X_{t-1} + (1-\rho) \Delta_t^2, \quad
        \theta_t = \theta_{t-1} - \eta_t \Delta_t

    with :math:`G_0 = X_0 = 0` and :math:`g_t` the gradient plus
    :math:`\lambda \theta_{t-1}` (coupled weight decay, where the mask allows).

    ``learning_rate=None`` means the paper's rule, :math:`\eta = 1`. Optax
    0.2.8 instead leaves the update unscaled *and unsigned* there, so its
    default ``adadelta()`` climbs the loss; gradtx descends.

    Reference: Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method".

    Args:
      learning_rate: :math:`\eta`, a number >= 0, a schedule, or ``None`` (1).
      rho: :math:`\rho` in [0, 1], the decay of both averages.
      eps: :math:`\epsilon` > 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      weight_decay_mask: a tree of booleans like the params (or a function of
        the params returning one): decay only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adadelta
      >>> opt, params = adadelta(), jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> round(float(u[0]), 6)  # -sqrt(1e-6) / sqrt(0.1 * 4 + 1e-6) * 2
      -0.003162
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        learning_rate_step("adadelta", 1.0 if learning_rate is None else learning_rate),
    )
