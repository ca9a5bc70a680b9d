r"""Optimizers with 8-bit state: Adam, AdamW and SGD with momentum.

Each is a :func:`gradtx.chain` of primitives, like its float32 counterpart in
:mod:`gradtx.optimizers.adam`, with the moment transformation replaced by one that keeps
its buffers as block-wise 8-bit codes between steps
(:func:`gradtx.scale_by_adam_8bit`, :func:`gradtx.trace_8bit`; the code maps
are described in :mod:`gradtx.precision.quantized`). Only the storage
changes: every step dequantises the moments to float32, applies the usual
rule, and quantises them again.

State per parameter of a large leaf: Adam and AdamW ``2 + 8/block_size``
bytes (2.03 at the default ``block_size=256``) instead of 8; SGD with
momentum ``1 + 4/block_size`` instead of 4. Leaves with fewer than
``min_size`` elements (4096 by default) keep float32 moments.

``block_size`` and ``min_size`` set the state's shapes, so they are Python
ints (with :func:`gradtx.inject_hyperparams`, name them in ``static_args``).
"""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule, identity
from ..combinators.chain import chain
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights
from .quantized import check_sizes, scale_by_adam_8bit, trace_8bit


@_validate.in_callers_words()
def adam_8bit(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    *,
    nesterov: bool = False,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    r"""Adam with its moments stored as block-wise 8-bit codes.

    .. math::
        m_t = \beta_1 Q_s^{-1}(m_{t-1}) + (1-\beta_1) g_t, \quad
        v_t = \beta_2 Q_u^{-1}(r_{t-1})^2 + (1-\beta_2) g_t^2, \\
        \theta_t = \theta_{t-1} - \eta_t
            \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}}
            + \epsilon}, \qquad
        \text{stored: } Q_s(m_t),\ r_t = Q_u(\sqrt{v_t})

    where :math:`Q_s` (signed) and :math:`Q_u` (unsigned) quantise each block
    of ``block_size`` values to 8-bit codes of a dynamic map scaled by the
    block's absmax, and :math:`Q^{-1}` reads them back in float32. The step is
    :func:`gradtx.adam`'s; only the stored moments are rounded (error at most
    ``0.0071·absmax`` of their block). About 2 bytes of state per parameter
    instead of 8.

    Reference: Dettmers, Lewis, Shleifer & Zettlemoyer, 2022, "8-bit
    Optimizers via Block-wise Quantization" (ICLR); Kingma & Ba, 2015.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: moment decays in [0, 1).
      eps, eps_root: ε outside / inside the square root (>= 0).
      nesterov: use NAdam's look-ahead first moment.
      block_size: values per quantisation block (Python int >= 1).
      min_size: leaves with fewer elements keep float32 moments (int >= 0).

    Raises:
      ValueError/TypeError: naming the argument, for an invalid one.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.ones((64, 128))}
      >>> opt = gradtx.adam_8bit(learning_rate=0.1)
      >>> state = opt.init(params)
      >>> state[0].mu["w"].codes.dtype, state[0].mu["w"].codes.shape
      (dtype('int8'), (32, 256))
      >>> updates, state = opt.update({"w": jnp.full((64, 128), 0.5)}, state)
      >>> round(float(gradtx.apply_updates(params, updates)["w"][0, 0]), 4)
      0.9
    """
    adam = scale_by_adam_8bit(
        b1,
        b2,
        eps,
        eps_root,
        nesterov=nesterov,
        block_size=block_size,
        min_size=min_size,
    )
    return chain(adam, learning_rate_step("adam_8bit", learning_rate))


@_validate.in_callers_words()
def adamw_8bit(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    r"""AdamW (decoupled weight decay) with moments stored as 8-bit codes.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with :math:`\hat m_t, \hat v_t` the bias-corrected moments of
    :func:`gradtx.adam_8bit` (stored between steps as block-wise 8-bit codes)
    and :math:`\lambda` = ``weight_decay``. The parameters themselves are not
    quantised.

    References: Dettmers et al., 2022, "8-bit Optimizers via Block-wise
    Quantization"; Loshchilov & Hutter, 2019, "Decoupled Weight Decay
    Regularization".

    Args:
      learning_rate, b1, b2, eps, eps_root, nesterov, block_size, min_size: as
        in :func:`gradtx.adam_8bit`.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = jnp.array([1.0])
      >>> opt = gradtx.adamw_8bit(learning_rate=0.1, weight_decay=0.5)
      >>> u, _ = opt.update(jnp.array([0.0]), opt.init(params), params)
      >>> round(float(u[0]), 4)
      -0.05
    """
    adam = scale_by_adam_8bit(
        b1,
        b2,
        eps,
        eps_root,
        nesterov=nesterov,
        block_size=block_size,
        min_size=min_size,
    )
    decay = add_decayed_weights(weight_decay, mask)
    return chain(adam, decay, learning_rate_step("adamw_8bit", learning_rate))


@_validate.in_callers_words()
def sgd_8bit(
    learning_rate: ScalarOrSchedule,
    momentum: chex.Numeric | None = 0.9,
    nesterov: bool = False,
    *,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    r"""SGD with (Nesterov) momentum, its buffer stored as 8-bit codes.

    .. math::
        v_t = g_t + \beta\, Q_s^{-1}(q_{t-1}), \qquad
        \theta_t = \theta_{t-1} - \eta_t\, v_t
        \quad(\text{Nesterov: } \theta_t = \theta_{t-1} - \eta_t (g_t + \beta v_t)),
        \qquad q_t = Q_s(v_t)

    with :math:`\beta` = ``momentum`` and :math:`Q_s` the signed block-wise
    8-bit quantisation of :func:`gradtx.adam_8bit`: about 1 byte of state per
    parameter instead of 4. ``momentum=None`` is plain SGD (no state).

    References: Dettmers et al., 2022, "8-bit Optimizers via Block-wise
    Quantization"; Polyak, 1964; Sutskever et al., 2013.

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1], or ``None``.
      nesterov: use the Nesterov form.
      block_size, min_size: as in :func:`gradtx.adam_8bit`.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> params = jnp.array([1.0, -2.0])
      >>> opt = gradtx.sgd_8bit(learning_rate=0.1, min_size=0)
      >>> updates, state = opt.update(jnp.array([0.5, 0.5]), opt.init(params))
      >>> [round(float(x), 4) for x in gradtx.apply_updates(params, updates)]
      [0.95, -2.05]
    """
    _validate.flag("sgd_8bit", "nesterov", nesterov)
    check_sizes("sgd_8bit", block_size, min_size)
    mom = identity()
    if momentum is not None:
        mom = trace_8bit(momentum, nesterov, block_size=block_size, min_size=min_size)
    return chain(mom, learning_rate_step("sgd_8bit", learning_rate))
