"""Adafactor: factored second moments with relative step sizes."""

from typing import Any

import chex
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.block_clipping import clip_by_block_rms
from ..transforms.factored import scale_by_factored_rms
from ..transforms.layerwise import scale_by_param_block_rms
from ..transforms.moments import ema
from ..transforms.scaling import scale, scale_by_learning_rate
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words(
    decay_offset=("scale_by_factored_rms", "step_offset"),
    clipping_threshold=("clip_by_block_rms", "threshold"),
    eps=("scale_by_factored_rms", "epsilon"),
    momentum=("ema", "decay"),
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
      >>> from gradtx import adafactor
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
