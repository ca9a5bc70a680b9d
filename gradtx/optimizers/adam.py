r"""The classic optimizers, each a :func:`gradtx.chain` of primitives.

No maths lives here: every alias composes transformations from
:mod:`gradtx.transforms`. Notation in the docstrings: :math:`g_t` the gradient,
:math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a number or
a schedule of the step), :math:`t = 1, 2, \dots` the step.

Each alias returns a :class:`gradtx.GradientTransformation`; adding its updates
to the params (:func:`gradtx.apply_updates`) takes one descent step.
"""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.adam import scale_by_adam, scale_by_adamax, scale_by_amsgrad
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


def _adam_family(
    owner: str,
    learning_rate: Any,
    b1: Any,
    b2: Any,
    eps: Any,
    eps_root: Any,
    mu_dtype: Any,
    nesterov: bool,
    decay: GradientTransformation | None = None,
    coupled: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    adam_tx = scale_by_adam(
        b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype
    )
    if decay is None:
        return chain(adam_tx, learning_rate_step(owner, learning_rate))
    if coupled:
        return chain(decay, adam_tx, learning_rate_step(owner, learning_rate))
    return chain(adam_tx, decay, learning_rate_step(owner, learning_rate))


@_validate.in_callers_words()
def adam(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam: momentum and RMSProp with bias-corrected moment estimates.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad
        \hat v_t = \frac{v_t}{1-\beta_2^t}, \quad
        \theta_t = \theta_{t-1} - \eta_t
            \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with :math:`\beta_1, \beta_2` = ``b1, b2``, :math:`m_0 = v_0 = 0`. With
    ``nesterov`` (NAdam), :math:`\hat m_t = \beta_1 m_t/(1-\beta_1^{t+1}) +
    (1-\beta_1) g_t/(1-\beta_1^t)`.

    References: Kingma & Ba, 2015, "Adam: A Method for Stochastic
    Optimization"; Dozat, 2016, "Incorporating Nesterov Momentum into Adam".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: moment decays in [0, 1).
      eps, eps_root: ε outside / inside the square root (>= 0).
      mu_dtype: dtype of the first moment (default: the params').
      nesterov: use NAdam's look-ahead first moment.
      nu_dtype: dtype of the second moment (default: the params'); with
        ``mu_dtype=nu_dtype=jnp.bfloat16`` the state takes 4 bytes per
        parameter instead of 8 (see ``docs/precision.md``).

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> opt = gradtx.adam(learning_rate=0.1)
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([0.5, -0.5])}, state, params)
      >>> [round(float(x), 4) for x in gradtx.apply_updates(params, updates)["w"]]
      [0.9, -1.9]
    """
    return _adam_family(
        "adam",
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov,
        nu_dtype=nu_dtype,
    )


@_validate.in_callers_words()
def nadam(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""NAdam: :func:`adam` with Nesterov momentum (``nesterov=True``).

    The first moment looks one step ahead, using the current gradient:

    .. math::
        \hat m_t = \frac{\beta_1 m_t}{1-\beta_1^{t+1}}
            + \frac{(1-\beta_1) g_t}{1-\beta_1^t}, \qquad
        \theta_t = \theta_{t-1} - \eta_t
            \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    Reference: Dozat, 2016, "Incorporating Nesterov Momentum into Adam".

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in
        :func:`adam`.
      nesterov: the look-ahead first moment (on by default; off gives
        :func:`adam`).

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> opt = gradtx.nadam(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.1474
    """
    return _adam_family(
        "nadam",
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov,
        nu_dtype=nu_dtype,
    )


@_validate.in_callers_words()
def adamw(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdamW: Adam with *decoupled* weight decay.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with :math:`\hat m_t, \hat v_t` as in :func:`adam` and :math:`\lambda` =
    ``weight_decay``. The decay does not pass through Adam's scaling; compare
    :func:`adam_l2`, where it does (coupled L2 regularisation).

    Reference: Loshchilov & Hutter, 2019, "Decoupled Weight Decay
    Regularization".

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype: as
        in :func:`adam`.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True, e.g. not biases and norm scales.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = jnp.array([1.0])
      >>> opt = gradtx.adamw(learning_rate=0.1, weight_decay=0.5)
      >>> u, _ = opt.update(jnp.array([0.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)
      -0.05
    """
    decay = add_decayed_weights(weight_decay, mask)
    return _adam_family(
        "adamw",
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov,
        decay,
        nu_dtype=nu_dtype,
    )


@_validate.in_callers_words()
def nadamw(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""NAdamW: :func:`adamw` with Nesterov momentum (``nesterov=True``).

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with the look-ahead :math:`\hat m_t` of :func:`nadam`.

    References: Dozat, 2016; Loshchilov & Hutter, 2019.

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in
        :func:`adam`.
      weight_decay, mask: as in :func:`adamw`.
      nesterov: the look-ahead first moment (on by default; off gives
        :func:`adamw`).

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> opt = gradtx.nadamw(learning_rate=0.1, weight_decay=0.0)
      >>> params = jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)
      -0.1474
    """
    decay = add_decayed_weights(weight_decay, mask)
    return _adam_family(
        "nadamw",
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov,
        decay,
        nu_dtype=nu_dtype,
    )


@_validate.in_callers_words()
def adam_l2(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam with *coupled* L2 regularisation (classic "Adam + L2").

    The decay term is added to the gradient **before** Adam's scaling, i.e.
    Adam run on the gradient of :math:`J(\theta) + \frac{\lambda}{2}\|\theta\|^2`:

    .. math::
        \tilde g_t = g_t + \lambda \theta_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \eta_t
            \frac{\hat m_t(\tilde g)}{\sqrt{\hat v_t(\tilde g) + \epsilon_{root}}
            + \epsilon}

    This is what ``torch.optim.Adam(weight_decay=λ)`` does. Because the
    penalty is rescaled per coordinate, parameters with large gradients are
    regularised less than with decoupled decay (:func:`adamw`); Loshchilov &
    Hutter (2019) found decoupled decay generalises better.

    References: Krogh & Hertz, 1992, "A Simple Weight Decay Can Improve
    Generalization"; Loshchilov & Hutter, 2019, "Decoupled Weight Decay
    Regularization" (the comparison with :func:`adamw`).

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype: as
        in :func:`adam`.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: as in :func:`adamw`: decay only where True.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = jnp.array([1.0])
      >>> opt = gradtx.adam_l2(learning_rate=0.1, weight_decay=0.5)
      >>> u, _ = opt.update(jnp.array([0.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)
      -0.1
    """
    decay = add_decayed_weights(weight_decay, mask)
    return _adam_family(
        "adam_l2",
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov,
        decay,
        coupled=True,
        nu_dtype=nu_dtype,
    )


@_validate.in_callers_words()
def adamax(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdaMax: Adam with the infinity norm in place of the second moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \quad
        \theta_t = \theta_{t-1} - \eta_t \frac{m_t}{(1-\beta_1^t)\, u_t}

    Reference: Kingma & Ba, 2015, "Adam: A Method for Stochastic
    Optimization", section 7.1.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: the decay of the first moment, in [0, 1).
      b2: the decay of the infinity norm :math:`u_t`, in [0, 1).
      eps: :math:`\epsilon` >= 0, added to :math:`|g_t|`.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> opt = gradtx.adamax(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.1
    """
    return chain(
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        learning_rate_step("adamax", learning_rate),
    )


@_validate.in_callers_words()
def adamaxw(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdaMaxW: :func:`adamax` with decoupled weight decay (as in :func:`adamw`).

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{m_t}{(1-\beta_1^t) u_t} + \lambda \theta_{t-1} \right)

    References: Kingma & Ba, 2015; Loshchilov & Hutter, 2019.

    Args:
      learning_rate, b1, b2, eps: as in :func:`adamax`.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: as in :func:`adamw`: decay only where True.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = jnp.array([1.0])
      >>> opt = gradtx.adamaxw(learning_rate=0.1, weight_decay=0.5)
      >>> u, _ = opt.update(jnp.array([1.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)
      -0.15
    """
    return chain(
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("adamaxw", learning_rate),
    )


@_validate.in_callers_words()
def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AMSGrad: Adam whose denominator never decreases.

    .. math::
        \hat v^{max}_t = \max(\hat v^{max}_{t-1}, \hat v_t), \qquad
        \theta_t = \theta_{t-1} - \eta_t
            \frac{\hat m_t}{\sqrt{\hat v^{max}_t + \epsilon_{root}} + \epsilon}

    with :math:`\hat m_t, \hat v_t` as in :func:`adam` (each bias correction
    can be switched off).

    Reference: Reddi, Kale & Kumar, 2018, "On the Convergence of Adam and
    Beyond".

    Args:
      learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype: as in
        :func:`adam`.
      bias_correction_mu, bias_correction_nu: whether to divide the first /
        second moment by :math:`1 - \beta^t`.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> opt = gradtx.amsgrad(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> round(float(u[0]), 4)
      -0.1
    """
    return chain(
        scale_by_amsgrad(
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            bias_correction_mu,
            bias_correction_nu,
            nu_dtype=nu_dtype,
        ),
        learning_rate_step("amsgrad", learning_rate),
    )
