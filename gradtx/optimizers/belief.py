r"""Sign-based optimizers and Adam variants, each a :func:`gradtx.chain`.

No maths lives here: every alias composes primitives from
:mod:`gradtx.transforms`. Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the
gradient, :math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a
number or a schedule of the step), :math:`t = 1, 2, \dots` the step, and
:math:`\operatorname{sign}` taken element by element.
"""

from __future__ import annotations

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.belief import (
    scale_by_belief,
    scale_by_lion,
    scale_by_radam,
    scale_by_sign,
    scale_by_yogi,
)
from ..transforms.moments import ema
from ..transforms.weight_decay import add_decayed_weights
from .adam import _lr


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    r"""signSGD: gradient descent on the sign of each gradient coordinate.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \operatorname{sign}(g_t)

    Every coordinate moves by exactly :math:`\eta_t` (or not at all where the
    gradient is zero), whatever the gradient's magnitude.

    References: Bernstein et al., 2018, "signSGD: Compressed Optimisation for
    Non-Convex Problems"; Balles et al., 2020, "The Geometry of Sign Gradient
    Descent".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.optimizers.belief import sign_sgd
      >>> opt = sign_sgd(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([-5.0, 0.0, 1e-3]), opt.init(jnp.zeros(3)))
      >>> u.tolist()  # -0.1 * sign(g)
      [0.10000000149011612, -0.0, -0.10000000149011612]
    """
    return chain(scale_by_sign(), _lr("sign_sgd", learning_rate))


def signum(
    learning_rate: ScalarOrSchedule,
    beta: chex.Numeric = 0.9,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Signum: signSGD on an exponential moving average of the gradients.

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t, \qquad
        \theta_t = \theta_{t-1} - \eta_t \operatorname{sign}(m_t)

    with :math:`m_0 = 0`. The average is not bias-corrected: dividing by
    :math:`1-\beta^t > 0` would not change its sign.

    References: Bernstein et al., 2018, "signSGD: Compressed Optimisation for
    Non-Convex Problems"; Zhao et al., 2024, "Deconstructing What Makes a Good
    Optimizer for Language Models".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      beta: :math:`\beta`, the decay of the average, in [0, 1].
      accumulator_dtype: dtype of the average (default: the params').

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.optimizers.belief import signum
      >>> opt = signum(learning_rate=0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> _, state = opt.update(jnp.array([1.0]), state)
      >>> u, _ = opt.update(jnp.array([-0.5]), state)  # m = 0.09 - 0.05 > 0
      >>> round(float(u[0]), 4)
      -0.1
    """
    _validate.decay("signum", "beta", beta, allow_one=True)
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        _lr("signum", learning_rate),
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    r"""Lion (EvoLved Sign Momentum), with decoupled weight decay.

    .. math::
        c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        \theta_t = \theta_{t-1}
            - \eta_t \left(\operatorname{sign}(c_t) + \lambda \theta_{t-1}\right),
        \\
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    with :math:`m_0 = 0` and :math:`\lambda` = ``weight_decay``. The step
    blends the gradient with the momentum of the *previous* step; only the
    momentum is stored, so Lion needs half of Adam's memory. Its steps have
    unit size per coordinate, so its learning rate is usually 3–10× smaller
    than AdamW's and its weight decay as much larger (the decay is multiplied
    by the learning rate, as in PyTorch).

    Reference: Chen et al., 2023, "Symbolic Discovery of Optimization
    Algorithms".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1`, the weight of the momentum in the step, in [0, 1].
      b2: :math:`\beta_2`, the decay of the momentum, in [0, 1].
      mu_dtype: dtype of the momentum (default: the params').
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.optimizers.belief import lion
      >>> params = jnp.array([1.0, -2.0])
      >>> opt = lion(learning_rate=0.1, weight_decay=0.5)
      >>> u, _ = opt.update(jnp.array([3.0, 0.0]), opt.init(params), params)
      >>> [round(float(x), 4) for x in u]  # -0.1 * (sign(0.3 g) + 0.5 θ)
      [-0.15, 0.1]
    """
    return chain(
        scale_by_lion(b1, b2, mu_dtype),
        add_decayed_weights(weight_decay, mask),
        _lr("lion", learning_rate),
    )


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
      >>> from gradtx.optimizers.belief import adabelief
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
        _lr("adabelief", learning_rate),
    )


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
      >>> from gradtx.optimizers.belief import yogi
      >>> opt = yogi(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.0999
    """
    return chain(
        scale_by_yogi(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        _lr("yogi", learning_rate),
    )


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
      >>> from gradtx.optimizers.belief import radam
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
        _lr("radam", learning_rate),
    )
