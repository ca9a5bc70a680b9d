"""NorMuon: Muon with neuron-wise normalisation, with an AdamW fallback."""

from typing import Any

import chex
import jax

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..combinators.partition import partition
from ..transforms.muon import (
    MuonDimensionNumbers,
    muon_routing,
    scale_by_muon,
    scale_by_shape,
)
from ..transforms.newton_schulz import check_ns_method, resolve_ns_coeffs
from ..transforms.normuon import scale_by_normuon
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights
from .adam import adamw


def _rows_first(params: Any) -> Any:
    """NorMuon for every leaf of rank >= 2, seen as (dim 0, the rest)."""
    return jax.tree.map(
        lambda x: (
            MuonDimensionNumbers(tuple(range(1, x.ndim)), 0) if x.ndim >= 2 else None
        ),
        params,
    )


@_validate.in_callers_words()
def normuon(
    learning_rate: ScalarOrSchedule = 2e-2,
    beta: chex.Numeric = 0.95,
    b2: chex.Numeric = 0.95,
    eps: chex.Numeric = 1e-10,
    weight_decay: ScalarOrSchedule = 0.0,
    nesterov: bool = True,
    ns_steps: chex.Numeric = 5,
    ns_coeffs: Any = "original",
    *,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    ns_method: str = "newton_schulz",
    consistent_rms: chex.Numeric | None = None,
    adam_b1: chex.Numeric = 0.9,
    adam_b2: chex.Numeric = 0.95,
    adam_eps: chex.Numeric = 1e-10,
    adam_weight_decay: ScalarOrSchedule = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""NorMuon: Muon's orthogonalised momentum, normalised neuron by neuron.

    For each weight :math:`W` of rank >= 2, seen as a matrix
    :math:`(d_0, \prod_{k>0} d_k)` whose rows are the output neurons:

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t, \quad
        \hat m_t = \beta m_t + (1-\beta) g_t, \quad
        O_t = \mathrm{NS}_K(\hat m_t), \\
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\mathrm{mean}_{\text{row}}(O_t^2),
        \quad \hat O_t = \frac{O_t}{\sqrt{v_t} + \epsilon}, \quad
        U_t = \hat O_t\, \frac{\|O_t\|_F}{\|\hat O_t\|_F + \epsilon}, \\
        W_t = W_{t-1} - \eta_t \left(
              \sqrt{\max(1, d_0 / \textstyle\prod_{k>0} d_k)}\; U_t
              + \lambda W_{t-1} \right)

    (without ``nesterov``, :math:`\hat m_t = m_t`). :math:`\mathrm{NS}_K` is
    :func:`gradtx.muon`'s Newton–Schulz iteration (:math:`X_0 = \hat m_t /
    (\|\hat m_t\|_F + \epsilon)`); :math:`v` holds one number per neuron and
    is not bias-corrected; the rescaling keeps the orthogonalised step's norm
    (the reference code's ``update_scale="preserve_norm"``). With
    ``consistent_rms`` :math:`= \rho` the width factor is :math:`\rho
    \sqrt{\max(d_0, \prod_{k>0} d_k)}`. Leaves of rank < 2 (and any whose
    ``muon_weight_dimension_numbers`` is ``None``) are trained by
    :func:`gradtx.adamw` with the ``adam_*`` settings.

    Step for step ``pytorch_optimizer.NorMuon`` (4.1.0; ``momentum=beta``,
    ``beta2=b2``, ``adamw_lr=adam_learning_rate``, ``adamw_betas=(adam_b1,
    adam_b2)``), except: Newton–Schulz runs in the params' precision (float32
    for bfloat16/float16 params) where pytorch-optimizer uses bfloat16; the
    first normalisation adds :math:`\epsilon` to the norm where it clamps the
    norm at 1e-7; ``adam_learning_rate`` defaults to ``learning_rate`` (its
    ``adamw_lr`` to 3e-4); its ``update_scale="match_rms"`` is not offered.

    References: Li et al., 2025, "NorMuon: Making Muon more efficient and
    scalable"; Jordan et al., 2024, "Muon: An optimizer for hidden layers in
    neural networks".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      beta: :math:`\beta`, the momentum decay, in [0, 1).
      b2: :math:`\beta_2`, the decay of the per-neuron mean square, in [0, 1).
      eps: :math:`\epsilon` >= 0.
      weight_decay: :math:`\lambda` >= 0 for the NorMuon leaves.
      nesterov: Nesterov momentum.
      ns_steps: :math:`K`, the number of Newton–Schulz steps.
      ns_coeffs: a preset name (see :func:`gradtx.muon`) or coefficients.
      weight_decay_mask: a tree of bools (or a function of the params) that
        limits the NorMuon leaves' weight decay.
      mu_dtype: dtype of both first moments (default: the params').
      ns_method: ``"newton_schulz"`` or ``"gram_newton_schulz"``.
      consistent_rms: :math:`\rho` >= 0, or ``None`` for the width factor.
      adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's settings.
      adam_learning_rate: AdamW's learning rate (default: ``learning_rate``).
      muon_weight_dimension_numbers: a tree (or function of the params) of
        :class:`MuonDimensionNumbers` or ``None`` (AdamW); rows are the output
        axes. Default: every leaf of rank >= 2 as ``MuonDimensionNumbers(
        reduction_axis=(1, …, ndim − 1), output_axis=0)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import normuon
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> opt = normuon(learning_rate=0.1)
      >>> grads = {"w": jnp.array([[1.0, 0], [0, 2.0], [0, 0]]), "b": jnp.ones(2)}
      >>> u, _ = opt.update(grads, opt.init(params), params)
      >>> [round(float(x), 3) for x in jnp.diag(u["w"])]
      [-0.113, -0.113]
    """
    owner = "normuon"
    _validate.decay(owner, "beta", beta)
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.scalar_or_schedule(owner, "weight_decay", weight_decay)
    _validate.flag(owner, "nesterov", nesterov)
    _validate.integer(owner, "ns_steps", ns_steps)
    ns_coeffs = resolve_ns_coeffs(owner, ns_coeffs, ns_steps)
    check_ns_method(owner, ns_method, "frobenius")
    if consistent_rms is not None:
        _validate.non_negative(owner, "consistent_rms", consistent_rms)
    _validate.decay(owner, "adam_b1", adam_b1)
    _validate.decay(owner, "adam_b2", adam_b2)
    _validate.non_negative(owner, "adam_eps", adam_eps)
    _validate.scalar_or_schedule(owner, "adam_weight_decay", adam_weight_decay)
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    if adam_learning_rate is None:
        adam_learning_rate = learning_rate
    _validate.scalar_or_schedule(owner, "adam_learning_rate", adam_learning_rate)
    spec = muon_weight_dimension_numbers
    labels, dims = muon_routing(_rows_first if spec is None else spec)
    normuon_part = chain(
        scale_by_muon(
            ns_coeffs,
            ns_steps,
            beta,
            eps,
            mu_dtype,
            nesterov=nesterov,
            weight_dimension_numbers=dims,
            ns_method=ns_method,
            bias_correction=False,
        ),
        scale_by_normuon(b2, eps, weight_dimension_numbers=dims),
        scale_by_shape(dims, consistent_rms),
        add_decayed_weights(weight_decay, weight_decay_mask),
        learning_rate_step(owner, learning_rate),
    )
    adam_part = adamw(
        adam_learning_rate,
        adam_b1,
        adam_b2,
        adam_eps,
        0.0,
        mu_dtype,
        adam_weight_decay,
    )
    return partition({"muon": normuon_part, "adam": adam_part}, labels)
