"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.scaling import learning_rate_step
from ..transforms.soap import scale_by_soap
from ..transforms.weight_decay import add_decayed_weights_after_step


@_validate.in_callers_words()
def soap(
    learning_rate: ScalarOrSchedule = 3e-3,
    b1: chex.Numeric = 0.95,
    b2: chex.Numeric = 0.95,
    shampoo_b2: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    *,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    refresh: str = "power_qr",
) -> GradientTransformation:
    r"""SOAP: ShampoO with Adam in the Preconditioner's eigenbasis.

    For a leaf :math:`W` (viewed with ``merge_dims`` as a tensor of merged
    axes), each axis :math:`i` no longer than ``max_precond_dim`` keeps a
    Kronecker factor :math:`L_i` and an orthogonal basis :math:`Q_i`;
    :math:`\mathcal{Q}(X)` rotates every such axis of :math:`X` by
    :math:`Q_i^\top` and :math:`\mathcal{Q}^{-1}` by :math:`Q_i`. At the first
    step :math:`L_i = (1-\beta_s) G_{(i)} G_{(i)}^\top`, :math:`Q_i` its
    eigenvectors (by decreasing eigenvalue), and nothing moves. At step
    :math:`t \ge 2`, with :math:`k = t - 1`:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, \mathcal{Q}(g_t)^2, \\
        u_t = \mathcal{Q}^{-1}\!\left(
              \frac{\mathcal{Q}(m_t)}{\sqrt{v_t} + \epsilon}\right), \quad
        \theta_t = (1-\eta_t\lambda)\left(\theta_{t-1}
              - \eta_t \frac{\sqrt{1-\beta_2^k}}{1-\beta_1^k}\, u_t\right), \\
        L_i \leftarrow \beta_s L_i + (1-\beta_s)\, G_{t,(i)} G_{t,(i)}^\top

    where :math:`G_{(i)}` is the gradient unfolded along axis :math:`i`
    (rows: axis :math:`i`; columns: all the others) and :math:`\beta_s` =
    ``shampoo_b2`` (default :math:`\beta_2`). After steps :math:`f+1, 2f+1,
    \dots` (:math:`f` = ``precondition_frequency``) each basis is refreshed
    by one power iteration: with :math:`P = L_i Q_i`, the columns are sorted
    by :math:`\operatorname{diag}(Q_i^\top P)` (decreasing), :math:`v` is
    permuted along axis :math:`i` the same way, and :math:`Q_i \leftarrow`
    the Q of :math:`\operatorname{qr}(P)` (``refresh="eigh"``: the
    eigenvectors of :math:`L_i` instead). ``normalize_grads`` divides
    :math:`u_t` by :math:`\operatorname{RMS}(u_t) + \epsilon`;
    ``correct_bias=False`` drops the bias-correction factor. Axes longer than
    ``max_precond_dim`` are not rotated; 1-D leaves get plain Adam (with this
    step schedule) unless ``precondition_1d``, scalars always.

    In gradtx terms the decay comes after the step: the chain is
    :func:`scale_by_soap`, :func:`add_decayed_weights_after_step` (``u ←
    (1-ηλ)u + λθ``, from the second step on) and the learning rate, so the
    update is :math:`-\eta\,(1-\eta\lambda)\, c_k u_t - \eta\lambda
    \theta_{t-1}`, :math:`c_k` the bias-correction factor.

    Follows ``pytorch_optimizer.SOAP`` 4.1.0 (a port of the authors' code)
    step for step, except: QR runs in the factors' dtype (the reference
    rounds it to float32 even for float64 params); ``merge_dims`` on a leaf
    that merges into a single axis gives it one factor (the authors' code;
    pytorch-optimizer fails there), and 1-D leaves are never merged;
    0-size leaves pass through. Complex leaves raise ``TypeError``. The
    factors of a non-square matrix start rank-deficient, so their null-space
    eigenvectors are arbitrary: two correct implementations differ there. And
    when the second gradient equals the first (a fixed batch) the gradient's
    component in that null space is rounding noise, which the second step's
    Adam ratio scales up to O(1): runs that round differently (eager and
    jitted, vmapped, another library) then differ by O(learning rate).

    Reference: Vyas et al., 2024, "SOAP: Improving and Stabilizing Shampoo
    using Adam" (arXiv:2409.11321).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: :math:`\beta_1, \beta_2` in [0, 1).
      shampoo_b2: :math:`\beta_s` in [0, 1), or ``None`` for :math:`\beta_2`.
      eps: :math:`\epsilon` >= 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      precondition_frequency: :math:`f`, an integer >= 1.
      max_precond_dim: the longest axis that gets a factor (an integer >= 1).
      merge_dims: merge neighbouring axes while their product stays <=
        ``max_precond_dim``.
      precondition_1d: give 1-D leaves a factor.
      normalize_grads: divide each leaf's update by its RMS.
      correct_bias: Adam's bias correction.
      mu_dtype: dtype of :math:`m` (default: the params').
      precond_dtype: dtype of :math:`L_i, Q_i` (default: the params';
        float32 for bfloat16/float16 params).
      refresh: ``"power_qr"`` or ``"eigh"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import soap
      >>> params = {"w": jnp.eye(2)}
      >>> opt = soap(learning_rate=0.1, weight_decay=0.0)
      >>> state = opt.init(params)
      >>> g = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0]])}
      >>> u, state = opt.update(g, state, params)  # builds the bases only
      >>> float(jnp.abs(u["w"]).max())
      0.0
      >>> u, state = opt.update(g, state, params)  # Adam's first step, rotated
      >>> [round(float(x), 4) for x in jnp.diag(u["w"])]
      [-0.1, -0.1]
    """
    with _validate.renamed_errors("scale_by_soap", "soap"):
        scaling = scale_by_soap(
            b1,
            b2,
            shampoo_b2,
            eps,
            precondition_frequency,
            max_precond_dim,
            merge_dims=merge_dims,
            precondition_1d=precondition_1d,
            normalize_grads=normalize_grads,
            correct_bias=correct_bias,
            mu_dtype=mu_dtype,
            precond_dtype=precond_dtype,
            refresh=refresh,
        )
    step = learning_rate_step("soap", learning_rate)
    with _validate.renamed_errors("add_decayed_weights_after_step", "soap"):
        decay = add_decayed_weights_after_step(weight_decay, learning_rate, 1)
    return chain(scaling, decay, step)
