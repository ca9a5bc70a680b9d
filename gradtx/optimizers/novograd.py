r"""NovoGrad: layer-wise second moments, a :func:`gradtx.chain` of primitives.

Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the gradient,
:math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a number or
a schedule of the step), :math:`t = 1, 2, \dots` the step.
"""

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.novograd import scale_by_novograd
from ..transforms.scaling import learning_rate_step


@_validate.in_callers_words()
def novograd(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.25,
    eps: chex.Numeric = 1e-6,
    eps_root: chex.Numeric = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
) -> GradientTransformation:
    r"""NovoGrad: momentum on gradients normalised by a per-layer second moment.

    For each leaf (layer) :math:`l`,

    .. math::
        v^l_t = \beta_2 v^l_{t-1} + (1-\beta_2) \|g^l_t\|^2, \quad
        m^l_t = \beta_1 m^l_{t-1}
            + \frac{g^l_t}{\sqrt{v^l_t + \epsilon_{root}} + \epsilon}
            + \lambda \theta^l_{t-1}, \quad
        \theta^l_t = \theta^l_{t-1} - \eta_t m^l_t

    with :math:`v^l_1 = \|g^l_1\|^2` and :math:`m^l_0 = 0`. The second moment
    is one number per leaf, so the optimizer keeps about half Adam's memory.

    References: Ginsburg et al., 2019, "Stochastic Gradient Methods with
    Layer-wise Adaptive Moments for Training of Deep Networks"; Li et al.,
    2019, "Jasper: An End-to-End Convolutional Neural Acoustic Model".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1], the decay of the first moment.
      b2: :math:`\beta_2` in [0, 1], the decay of the per-layer second moment.
      eps, eps_root: :math:`\epsilon`, :math:`\epsilon_{root}` >= 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule (Optax: number only).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import novograd
      >>> opt = novograd(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([3.0, 4.0]), opt.init(jnp.zeros(2)))
      >>> [round(float(x), 4) for x in u]  # -0.1 * g / ||g||
      [-0.06, -0.08]
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
        learning_rate_step("novograd", learning_rate),
    )
