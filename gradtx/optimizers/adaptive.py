r"""Adaptive optimizers beyond Adam, each a :func:`gradtx.chain` of primitives.

No maths lives here: every alias composes primitives from
:mod:`gradtx.transforms`. Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the
gradient, :math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a
number or a schedule of the step), :math:`t = 1, 2, \dots` the step; squares,
roots and quotients are taken element by element.
"""

import warnings
from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adam import scale_by_adam
from ..transforms.adaptive import (
    scale_by_adadelta,
    scale_by_adan,
    scale_by_novograd,
    scale_by_optimistic_gradient,
    scale_by_rprop,
    scale_by_sm3,
)
from ..transforms.scaling import learning_rate_step, scale, scale_by_learning_rate
from ..transforms.weight_decay import add_decayed_weights


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


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: chex.Numeric = 0.9,
    eps: chex.Numeric = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    r"""AdaDelta: steps whose units match the parameters', no learning rate needed.

    .. math::
        G_t = \rho G_{t-1} + (1-\rho) g_t^2, \quad
        \Delta_t = \frac{\sqrt{X_{t-1} + \epsilon}}{\sqrt{G_t + \epsilon}} g_t,
        \quad X_t = \rho X_{t-1} + (1-\rho) \Delta_t^2, \quad
        \theta_t = \theta_{t-1} - \eta_t \Delta_t

    with :math:`G_0 = X_0 = 0` and :math:`g_t` the gradient plus
    :math:`\lambda \theta_{t-1}` (coupled weight decay, where the mask allows).

    ``learning_rate=None`` means the paper's rule, :math:`\eta = 1`. Optax
    0.2.8 instead leaves the update unscaled *and unsigned* there, so its
    default ``adadelta()`` climbs the loss; gradtx descends.

    Reference: Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method".

    Args:
      learning_rate: :math:`\eta`, a number >= 0, a schedule, or ``None`` (1).
      rho: :math:`\rho` in [0, 1], the decay of both averages.
      eps: :math:`\epsilon` > 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      weight_decay_mask: a tree of booleans like the params (or a function of
        the params returning one): decay only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adadelta
      >>> opt, params = adadelta(), jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> round(float(u[0]), 6)  # -sqrt(1e-6) / sqrt(0.1 * 4 + 1e-6) * 2
      -0.003162
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        learning_rate_step("adadelta", 1.0 if learning_rate is None else learning_rate),
    )


def adan(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.98,
    b2: chex.Numeric = 0.92,
    b3: chex.Numeric = 0.99,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    r"""Adan: adaptive Nesterov momentum estimated from gradient differences.

    With :math:`\Delta_t = g_t - g_{t-1}` (:math:`\Delta_1 = 0`),

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) \Delta_t, \\
        n_t = \beta_3 n_{t-1} + (1-\beta_3) (g_t + (1-\beta_2)\Delta_t)^2,
        \\
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{\hat m_t + (1-\beta_2) \hat v_t}
                 {\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with zero-started moments and hats the Adam bias corrections
    (:math:`\hat m_t = m_t / (1-\beta_1^t)`, …). The paper writes its decays
    as :math:`1-\beta` (0.02, 0.08, 0.01) and applies the weight decay as a
    proximal step :math:`/(1 + \lambda\eta)`; this is Optax's convention:
    decays close to 1, decoupled weight decay as in AdamW.

    Reference: Xie et al., 2022, "Adan: Adaptive Nesterov Momentum Algorithm
    for Faster Optimizing Deep Models".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2, b3: :math:`\beta_1, \beta_2, \beta_3` in [0, 1).
      eps, eps_root: :math:`\epsilon`, :math:`\epsilon_{root}` >= 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of booleans like the params (or a function returning one):
        decay only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adan
      >>> opt, params = adan(learning_rate=0.1), jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)  # first step: -0.1 * g / |g|
      -0.1
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("adan", learning_rate),
    )


def sm3(
    learning_rate: ScalarOrSchedule, momentum: chex.Numeric | None = 0.9
) -> GradientTransformation:
    r"""SM3: Adagrad with sublinear memory, one accumulator per row, column, ….

    For a leaf of rank :math:`k \ge 2` with accumulators
    :math:`\mu^{(1)}, \dots, \mu^{(k)}` (one vector per axis),

    .. math::
        \nu_t(i) = \min_{r} \mu^{(r)}_{t-1}(i_r) + g_t(i)^2, \quad
        \mu^{(r)}_t(j) = \max_{i:\, i_r = j} \nu_t(i), \\
        m_t = \beta m_{t-1} + (1-\beta) \frac{g_t}{\sqrt{\nu_t + 10^{-8}}},
        \quad \theta_t = \theta_{t-1} - \eta_t m_t

    (SM3-II, with :math:`0/0 = 0` where :math:`\nu_t = 0`). Leaves of rank
    <= 1 keep a full accumulator (plain Adagrad). Memory is the sum of the
    dimensions instead of their product.

    Differences from Optax 0.2.8: scalar leaves, empty leaves of rank >= 2
    and a schedule as learning rate work (Optax raises), and
    ``momentum=None`` means no momentum, as Optax documents (Optax raises a
    ``TypeError`` at the first update).

    Reference: Anil et al., 2019, "Memory-Efficient Adaptive Optimization".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1], or ``None`` for no momentum.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import sm3
      >>> opt = sm3(learning_rate=0.1, momentum=None)
      >>> u, _ = opt.update(jnp.array([[3.0, 4.0]]), opt.init(jnp.zeros((1, 2))))
      >>> [round(float(x), 4) for x in u[0]]  # -0.1 * g / |g| at the first step
      [-0.1, -0.1]
    """
    return chain(
        scale_by_sm3(0.0 if momentum is None else momentum),
        learning_rate_step("sm3", learning_rate),
    )


def rprop(
    learning_rate: chex.Numeric,
    eta_minus: chex.Numeric = 0.5,
    eta_plus: chex.Numeric = 1.2,
    min_step_size: chex.Numeric = 1e-6,
    max_step_size: chex.Numeric = 50.0,
) -> GradientTransformation:
    r"""Rprop (iRprop⁻): per-coordinate step sizes driven by gradient signs.

    .. math::
        s_t = \operatorname{sign}(g_t)\operatorname{sign}(\tilde g_{t-1}),
        \quad
        \Delta_t = \begin{cases}
            \min(\eta^+ \Delta_{t-1}, \Delta_{max}) & s_t > 0 \\
            \max(\eta^- \Delta_{t-1}, \Delta_{min}) & s_t < 0 \\
            \Delta_{t-1} & s_t = 0
        \end{cases}, \\
        \tilde g_t = \begin{cases} 0 & s_t < 0 \\ g_t & \text{otherwise}
        \end{cases}, \quad
        \theta_t = \theta_{t-1} - \Delta_t \operatorname{sign}(\tilde g_t)

    with :math:`\Delta_0` = ``learning_rate`` and :math:`\tilde g_0 = 0`. Only
    the signs of the gradients matter; a sign change undoes nothing but skips
    the step and shrinks :math:`\Delta`.

    Unlike Optax 0.2.8, whose updates lag one step behind (see
    :func:`gradtx.scale_by_rprop`), the step at :math:`t` uses :math:`g_t`.

    References: Riedmiller & Braun, 1993, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm"; Igel & Hüsken, 2003,
    "Empirical Evaluation of the Improved Rprop Learning Algorithms".

    Args:
      learning_rate: :math:`\Delta_0 > 0`, the initial step size (a number).
      eta_minus: :math:`\eta^-` in [0, 1].
      eta_plus: :math:`\eta^+` >= 1.
      min_step_size, max_step_size: :math:`0 \le \Delta_{min} \le \Delta_{max}`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import rprop
      >>> opt = rprop(learning_rate=0.1)
      >>> s = opt.init(jnp.zeros(1))
      >>> steps = []
      >>> for g in [1.0, 1.0, -1.0, 1.0]:
      ...     u, s = opt.update(jnp.array([g]), s)
      ...     steps.append(round(float(u[0]), 4) + 0.0)
      >>> steps
      [-0.1, -0.12, 0.0, -0.06]
    """
    return chain(
        scale_by_rprop(
            learning_rate, eta_minus, eta_plus, min_step_size, max_step_size
        ),
        scale(-1.0),
    )


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
        stacklevel=2,
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
