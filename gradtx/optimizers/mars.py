"""MARS-AdamW: AdamW on the variance-reduced gradient."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adam import scale_by_adam
from ..transforms.mars import scale_by_mars
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def mars_adamw(
    learning_rate: ScalarOrSchedule = 3e-3,
    b1: chex.Numeric = 0.95,
    b2: chex.Numeric = 0.99,
    gamma: chex.Numeric = 0.025,
    eps: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    max_norm: float | None = 1.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""MARS-AdamW: AdamW on a variance-reduced, clipped gradient.

    .. math::
        c_t = g_t + \gamma \frac{\beta_1}{1-\beta_1} (g_t - g_{t-1}), \quad
        c_t \leftarrow \frac{c_t}{\max(1, \|c_t\|_2)}, \\
        m_t = \beta_1 m_{t-1} + (1-\beta_1) c_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) c_t^2, \\
        \theta_t = \theta_{t-1} - \eta_t \Big(
            \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
            + \lambda \theta_{t-1} \Big)

    with :math:`g_0 = m_0 = v_0 = 0`, the norm taken per leaf (``max_norm``
    replaces the 1; ``None`` drops the clip). The correction
    :math:`\gamma\beta_1/(1-\beta_1)(g_t - g_{t-1})` is MARS's cheap stand-in
    for the STORM estimator's :math:`\nabla f(\theta_t, \xi_t) - \nabla
    f(\theta_{t-1}, \xi_t)` (the same batch at the previous params). A chain of
    :func:`gradtx.scale_by_mars`, :func:`gradtx.scale_by_adam`,
    :func:`gradtx.add_decayed_weights` and the learning rate.

    Same numbers as ``pytorch_optimizer.MARS(mars_type="adamw",
    optimize_1d=True)`` (every leaf through MARS; its default sends 1-D leaves to
    a plain AdamW with their own lr and decay), up to where ε sits: the
    reference divides by :math:`(\sqrt{v_t + 10^{-15}} + \epsilon)/
    \sqrt{1-\beta_2^t}`, i.e. :math:`\epsilon/\sqrt{1-\beta_2^t}` in Adam's
    terms. heavyball's MARS swaps the roles of :math:`\gamma` and
    :math:`\beta_1` in the correction.

    Reference: Yuan, Liu, Wu, Zhou, Gu & Chen, 2024, "MARS: Unleashing the
    Power of Variance Reduction for Training Large Models".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1), the momentum decay (and the correction's).
      b2: :math:`\beta_2` in [0, 1), the second-moment decay.
      gamma: :math:`\gamma` >= 0, the strength of the correction.
      eps: :math:`\epsilon` >= 0.
      weight_decay: :math:`\lambda` >= 0 (or a schedule), decoupled.
      max_norm: the largest per-leaf l2 norm of :math:`c_t` (> 0), or ``None``.
      mu_dtype: dtype of the first moment (default: the params').

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import mars_adamw
      >>> opt = mars_adamw(learning_rate=0.1)
      >>> params = jnp.zeros(2)
      >>> u, _ = opt.update(jnp.array([3.0, -4.0]), opt.init(params), params)
      >>> [round(float(x), 4) for x in u]  # Adam's first step: −η·sign(c)
      [-0.1, 0.1]
    """
    owner = "mars_adamw"
    with _validate.renamed_errors("scale_by_mars", owner):
        mars = scale_by_mars(b1, gamma, max_norm)
    with _validate.renamed_errors("scale_by_adam", owner):
        adam = scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype)
    with _validate.renamed_errors("add_decayed_weights", owner):
        decay = add_decayed_weights(weight_decay)
    return chain(mars, adam, decay, learning_rate_step(owner, learning_rate))
