"""ADOPT optimizer."""

from collections.abc import Callable
from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adopt import quarter_power, scale_by_adopt
from ..transforms.scaling import learning_rate_step


@_validate.in_callers_words()
def adopt(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.9999,
    eps: chex.Numeric = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[chex.Array], chex.Array] = quarter_power,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""ADOPT: Adam that normalises by the *previous* second moment.

    .. math::
        v_0 = g_0^2, \quad
        x_t = \operatorname{clip}\!\left(
            \frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, \pm c(t)\right), \quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1) x_t, \\
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        \theta_t = \theta_{t-1} - \eta_t m_t

    for :math:`t \ge 1` (the first call, :math:`t = 0`, only sets
    :math:`v_0` and leaves the params unchanged). Because :math:`v_{t-1}` does
    not contain :math:`g_t`, the step is not biased towards small gradients,
    and ADOPT converges for any :math:`\beta_2` (Adam does not). The clipping
    :math:`c(t) = t^{1/4}` (``clip_value_fn``) tames the first steps. With
    ``nesterov``, the step is :math:`\beta_1 m_t + (1-\beta_1) x_t`.

    Reference: Taniguchi et al., 2024, "ADOPT: Modified Adam Can Converge with
    Any β2 with the Optimal Rate".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1].
      eps: :math:`\epsilon` > 0.
      mu_dtype: dtype of :math:`m` (default: the params').
      nesterov: use the look-ahead step.
      use_clipping: clip :math:`x_t` to :math:`\pm c(t)`.
      clip_value_fn: :math:`c`, a function of the 0-based step.
      nu_dtype: dtype of the second moment (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adopt
      >>> opt = adopt(learning_rate=0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> u, state = opt.update(jnp.array([2.0]), state)  # sets v = 4
      >>> abs(float(u[0]))
      0.0
      >>> u, state = opt.update(jnp.array([2.0]), state)  # x = 1, m = 0.1
      >>> round(float(u[0]), 4)
      -0.01
    """
    return chain(
        scale_by_adopt(
            b1,
            b2,
            eps,
            mu_dtype,
            nesterov=nesterov,
            use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
            nu_dtype=nu_dtype,
        ),
        learning_rate_step("adopt", learning_rate),
    )
