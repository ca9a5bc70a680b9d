"""Muon: orthogonalised momentum for matrices, with an Adam fallback."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..combinators.partition import partition
from ..transforms.muon import (
    NS_COEFFS_PRESETS,
    muon_routing,
    scale_by_muon,
    scale_by_shape,
)
from ..transforms.newton_schulz import check_ns_method, resolve_ns_coeffs
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights
from .adam import adamw


@_validate.in_callers_words()
def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = NS_COEFFS_PRESETS["standard"],
    ns_steps: chex.Numeric = 5,
    beta: chex.Numeric = 0.95,
    eps: chex.Numeric = 1e-8,
    weight_decay: chex.Numeric = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: chex.Numeric = 0.9,
    adam_b2: chex.Numeric = 0.999,
    adam_eps_root: chex.Numeric = 0.0,
    adam_weight_decay: chex.Numeric = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: chex.Numeric | None = None,
    ns_method: str = "newton_schulz",
) -> GradientTransformation:
    r"""Muon: MomentUm Orthogonalized by Newton–Schulz, AdamW for the rest.

    For each matrix :math:`W` (fan-in × fan-out) of the params:

    .. math::
        m_t = \beta m_{t-1} + (1-\beta) g_t, \quad
        \hat m_t = \frac{\beta\, m_t}{1-\beta^{t+1}}
                   + \frac{(1-\beta)\, g_t}{1-\beta^t}, \\
        X_0 = \hat m_t / (\|\hat m_t\|_F + \epsilon), \quad
        X_{k+1} = c_0 X_k + (c_1 A_k + c_2 A_k^2) X_k, \;
        A_k = X_k X_k^\top, \\
        W_t = W_{t-1} - \eta_t \left(
              \sqrt{\max(1, \text{fan\_out}/\text{fan\_in})}\; X_K
              + \lambda W_{t-1} \right)

    with :math:`K` = ``ns_steps`` and :math:`(c_0, c_1, c_2)` = ``ns_coeffs``
    (without ``nesterov``, :math:`\hat m_t = m_t / (1-\beta^t)`). The quintic
    iteration pushes every singular value of :math:`\hat m_t` towards 1, so the
    step is roughly the polar factor :math:`U V^\top` of the momentum: steepest
    descent under the spectral norm. Every leaf that is not a matrix (biases,
    gains, scalars; or each leaf whose ``muon_weight_dimension_numbers`` is
    ``None``) is trained by :func:`gradtx.adamw` instead, with ``adam_*``,
    ``eps``, ``mu_dtype`` and ``nesterov``. Higher-rank leaves (convolutions,
    stacked layers) may be given :class:`MuonDimensionNumbers`: their batch
    axes are orthogonalised slice by slice. With ``consistent_rms`` :math:`=
    \rho` the width factor becomes :math:`\rho \sqrt{\max(\text{fan\_in},
    \text{fan\_out})}`. Same numbers and state as Optax's ``contrib.muon``;
    bfloat16 matrices are orthogonalised in float32, and see
    :func:`gradtx.scale_by_muon` for the stricter checks. Matrices of one
    shape are orthogonalised together, as one batched call.

    Against ``pytorch_optimizer.Muon`` (4.1.0, with its Newton–Schulz run in
    the params' dtype): the same step with ``nesterov=False`` and
    ``muon_weight_dimension_numbers=MuonDimensionNumbers(1, 0)`` (its
    width factor reads a weight as (fan-out, fan-in)); ``consistent_rms=0.2``
    is its ``use_adjusted_lr``. Its Nesterov momentum is not bias-corrected,
    which this alias cannot express (``scale_by_muon(bias_correction=False)``
    can), and it clamps the norm at 1e-7 where Muon adds ``eps``.

    References: Jordan et al., 2024, "Muon: An optimizer for hidden layers in
    neural networks" (and the modded-nanogpt speedrun); Bernstein & Newhouse,
    2024, "Old Optimizer, New Norm: An Anthology"; Liu et al., 2025, "Muon is
    Scalable for LLM Training" (``consistent_rms``); Boissin et al., 2025
    ("aol"); Grishina et al., 2025 ("schatten"); Ahn et al., 2025, "Dion"
    (the ``"dion"`` coefficients).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      ns_coeffs: :math:`(c_0, c_1, c_2)`, one triple per step, or a preset
        name: ``"standard"``, ``"dion"``, or pytorch-optimizer 4.1.0's
        ``"original"`` (= ``"standard"``), ``"quintic"`` (= ``"dion"``'s rows)
        and ``"polar_express"`` (Amsel et al., 2025), whose ``ns_steps`` rows
        are the table's first ones, the last repeated as needed.
      ns_steps: :math:`K`, the number of Newton–Schulz steps.
      beta: :math:`\beta`, the momentum decay, in [0, 1).
      eps: :math:`\epsilon` >= 0 (Muon's normalisation and AdamW's).
      weight_decay: :math:`\lambda` >= 0 for the Muon leaves.
      weight_decay_mask: a tree of bools (or a function of the params) that
        limits the Muon leaves' weight decay.
      mu_dtype: dtype of both momenta (default: the params').
      nesterov: Nesterov momentum (Muon and AdamW).
      adaptive: scale by the dual norm :math:`\langle \hat m_t, X_K \rangle`.
      preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or
        ``"schatten"``.
      adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW's settings.
      adam_learning_rate: AdamW's learning rate (default: ``learning_rate``).
      muon_weight_dimension_numbers: a tree (or function of the params
        returning one) of :class:`MuonDimensionNumbers` or ``None`` (AdamW),
        with the structure of the params or a prefix of it; default: Muon for
        every 2-D leaf.
      consistent_rms: :math:`\rho` >= 0, or ``None`` for the width factor.
      ns_method: ``"newton_schulz"``, or ``"gram_newton_schulz"``: the same
        iteration carried out on the Gram matrix :math:`X X^\top`
        (:func:`gradtx.transforms.gram_newton_schulz`; cheaper for wide
        matrices).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import muon
      >>> params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
      >>> opt = muon(learning_rate=0.1)
      >>> grads = {"w": jnp.array([[1.0, 0, 0], [0, 2.0, 0]]), "b": jnp.ones(3)}
      >>> u, _ = opt.update(grads, opt.init(params), params)
      >>> # singular values 1 : 2 are both pushed near 1 (then ×0.1·√(3/2))
      >>> [round(float(x), 2) for x in jnp.diag(u["w"])]
      [-0.14, -0.08]
      >>> [round(float(x), 4) for x in u["b"]]  # NAdamW's first step for the bias
      [-0.1474, -0.1474, -0.1474]
    """
    owner = "muon"
    _validate.decay(owner, "adam_b1", adam_b1)
    _validate.decay(owner, "adam_b2", adam_b2)
    _validate.non_negative(owner, "adam_eps_root", adam_eps_root)
    _validate.scalar_or_schedule(owner, "adam_weight_decay", adam_weight_decay)
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    if adam_learning_rate is None:
        adam_learning_rate = learning_rate
    _validate.integer(owner, "ns_steps", ns_steps)
    ns_coeffs = resolve_ns_coeffs(owner, ns_coeffs, ns_steps)
    check_ns_method(owner, ns_method, preconditioning)
    labels, dims = muon_routing(muon_weight_dimension_numbers)
    muon_part = chain(
        scale_by_muon(
            ns_coeffs,
            ns_steps,
            beta,
            eps,
            mu_dtype,
            nesterov=nesterov,
            adaptive=adaptive,
            preconditioning=preconditioning,
            weight_dimension_numbers=dims,
            ns_method=ns_method,
        ),
        scale_by_shape(dims, consistent_rms),
        add_decayed_weights(weight_decay, weight_decay_mask),
        learning_rate_step(owner, learning_rate),
    )
    adam_part = adamw(
        _lr_checked(owner, "adam_learning_rate", adam_learning_rate),
        adam_b1,
        adam_b2,
        eps,
        adam_eps_root,
        mu_dtype,
        adam_weight_decay,
        nesterov=nesterov,
    )
    return partition({"muon": muon_part, "adam": adam_part}, labels)


def _lr_checked(owner: str, name: str, value: Any) -> Any:
    _validate.scalar_or_schedule(owner, name, value)
    return value
