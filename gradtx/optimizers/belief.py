r"""Sign-based optimizers and Adam variants, each a :func:`gradtx.chain`.

No maths lives here: every alias composes primitives from
:mod:`gradtx.transforms`. Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the
gradient, :math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a
number or a schedule of the step), :math:`t = 1, 2, \dots` the step, and
:math:`\operatorname{sign}` taken element by element.
"""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.belief import scale_by_belief
from ..transforms.scaling import learning_rate_step


@_validate.in_callers_words()
def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-16,
    eps_root: chex.Numeric = 1e-16,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdaBelief: Adam whose denominator tracks the gradient's surprise.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2) (g_t - m_t)^2 + \epsilon_{root},
        \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad
        \hat s_t = \frac{s_t}{1-\beta_2^t}, \quad
        \theta_t = \theta_{t-1} - \eta_t \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}

    with :math:`m_0 = s_0 = 0`. Where the gradient agrees with its running
    mean ("belief"), :math:`s_t` is small and the step large; where it
    disagrees the step shrinks. With ``nesterov``, :math:`\hat m_t = \beta_1
    m_t/(1-\beta_1^{t+1}) + (1-\beta_1) g_t/(1-\beta_1^t)`. The defaults of
    ``eps`` and ``eps_root`` follow Optax (the paper uses 1e-8 and 0).

    Reference: Zhuang et al., 2020, "AdaBelief Optimizer: Adapting Stepsizes by
    the Belief in Observed Gradients".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: moment decays in [0, 1).
      eps: :math:`\epsilon` >= 0, outside the square root.
      eps_root: :math:`\epsilon_{root}` >= 0, added to :math:`s_t` every step.
      nesterov: use the look-ahead first moment.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adabelief
      >>> opt = adabelief(learning_rate=0.1, eps_root=0.0)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)  # -0.1 * 2 / sqrt(0.001 * 1.8² / 0.001)
      -0.1111
    """
    return chain(
        scale_by_belief(
            b1,
            b2,
            eps,
            eps_root,
            nesterov=nesterov,
            mu_dtype=mu_dtype,
            nu_dtype=nu_dtype,
        ),
        learning_rate_step("adabelief", learning_rate),
    )
