"""Yogi optimizer."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.scaling import learning_rate_step
from ..transforms.yogi import scale_by_yogi


@_validate.in_callers_words()
def yogi(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-3,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Yogi: Adam with an additive, sign-controlled second moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = v_{t-1} - (1-\beta_2) \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2,
        \\
        \theta_t = \theta_{t-1} - \eta_t
            \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

    with :math:`m_0 = v_0 = 10^{-6}`. Adam's :math:`v_t` moves by
    :math:`(1-\beta_2)(g_t^2 - v_{t-1})`, which can shrink it (and grow the
    step) quickly; Yogi's moves by at most :math:`(1-\beta_2) g_t^2`. The
    moments are bias-corrected as in :func:`gradtx.adam` (Optax's convention).

    Reference: Zaheer et al., 2018, "Adaptive Methods for Nonconvex
    Optimization".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: moment rates in [0, 1).
      eps: :math:`\epsilon` >= 0, outside the square root.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import yogi
      >>> opt = yogi(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.0999
    """
    return chain(
        scale_by_yogi(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        learning_rate_step("yogi", learning_rate),
    )
