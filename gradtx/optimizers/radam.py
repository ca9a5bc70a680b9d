"""RAdam optimizer."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.radam import scale_by_radam
from ..transforms.scaling import learning_rate_step


@_validate.in_callers_words()
def radam(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    threshold: chex.Numeric = 5.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""RAdam: Adam whose adaptive step is switched on and rectified gradually.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t}, \quad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
                         {(\rho_\infty-4)(\rho_\infty-2)\rho_t}},
        \\
        \theta_t = \theta_{t-1} - \eta_t \begin{cases}
            r_t \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)
                & \rho_t \ge \text{threshold} \\
            \hat m_t & \text{otherwise}
        \end{cases}

    with :math:`\hat m_t, \hat v_t` Adam's bias-corrected moments (see
    :func:`gradtx.adam`, also for ``nesterov``). :math:`\rho_t` is the length
    of the simple moving average that :math:`v_t` approximates; while it is
    short the variance of the adaptive step is intractable and RAdam takes a
    momentum step instead.

    Reference: Liu et al., 2020, "On the Variance of the Adaptive Learning Rate
    and Beyond".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: moment decays in [0, 1).
      eps, eps_root: :math:`\epsilon` outside / inside the square root (>= 0).
      threshold: the value of :math:`\rho_t` (>= 4) from which the adaptive
        step is taken.
      nesterov: use NAdam's look-ahead first moment.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import radam
      >>> opt = radam(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)  # rho_1 = 1 < 5: a momentum step, -0.1 * 2
      -0.2
    """
    return chain(
        scale_by_radam(
            b1,
            b2,
            eps,
            eps_root,
            threshold,
            nesterov=nesterov,
            mu_dtype=mu_dtype,
            nu_dtype=nu_dtype,
        ),
        learning_rate_step("radam", learning_rate),
    )
