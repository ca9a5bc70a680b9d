r"""Sophia, a :func:`gradtx.chain` of its scaling, weight decay and the step.

No maths lives here: :func:`gradtx.transforms.sophia.scale_by_sophia` holds
it. Notation as in :mod:`gradtx.optimizers.adam`.
"""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.scaling import learning_rate_step
from ..transforms.sophia import DEFAULT_HESSIAN_FN, scale_by_sophia
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def sophia(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.965,
    b2: chex.Numeric = 0.99,
    eps: chex.Numeric = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    weight_decay_mask: Any = None,
    gamma: chex.Numeric = 0.01,
    clip_threshold: chex.Numeric | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: GradientTransformation = DEFAULT_HESSIAN_FN,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    r"""Sophia: momentum over a clipped diagonal-Hessian preconditioner.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
            \hat m_t = m_t / (1 - \beta_1^t), \\
        \theta_t &= \theta_{t-1} - \eta_t \left(
            \operatorname{clip}\!\left(\frac{\hat m_t}
            {\max(\gamma h_{t-1}, \epsilon)}, \pm\rho\right)
            + \lambda \theta_{t-1}\right), \\
        h_t &= \beta_2 h_{t-1} + (1-\beta_2)\, \hat h_t
            \quad\text{if } (t-1) \bmod k = 0, \text{ else } h_{t-1},

    with :math:`h_0 = 0`, :math:`\rho` = ``clip_threshold``, :math:`k` =
    ``update_interval``, :math:`\lambda` = ``weight_decay`` and
    :math:`\hat h_t` an estimate of the Hessian's diagonal at
    :math:`\theta_{t-1}`: by default Hutchinson's
    :math:`v \odot (\nabla^2 f\, v)` with Rademacher :math:`v`
    (:func:`gradtx.hutchinson_estimator_diag_hessian`), which needs the
    objective: call ``update(grads, state, params, obj_fn=f)`` with
    ``f(params) -> loss`` (for a mini-batch, ``lambda p: loss(p, batch)``).
    Negative or tiny curvature falls back to :math:`\epsilon`, and the clip
    bounds every coordinate's step by :math:`\eta\rho`.

    As in Optax (after Levanter), and unlike the paper's Algorithm 3, the
    momentum is bias-corrected and a step uses the estimate :math:`h_{t-1}`
    from before the current refresh (so the first step, with :math:`h_0 = 0`,
    is :math:`-\eta\rho\operatorname{sign}(g_1)` when clipped); the decay is
    applied through the same learning rate. The effective Hessian EMA rate is
    :math:`1 - (1 - \beta_2)/k` per step.

    Reference: Liu, Li, Hall, Liang & Ma, 2023, "Sophia: A Scalable Stochastic
    Second-order Optimizer for Language Model Pre-training" (arXiv:2305.14342).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1: :math:`\beta_1` in [0, 1), the momentum's decay.
      b2: :math:`\beta_2` in [0, 1), the decay of the Hessian-diagonal EMA.
      eps: :math:`\epsilon` > 0, the floor of the denominator.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      weight_decay_mask: a tree of bools (or a function of the params giving
        one): decay only where True.
      gamma: :math:`\gamma` >= 0, the scale of the Hessian diagonal.
      clip_threshold: :math:`\rho` > 0, or ``None`` for no clipping.
      update_interval: :math:`k` >= 1.
      hessian_diagonal_fn: the estimator of :math:`\hat h` (gets every extra
        keyword argument of ``update``).
      mu_dtype, verbose, print_win_rate_every_n_steps: as in
        :func:`gradtx.transforms.sophia.scale_by_sophia`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import sophia
      >>> f = lambda p: jnp.sum(p**2)
      >>> opt = sophia(learning_rate=0.1, weight_decay=0.0)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> u, state = opt.update(jax.grad(f)(params), state, params, obj_fn=f)
      >>> [round(x, 4) for x in u.tolist()]  # first step: -η·ρ·sign(g)
      [-0.1, 0.1]
    """
    return chain(
        scale_by_sophia(
            b1,
            b2,
            eps,
            gamma,
            clip_threshold,
            update_interval,
            hessian_diagonal_fn,
            mu_dtype,
            verbose,
            print_win_rate_every_n_steps,
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        learning_rate_step("sophia", learning_rate),
    )
