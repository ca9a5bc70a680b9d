"""Optimistic gradient descent and optimistic Adam."""

import warnings
from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adam import scale_by_adam
from ..transforms.optimistic import scale_by_optimistic_gradient
from ..transforms.scaling import learning_rate_step, scale_by_learning_rate


@_validate.in_callers_words()
def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule,
    alpha: chex.Numeric = 1.0,
    beta: chex.Numeric = 1.0,
) -> GradientTransformation:
    r"""Optimistic gradient descent: a cheap extra-gradient for min-max games.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left((\alpha + \beta) g_t
            - \beta g_{t-1}\right)

    with :math:`g_0 := g_1` (the first step is :math:`-\eta \alpha g_1`). The
    correction :math:`\beta (g_t - g_{t-1})` anticipates the next gradient and
    damps the cycling of plain gradient descent-ascent on saddle problems.
    ``alpha`` and ``beta`` must be numbers (Optax's hints allow schedules, but
    its update then fails).

    Reference: Mokhtari et al., 2020, "A Unified Analysis of Extra-gradient
    and Optimistic Gradient Methods for Saddle Point Problems: Proximal Point
    Approach".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      alpha: :math:`\alpha` >= 0.
      beta: :math:`\beta` >= 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import optimistic_gradient_descent
      >>> opt = optimistic_gradient_descent(learning_rate=0.1)
      >>> s = opt.init(jnp.zeros(1))
      >>> _, s = opt.update(jnp.array([1.0]), s)
      >>> u, _ = opt.update(jnp.array([3.0]), s)
      >>> round(float(u[0]), 4)  # -0.1 * (2 * 3 - 1)
      -0.5
    """
    return chain(
        scale_by_optimistic_gradient(alpha, beta),
        learning_rate_step("optimistic_gradient_descent", learning_rate),
    )


@_validate.in_callers_words()
def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha: chex.Numeric = 1.0,
    beta: chex.Numeric = 1.0,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    r"""Optimistic Adam: optimistic gradient descent on Adam's normalised steps.

    .. math::
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon},
        \qquad
        \theta_t = \theta_{t-1} - \eta_t \left((\alpha + \beta) r_t
            - \beta r_{t-1}\right)

    with :math:`\hat m_t, \hat v_t` Adam's bias-corrected moments (see
    :func:`gradtx.adam`; Nesterov's look-ahead :math:`\hat m_t` by default)
    and :math:`r_0 := r_1`.

    Reference: Daskalakis et al., 2018, "Training GANs with Optimism".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      alpha, beta: :math:`\alpha, \beta` >= 0, as in
        :func:`optimistic_gradient_descent`.
      b1, b2: Adam's moment decays in [0, 1).
      eps, eps_root: :math:`\epsilon`, :math:`\epsilon_{root}` >= 0.
      mu_dtype: dtype of the first moment (default: the params').
      nesterov: use NAdam's look-ahead first moment.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import optimistic_adam_v2
      >>> opt = optimistic_adam_v2(0.1, nesterov=False)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)  # -0.1 * alpha * m̂ / sqrt(v̂)
      -0.1
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha, beta),
        learning_rate_step("optimistic_adam_v2", learning_rate),
    )


@_validate.in_callers_words()
def optimistic_adam(
    learning_rate: chex.Numeric,
    optimism: chex.Numeric | None = None,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    r"""Optimistic Adam, Optax's first interface (prefer :func:`optimistic_adam_v2`).

    .. math::
        \theta_t = \theta_{t-1} - \eta\, r_t - o\,(r_t - r_{t-1})

    with :math:`r_t` as in :func:`optimistic_adam_v2` and :math:`o` =
    ``optimism`` (default: :math:`\eta`). It is
    ``optimistic_adam_v2(1.0, alpha=learning_rate, beta=optimism, ...)``; the
    learning rate must be a number. Deprecated, as in Optax: warns with a
    ``DeprecationWarning`` pointing to :func:`optimistic_adam_v2`.

    Reference: Daskalakis et al., 2018, "Training GANs with Optimism".

    Args:
      learning_rate: :math:`\eta` >= 0, a number (not a schedule).
      optimism: :math:`o` >= 0, or ``None`` for :math:`\eta`.
      b1, b2, eps, eps_root, mu_dtype, nesterov: as in
        :func:`optimistic_adam_v2`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import warnings
      >>> from gradtx import optimistic_adam
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     opt = optimistic_adam(0.1, nesterov=False)
      >>> caught[0].category.__name__
      'DeprecationWarning'
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.1
    """
    owner = "optimistic_adam"
    warnings.warn(
        f"{owner} is deprecated, please use `optimistic_adam_v2` instead (the "
        "same rule, with schedules: `optimistic_adam_v2(1.0, "
        "alpha=learning_rate, beta=optimism)`).",
        DeprecationWarning,
        stacklevel=3,  # past in_callers_words to the caller's line
    )
    if callable(learning_rate):
        raise ValueError(
            f"{owner}: `learning_rate` must be a number, not a schedule; use "
            "`optimistic_adam_v2` for a scheduled learning rate."
        )
    _validate.non_negative(owner, "learning_rate", learning_rate)
    if optimism is None:
        optimism = learning_rate
    _validate.non_negative(owner, "optimism", optimism)
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
        scale_by_learning_rate(1.0),
    )
