"""Optimizers built on moment accumulators: SGD (with momentum), Adagrad, RMSProp.

Each alias is a ``chain`` of the primitives of :mod:`gradtx.transforms.moments`.
"""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule, identity
from ..combinators.chain import chain
from ..transforms.moments import scale_by_rms, scale_by_rss, scale_by_stddev, trace
from ..transforms.scaling import learning_rate_step


@_validate.in_callers_words(momentum=("trace", "decay"))
def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: chex.Numeric | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. math::
        v_t = g_t + \beta v_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \eta_t\, v_t
        \quad(\text{Nesterov: } \theta_t = \theta_{t-1} - \eta_t (g_t + \beta v_t))

    with :math:`\beta` = ``momentum`` (plain SGD when ``None``: :math:`v_t = g_t`).
    Batch, stochastic and mini-batch gradient descent are this same rule fed
    with gradients of the whole set, one example or a mini-batch.

    References: Robbins & Monro, 1951; Polyak, 1964 (heavy ball); Sutskever et
    al., 2013, "On the importance of initialization and momentum in deep
    learning" (Nesterov form).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1], or ``None`` for no momentum.
      nesterov: use the Nesterov form.
      accumulator_dtype: dtype of the momentum buffer (default: the params').

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = jnp.array([1.0, -2.0])
      >>> opt = gradtx.sgd(learning_rate=0.1, momentum=0.9)
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jnp.array([0.5, 0.5]), state, params)
      >>> [round(float(x), 4) for x in gradtx.apply_updates(params, updates)]
      [0.95, -2.05]
    """
    mom = identity()
    if momentum is not None:
        mom = trace(momentum, nesterov, accumulator_dtype)
    return chain(mom, learning_rate_step("sgd", learning_rate))


@_validate.in_callers_words()
def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: chex.Numeric = 0.1,
    eps: chex.Numeric = 1e-7,
) -> GradientTransformation:
    r"""Adagrad: per-coordinate steps shrinking with the sum of squared gradients.

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad
        \theta_t = \theta_{t-1} - \eta_t\, g_t / \sqrt{s_t + \epsilon}

    with :math:`s_0` = ``initial_accumulator_value``.

    Reference: Duchi, Hazan & Singer, 2011, "Adaptive Subgradient Methods for
    Online Learning and Stochastic Optimization".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      initial_accumulator_value: :math:`s_0`, the starting sum of squares
        (>= 0).
      eps: :math:`\epsilon` >= 0, inside the square root (as in Optax).

    Returns:
      A :class:`GradientTransformation`: ``chain(scale_by_rss(...),
      scale_by_learning_rate(learning_rate))``.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> opt = gradtx.adagrad(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)  # 0.1 * 3 / sqrt(0.1 + 9)
      -0.0994
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps),
        learning_rate_step("adagrad", learning_rate),
    )


@_validate.in_callers_words(momentum=("trace", "decay"))
def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: chex.Numeric = 0.9,
    eps: chex.Numeric = 1e-8,
    initial_scale: chex.Numeric = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: chex.Numeric | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""RMSProp: divide by a running root mean square of the gradients.

    .. math::
        \nu_t = \rho \nu_{t-1} + (1-\rho) g_t^2, \qquad
        d_t = \frac{g_t}{\sqrt{\hat\nu_t + \epsilon}}
        \ \text{or}\ \frac{g_t}{\sqrt{\hat\nu_t} + \epsilon}, \qquad
        \theta_t = \theta_{t-1} - \eta_t d_t

    with :math:`\rho` = ``decay``, :math:`\nu_0` = ``initial_scale``,
    :math:`\hat\nu_t = \nu_t/(1-\rho^t)` when ``bias_correction``. ``centered``
    subtracts the squared running mean of the gradients from :math:`\hat\nu_t`
    (Graves, 2013). With ``momentum`` β the scaled step goes through heavy-ball
    momentum *after* the learning rate: :math:`v_t = \eta_t d_t + \beta v_{t-1}`,
    :math:`\theta_t = \theta_{t-1} - v_t`.

    Reference: Tieleman & Hinton, 2012, Lecture 6.5 of "Neural Networks for
    Machine Learning"; Graves, 2013, "Generating Sequences With Recurrent Neural
    Networks" (centered form).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      decay: :math:`\rho`, in [0, 1] ([0, 1) with ``bias_correction``).
      eps: :math:`\epsilon` >= 0.
      initial_scale: :math:`\nu_0` (>= 0): 0 as in PyTorch, 1 as in TF1.
      eps_in_sqrt: put :math:`\epsilon` inside the square root (default);
        ``False`` adds it to the root.
      centered: subtract the squared running mean (:func:`scale_by_stddev`).
      momentum: :math:`\beta` in [0, 1], or ``None`` for no momentum.
      nesterov: use the Nesterov form of the momentum.
      bias_correction: unbias :math:`\nu` (and the mean when ``centered``);
        meaningful when ``initial_scale == 0``.

    Returns:
      A :class:`GradientTransformation`: :func:`scale_by_rms` (or
      :func:`scale_by_stddev` when ``centered``), the learning rate, then
      :func:`trace` when ``momentum`` is given.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> opt = gradtx.rmsprop(learning_rate=0.01, eps_in_sqrt=False)
      >>> u, _ = opt.update(jnp.array([1.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.0316
    """
    scaling = scale_by_stddev if centered else scale_by_rms
    return chain(
        scaling(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
        learning_rate_step("rmsprop", learning_rate),
        identity() if momentum is None else trace(momentum, nesterov),
    )
