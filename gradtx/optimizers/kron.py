"""PSGD-Kron: SGD preconditioned by online-fitted Kronecker factors."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.kron import scale_by_kron
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def psgd_kron(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: chex.Numeric = 0.9,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    preconditioner_update_probability: Any = None,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
    memory_save_mode: str | None = None,
    momentum_into_precond_update: bool = True,
    preconditioner_lr: chex.Numeric = 0.1,
    preconditioner_init_scale: chex.Numeric = 1.0,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    key: Any = None,
) -> GradientTransformation:
    r"""PSGD-Kron: momentum preconditioned by a fitted Kronecker product.

    For a leaf :math:`G` with :math:`k` dimensions, factors :math:`Q_i`
    (upper triangular, or diagonal: see ``max_size_triangular``,
    ``min_ndim_triangular``, ``memory_save_mode``), :math:`Q = Q_1 \otimes
    \dots \otimes Q_k` and :math:`x \times_i M` the product along dimension
    :math:`i`:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        \hat m_t = m_t / (1-\beta_1^t), \\
        h = \hat m_t + \sqrt{\epsilon_{32}}\,\overline{|\hat m_t|}\; v,
        \quad v \sim N(0, I), \quad
        A = h \times_1 Q_1 \dots \times_k Q_k, \quad
        B = v \times_1 Q_1^{-\top} \dots \times_k Q_k^{-\top}, \\
        Q_i \leftarrow Q_i - \frac{\eta_Q}{\| A_{(i)} A_{(i)}^\top
        + B_{(i)} B_{(i)}^\top \|}
        \,\mathrm{triu}\!\left(A_{(i)} A_{(i)}^\top
        - B_{(i)} B_{(i)}^\top\right) Q_i, \\
        u = Q^\top Q\, \hat m_t, \quad
        u \leftarrow u / \max(1, \mathrm{RMS}(u)/1.1), \quad
        \theta_t = \theta_{t-1} - \eta_t (u + \lambda \theta_{t-1})

    with :math:`X_{(i)}` the unfolding along dimension :math:`i`,
    :math:`\|\cdot\|` a cheap lower bound of the spectral norm (the largest
    entry for a diagonal factor, whose update is elementwise) and
    :math:`\epsilon_{32}` float32's epsilon. This drives :math:`P = Q^\top
    Q` towards :math:`E[h h^\top]^{-1/2}` (Li's fitting criterion
    :math:`E[h^\top P h + v^\top P^{-1} v]`). The factors step only on
    preconditioner updates (the :math:`Q_i` are rebalanced to equal
    max-norms on about 1% of them), every :math:`\lceil 1/p \rceil`-th step
    for the update probability :math:`p` (a counter, not a coin: psgd-jax
    0.2.9's rule), and before :math:`u` is formed, so the first step moves.
    :math:`Q_i` starts at ``preconditioner_init_scale``:math:`^{1/k}\, I`.

    Step for step psgd-jax 0.2.9's ``kron`` (same argument names; with
    ``key=None`` the same probes: ``fold_in(PRNGKey(5318008), t − 1)``, split
    as psgd-jax splits it; a given ``key`` replaces that PRNGKey, so any run
    is reproducible). Differences: no ``scanned_layers`` /
    ``lax_map_scanned_layers`` / ``lax_map_batch_size`` (vmap the optimizer
    instead) and no ``precond_*_precision`` (JAX's default matmul precision);
    the momentum is kept (zeros) when ``b1 = 0``; the factors default to
    the params' dtype with float32 at least (psgd-jax: JAX's default float);
    bfloat16 maths runs in float32 (probes drawn in float32); the balancing
    factors are not rounded to float32 (psgd-jax's are: ~6e-8 relative on
    the factors, :math:`P` unchanged); ``weight_decay`` may be a schedule;
    ``preconditioner_init_scale`` must be a number (psgd-jax 0.2.9 has no
    scale-from-the-first-gradient option); a probability of 0 never updates
    (psgd-jax divides by zero); complex leaves raise naming the leaf;
    zero-size leaves pass through.

    References: Li, 2015/2018, "Preconditioned Stochastic Gradient Descent"
    (IEEE TNNLS); Li, 2022, "Black Box Lie Group Preconditioners for SGD";
    Evan Walters' psgd-jax (the ``kron`` defaults and key scheme).

    Args:
      learning_rate: :math:`\eta_t`, a number >= 0 or a schedule.
      b1: :math:`\beta_1`, the momentum decay, in [0, 1).
      weight_decay: :math:`\lambda` >= 0 (decoupled), or a schedule.
      weight_decay_mask: a tree of bools (or a function of the params) that
        limits the weight decay.
      preconditioner_update_probability: :math:`p` in [0, 1], or a schedule
        of the step (1, 2, …); ``None``:
        :func:`gradtx.precond_update_prob_schedule` ``()`` (1 for 500 steps,
        then annealed to 0.03).
      max_size_triangular: a dimension larger than this gets a diagonal
        factor (an integer >= 0).
      min_ndim_triangular: leaves with fewer dimensions get diagonal factors
        (an integer >= 0; 2: vectors are diagonal).
      memory_save_mode: ``None`` (triangular where allowed), ``"one_diag"``
        (the largest dimension diagonal, the last of equal ones) or
        ``"all_diag"``.
      momentum_into_precond_update: fit :math:`Q` to :math:`\hat m_t` (else
        to the raw gradient :math:`g_t`).
      preconditioner_lr: :math:`\eta_Q` > 0.
      preconditioner_init_scale: > 0, the initial scale of :math:`P^{1/2}`.
      mu_dtype: dtype of the momentum (default: the params').
      precond_dtype: dtype of the factors (default: the params', float32 at
        least).
      key: ``None`` (psgd-jax's probes), a PRNG key or an integer seed.

    Returns:
      A :class:`GradientTransformation`: ``chain(scale_by_kron,
      add_decayed_weights, scale_by_learning_rate)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import psgd_kron, apply_updates
      >>> params = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.ones(2)}
      >>> opt = psgd_kron(learning_rate=0.1)
      >>> state = opt.init(params)
      >>> u, state = opt.update(params, state, params)
      >>> params = apply_updates(params, u)
      >>> [round(float(x), 2) for x in params["b"]]  # each |u| about 1 (clipped)
      [0.9, 0.91]
    """
    owner = "psgd_kron"
    _validate.scalar_or_schedule(owner, "weight_decay", weight_decay)
    with _validate.renamed_errors("scale_by_kron", owner):
        scaling = scale_by_kron(
            b1=b1,
            preconditioner_update_probability=preconditioner_update_probability,
            max_size_triangular=max_size_triangular,
            min_ndim_triangular=min_ndim_triangular,
            memory_save_mode=memory_save_mode,
            momentum_into_precond_update=momentum_into_precond_update,
            preconditioner_lr=preconditioner_lr,
            preconditioner_init_scale=preconditioner_init_scale,
            mu_dtype=mu_dtype,
            precond_dtype=precond_dtype,
            key=key,
        )
    return chain(
        scaling,
        add_decayed_weights(weight_decay, weight_decay_mask),
        learning_rate_step(owner, learning_rate),
    )
