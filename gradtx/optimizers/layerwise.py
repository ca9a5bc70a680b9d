r"""Layer-wise, factored, noisy and Polyak optimizers, each a :func:`gradtx.chain`.

No maths lives here: every alias composes primitives from
:mod:`gradtx.transforms`. Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the
gradient, :math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a
number or a schedule of the step), :math:`t = 1, 2, \dots` the step. Norms
:math:`\|\cdot\|` of one leaf (a "layer": a weight matrix, a bias vector) are
taken over the whole leaf.
"""

import functools
from typing import Any

import chex
import jax

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..combinators.masked import masked
from ..transforms.adam import scale_by_adam
from ..transforms.layerwise import add_scaled_params, scale_by_trust_ratio
from ..transforms.moments import trace
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def fromage(
    learning_rate: ScalarOrSchedule, min_norm: chex.Numeric = 1e-6
) -> GradientTransformation:
    r"""Fromage: Frobenius-matched gradient descent.

    .. math::
        \theta_t = \frac{1}{\sqrt{1 + \eta_t^2}} \left(\theta_{t-1}
            - \eta_t \frac{\max(\|\theta_{t-1}\|, m)}{\max(\|g_t\|, m)}\, g_t
        \right)

    per leaf, with :math:`m` = ``min_norm``. Each layer moves by a fixed
    fraction :math:`\eta` of its own norm, and the division by
    :math:`\sqrt{1+\eta^2}` keeps the norms from growing.

    Reference: Bernstein, Vahdat, Yue & Liu, 2020, "On the distance between
    two neural networks and the stability of learning".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      min_norm: :math:`m >= 0`, the floor of both norms.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import fromage
      >>> params = jnp.array([3.0, 4.0])
      >>> opt = fromage(learning_rate=0.75)  # 1 / sqrt(1 + 0.75²) = 0.8
      >>> u, _ = opt.update(jnp.array([0.0, 1.0]), opt.init(params), params)
      >>> [round(float(x), 4) for x in params + u]  # 0.8 · (θ − 0.75 · 5 · g)
      [2.4, 0.2]
    """
    _validate.scalar_or_schedule("fromage", "learning_rate", learning_rate)
    if callable(learning_rate):
        factors = lambda count: _fromage_factors(learning_rate(count))
        return chain(
            scale_by_trust_ratio(min_norm),
            learning_rate_step("fromage", lambda count: factors(count)[0]),
            add_decayed_weights(lambda count: factors(count)[1]),
        )
    step, decay = _fromage_factors(learning_rate)
    return chain(
        scale_by_trust_ratio(min_norm),
        learning_rate_step("fromage", step),
        add_scaled_params(decay),
    )


@functools.partial(jax.jit, inline=True)
def _fromage_factors(lr: chex.Numeric) -> tuple[chex.Array, chex.Array]:
    """``(η / √(1 + η²), 1 / √(1 + η²) − 1)``, compiled alike for every caller.

    A constant ``η`` and a traced one (:func:`gradtx.inject_hyperparams`) are
    therefore rounded the same way, in float32.
    """
    mult = 1 / (1 + lr**2) ** 0.5
    return lr * mult, mult - 1


@_validate.in_callers_words(momentum=("trace", "decay"))
def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: chex.Numeric = 0.001,
    eps: chex.Numeric = 0.0,
    trust_ratio_mask: Any = True,
    momentum: chex.Numeric = 0.9,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""LARS: layer-wise adaptive rate scaling, with heavy-ball momentum.

    .. math::
        d_t = g_t + \lambda \theta_{t-1}, \quad
        v_t = \beta v_{t-1} - \eta_t\,
            \frac{c\,\|\theta_{t-1}\|}{\|d_t\| + \epsilon}\, d_t, \quad
        \theta_t = \theta_{t-1} + v_t

    per leaf (Nesterov: :math:`\theta_t = \theta_{t-1} + \beta v_t - \eta_t
    \ldots d_t`), with :math:`\lambda` = ``weight_decay`` and :math:`c` =
    ``trust_coefficient``; the ratio is 1 where either norm is 0. The masks
    choose the leaves that are decayed and that get the trust ratio (the
    paper excludes biases and normalisation parameters from both).

    Reference: You, Gitman & Ginsburg, 2017, "Large Batch Training of
    Convolutional Networks".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      weight_decay: :math:`\lambda >= 0`, or a schedule.
      weight_decay_mask: a tree of bools like the params (or a prefix, or a
        function of the params returning one): decay only where True.
      trust_coefficient: :math:`c >= 0`.
      eps: :math:`\epsilon >= 0` in the trust ratio's denominator.
      trust_ratio_mask: like ``weight_decay_mask``, for the trust ratio.
      momentum: :math:`\beta` in [0, 1].
      nesterov: use Nesterov momentum.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import lars
      >>> params = jnp.array([3.0, 4.0])
      >>> opt = lars(learning_rate=1.0, trust_coefficient=0.1)
      >>> u, _ = opt.update(jnp.array([0.0, 2.0]), opt.init(params), params)
      >>> (params + u).tolist()  # θ − 1 · 0.1 · 5 / 2 · g
      [3.0, 3.5]
    """
    return chain(
        add_decayed_weights(weight_decay, mask=weight_decay_mask),
        masked(
            scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
            mask=trust_ratio_mask,
        ),
        learning_rate_step("lars", learning_rate),
        trace(decay=momentum, nesterov=nesterov),
    )


@_validate.in_callers_words()
def lamb(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-6,
    eps_root: chex.Numeric = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""LAMB: Adam's step with weight decay, rescaled per layer by a trust ratio.

    .. math::
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{\text{root}}}
              + \epsilon} + \lambda \theta_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \eta_t\, \frac{\|\theta_{t-1}\|}{\|r_t\|}\, r_t

    per leaf, with :math:`\hat m_t, \hat v_t` Adam's bias-corrected moments
    (see :func:`gradtx.adam`) and the ratio 1 where either norm is 0.

    Reference: You et al., 2020, "Large Batch Optimization for Deep Learning:
    Training BERT in 76 minutes".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: Adam's moment decays, in [0, 1).
      eps, eps_root: :math:`\epsilon >= 0` outside / inside the square root.
      weight_decay: :math:`\lambda >= 0`, or a schedule.
      mask: a tree of bools like the params (or a function of the params
        returning one): decay only where True.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import lamb
      >>> params = jnp.array([3.0, 4.0])
      >>> opt = lamb(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([0.0, 1.0]), opt.init(params), params)
      >>> [round(float(x), 4) for x in params + u]  # Adam's step ≈ (0, 1); |θ| = 5
      [3.0, 3.5]
    """
    return chain(
        scale_by_adam(
            b1=b1,
            b2=b2,
            eps=eps,
            eps_root=eps_root,
            mu_dtype=mu_dtype,
            nu_dtype=nu_dtype,
        ),
        add_decayed_weights(weight_decay=weight_decay, mask=mask),
        scale_by_trust_ratio(),
        learning_rate_step("lamb", learning_rate),
    )
