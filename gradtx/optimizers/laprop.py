"""LaProp: Adam with the momentum taken after the normalisation."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.laprop import scale_by_laprop
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights_after_step


@_validate.in_callers_words()
def laprop(
    learning_rate: ScalarOrSchedule = 4e-4,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-15,
    weight_decay: ScalarOrSchedule = 0.0,
    centered: bool = False,
    *,
    eps_root: chex.Numeric = 1e-15,
    steps_before_using_centered: int = 10,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""LaProp: momentum of the RMS-normalised gradient.

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        d_t = \frac{\sqrt{v_t + \epsilon_{root}} + \epsilon}{\sqrt{1-\beta_2^t}},
        \\
        m_t = \beta_1 m_{t-1} + (1-\beta_1) \frac{g_t}{d_t}, \quad
        \theta_t = \Big(\theta_{t-1} - \eta_t \frac{m_t}{1-\beta_1^t}\Big)
            (1 - \eta_t \lambda)

    with :math:`m_0 = v_0 = 0`. Unlike Adam, the momentum averages gradients
    that are already normalised, so the adaptivity and the momentum are
    decoupled (:math:`\beta_1 > \beta_2` is stable). With ``centered``, from
    step ``steps_before_using_centered + 1`` on, :math:`v_t` is replaced by
    :math:`\max(v_t - \bar g_t^2, 0)`, :math:`\bar g_t` the EMA of
    :math:`g_t` with :math:`\beta_2`. The decay shrinks the params *after* the
    step (:func:`gradtx.add_decayed_weights_after_step`).

    Same numbers as ``pytorch_optimizer.LaProp(foreach=False)`` with a
    constant learning rate. Its momentum accumulates :math:`\eta_s g_s/d_s`
    and divides by the EMA of :math:`\eta_s` instead of :math:`1-\beta_1^t`;
    gradtx keeps :math:`\eta_t` out of the state (the last link of the chain,
    as in every alias), so with a schedule the momentum is the plain average
    of the normalised gradients, not the :math:`\eta`-weighted one. The
    centred second moment is clipped at 0 (the reference takes the root of a
    rounding-negative difference).

    Reference: Ziyin, Wang & Ueda, 2020, "LaProp: Separating Momentum and
    Adaptivity in Adam".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1`, the momentum decay, in [0, 1).
      b2: :math:`\beta_2`, the second-moment decay, in [0, 1).
      eps: :math:`\epsilon` >= 0 outside the root.
      weight_decay: :math:`\lambda` >= 0 (or a schedule), applied after the
        step.
      centered: centre the second moment.
      eps_root: :math:`\epsilon_{root}` >= 0 inside the root.
      steps_before_using_centered: steps (>= 0) before the centring starts.
      mu_dtype: dtype of the momentum (default: the params').

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import laprop
      >>> opt = laprop(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0, -0.5]), opt.init(jnp.zeros(2)))
      >>> [round(float(x), 4) for x in u]  # the first step is −η·sign(g)
      [-0.1, 0.1]
    """
    owner = "laprop"
    with _validate.renamed_errors("scale_by_laprop", owner):
        scaling = scale_by_laprop(
            b1,
            b2,
            eps,
            eps_root=eps_root,
            centered=centered,
            steps_before_using_centered=steps_before_using_centered,
            mu_dtype=mu_dtype,
        )
    with _validate.renamed_errors("add_decayed_weights_after_step", owner):
        decay = add_decayed_weights_after_step(weight_decay, learning_rate)
    return chain(scaling, decay, learning_rate_step(owner, learning_rate))
