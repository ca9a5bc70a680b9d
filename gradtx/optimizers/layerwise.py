r"""Layer-wise, factored, noisy and Polyak optimizers, each a :func:`gradtx.chain`.

No maths lives here: every alias composes primitives from
:mod:`gradtx.transforms`. Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the
gradient, :math:`\theta_t` the parameters, :math:`\eta_t` the learning rate (a
number or a schedule of the step), :math:`t = 1, 2, \dots` the step. Norms
:math:`\|\cdot\|` of one leaf (a "layer": a weight matrix, a bias vector) are
taken over the whole leaf.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain, masked
from ..transforms.adam import scale_by_adam
from ..transforms.block_clipping import clip_by_block_rms
from ..transforms.factored import scale_by_factored_rms
from ..transforms.layerwise import (
    _add_scaled_params,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from ..transforms.moments import ema, trace
from ..transforms.scaling import scale, scale_by_learning_rate
from ..transforms.step_size_free import add_noise, scale_by_polyak
from ..transforms.weight_decay import add_decayed_weights
from .adam import _lr, sgd


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
      >>> from gradtx.optimizers.layerwise import fromage
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
            _lr("fromage", lambda count: factors(count)[0]),
            add_decayed_weights(lambda count: factors(count)[1]),
        )
    step, decay = _fromage_factors(learning_rate)
    return chain(
        scale_by_trust_ratio(min_norm),
        _lr("fromage", step),
        _add_scaled_params(decay),
    )


@functools.partial(jax.jit, inline=True)
def _fromage_factors(lr: chex.Numeric) -> tuple[chex.Array, chex.Array]:
    """``(η / √(1 + η²), 1 / √(1 + η²) − 1)``, compiled alike for every caller.

    A constant ``η`` and a traced one (:func:`gradtx.inject_hyperparams`) are
    therefore rounded the same way, in float32.
    """
    mult = 1 / (1 + lr**2) ** 0.5
    return lr * mult, mult - 1


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
      >>> from gradtx.optimizers.layerwise import lars
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
        _lr("lars", learning_rate),
        trace(decay=momentum, nesterov=nesterov),
    )


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
      >>> from gradtx.optimizers.layerwise import lamb
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
        _lr("lamb", learning_rate),
    )


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: chex.Numeric = 0.8,
    decay_offset: chex.Numeric = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: chex.Numeric | None = 1.0,
    momentum: chex.Numeric | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: chex.Numeric = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    r"""Adafactor: RMS scaling with a factored second moment, relative steps.

    .. math::
        v_t &= \text{factored running mean of } g_t^2 + \epsilon
              \quad(\text{see } \texttt{scale\_by\_factored\_rms}), \\
        u_t &= \frac{g_t / \sqrt{v_t}}
              {\max\left(1, \operatorname{rms}(g_t / \sqrt{v_t}) / d\right)}, \\
        \theta_t &= \theta_{t-1} - \left(\eta_t
              \max(\operatorname{rms}(\theta_{t-1}), 10^{-3})\, u_t
              + \lambda_t \theta_{t-1}\right)

    per leaf, with decay :math:`\beta_t = 1 - (t - \text{offset})^{-k}`
    (:math:`k` = ``decay_rate``), clipping threshold :math:`d`, the parameter
    scale only if ``multiply_by_parameter_scale``, and optionally an
    exponential moving average (not debiased) of the scaled step
    (``momentum``) before the weight decay :math:`\lambda_t`. A leaf with two
    axes of at least ``min_dim_size_to_factor`` stores one mean per row and
    per column only. With ``learning_rate=None`` the step is not scaled by a
    learning rate (Adafactor's "relative step" alone).

    Reference: Shazeer & Stern, 2018, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost".

    Args:
      learning_rate: :math:`\eta`, a number >= 0, a schedule, or ``None``.
      min_dim_size_to_factor: factor leaves whose two largest axes both have
        at least this size.
      decay_rate: :math:`k >= 0`, the exponent of the decay schedule.
      decay_offset: step at which the decay schedule restarts (fine-tuning).
      multiply_by_parameter_scale: multiply the step by
        :math:`\max(\operatorname{rms}(\theta), 10^{-3})`.
      clipping_threshold: :math:`d > 0`, or ``None`` for no clipping.
      momentum: decay in [0, 1] of an average of the steps, or ``None``.
      dtype_momentum: dtype of that average.
      weight_decay_rate: :math:`\lambda >= 0`, a schedule, or ``None``.
      eps: :math:`\epsilon > 0` added to :math:`g^2`.
      factored: factor the second moment at all.
      weight_decay_mask: a tree of bools like the params (or a function of
        them): decay only where True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.optimizers.layerwise import adafactor
      >>> params = jnp.array([1.0, -1.0])
      >>> opt = adafactor(learning_rate=0.1)
      >>> u, _ = opt.update(jnp.array([3.0, 0.5]), opt.init(params), params)
      >>> [round(float(x), 4) for x in u]  # −0.1 · rms(θ) · sign(g)
      [-0.1, -0.1]
    """
    owner = "adafactor"
    if learning_rate is not None:
        _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    _validate.flag(owner, "multiply_by_parameter_scale", multiply_by_parameter_scale)
    txs = [
        scale_by_factored_rms(
            factored, decay_rate, decay_offset, min_dim_size_to_factor, eps
        )
    ]
    if clipping_threshold is not None:
        txs.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        txs.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        txs.append(scale_by_param_block_rms())
    if momentum is not None:
        txs.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        txs.append(add_decayed_weights(weight_decay_rate, mask=weight_decay_mask))
    txs.append(scale(-1))
    return chain(*txs)


def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: chex.Numeric = 0.01,
    gamma: chex.Numeric = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""SGD with annealed Gaussian gradient noise.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(g_t + \sigma_t \xi_t\right),
        \qquad \sigma_t^2 = \frac{\eta}{t^{\gamma}}, \quad
        \xi_t \sim N(0, I)

    with :math:`\eta` = ``eta`` the initial noise variance (not the learning
    rate :math:`\eta_t`) and :math:`\gamma` = ``gamma``. The noise comes from
    the PRNG key kept in the state (:class:`gradtx.AddNoiseState`): the same
    key gives the same trajectory.

    Reference: Neelakantan et al., 2015, "Adding Gradient Noise Improves
    Learning for Very Deep Networks".

    Args:
      learning_rate: :math:`\eta_t`, a number >= 0 or a schedule.
      eta: the initial noise variance, >= 0.
      gamma: the annealing exponent, >= 0.
      key: a PRNG key or an integer seed (``None`` warns and uses 0).
      seed: deprecated spelling of ``key``; warns.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx.optimizers.layerwise import noisy_sgd
      >>> opt = noisy_sgd(learning_rate=0.1, eta=0.0, key=jax.random.key(0))
      >>> u, _ = opt.update(jnp.array([1.0, -2.0]), opt.init(jnp.zeros(2)))
      >>> [round(float(x), 4) for x in u]  # no noise with eta = 0
      [-0.1, 0.2]
    """
    return chain(add_noise(eta, gamma, key, seed=seed), _lr("noisy_sgd", learning_rate))


def polyak_sgd(
    max_learning_rate: chex.Numeric = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: chex.Numeric = 0.0,
    eps: chex.Numeric = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    r"""SGD with Polyak's step size (SPS_max); ``update`` needs ``value=loss``.

    .. math::
        \theta_t = \theta_{t-1} - s_t \min\left(
            \frac{f(\theta_{t-1}) - f^\star}{s_t^2 \|g_t\|^2 + \epsilon},
            \gamma_{\max}\right) g_t

    with :math:`s_t` = ``scaling``, :math:`f^\star` = ``f_min`` and
    :math:`\gamma_{\max}` = ``max_learning_rate``; the step is 0 where the
    denominator is not above float64's machine epsilon. With ``"sps+"`` the
    gap is :math:`\max(f - f^\star, 0)`. For ``scaling = 1`` this is the rule
    of Loizou et al.; as in Optax (the same chain: SGD with learning rate
    :math:`s_t`, then the Polyak scaling of that step), an uncapped step is
    :math:`(f - f^\star)/(s_t \|g_t\|^2)\, g_t` — the paper's :math:`c` — and
    the cap is :math:`s_t \gamma_{\max}`. Optax's docstring formula
    :math:`s \min(\cdot)` differs from what Optax computes for
    :math:`s \ne 1`; gradtx computes what Optax computes.

    References: Loizou et al., 2021, "Stochastic Polyak Step-size for SGD";
    Berrada et al., 2020, "Training Neural Networks for and by
    Interpolation"; Garrigos et al., 2023, "Function Value Learning" (SPS+).

    Args:
      max_learning_rate: :math:`\gamma_{\max} >= 0`.
      scaling: :math:`s_t`, a number >= 0 or a schedule.
      f_min: :math:`f^\star`, a lower bound of the loss (0 for models that
        interpolate the data; a wrong value can make the method diverge).
      eps: :math:`\epsilon >= 0`.
      variant: ``"sps"`` or ``"sps+"``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx.optimizers.layerwise import polyak_sgd
      >>> f = lambda x: jnp.sum(x**2)
      >>> x = jnp.array([1.0, 2.0])
      >>> opt = polyak_sgd()
      >>> value, g = jax.value_and_grad(f)(x)
      >>> u, _ = opt.update(g, opt.init(x), x, value=value)
      >>> (x + u).tolist()  # step 5 / 20: halfway to the minimum
      [0.5, 1.0]
    """
    _validate.scalar_or_schedule("polyak_sgd", "scaling", scaling)
    return chain(
        sgd(learning_rate=scaling),
        scale_by_polyak(
            max_learning_rate=max_learning_rate, f_min=f_min, eps=eps, variant=variant
        ),
    )
