r"""Recent optimizers: Muon, ADOPT, AdEMAMix and simplified AdEMAMix.

No maths lives here: every alias composes primitives (Muon also routes its
non-matrix leaves to :func:`gradtx.adamw` with :func:`gradtx.partition`).
Notation as in :mod:`gradtx.optimizers.adam`: :math:`g_t` the gradient, :math:`\theta_t`
the parameters, :math:`\eta_t` the learning rate (a number or a schedule of the
step), :math:`t = 1, 2, \dots` the step. Optax keeps these in ``optax.contrib``;
gradtx exports them at the top level under the same names.
"""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.ademamix import scale_by_ademamix, scale_by_simplified_ademamix
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights


@_validate.in_callers_words()
def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdEMAMix: AdamW with a second, much slower momentum mixed in.

    .. math::
        m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t, \quad
        m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{m^{(1)}_t / (1-\beta_1^t) + \alpha\, m^{(2)}_t}
                 {\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with all moments starting at 0. The slow EMA (:math:`\beta_3 = 0.9999`:
    a memory of ~10⁴ steps) keeps old gradients relevant; it is not
    bias-corrected, so its weight grows as it fills. ``b3`` and ``alpha`` may
    be schedules of the step (the paper warms both up over the run); the
    weight decay is multiplied by the learning rate, as in
    :func:`gradtx.adamw`.

    Reference: Pagliardini, Ablin & Grangier, 2024, "The AdEMAMix Optimizer:
    Better, Faster, Older".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: :math:`\beta_1, \beta_2` in [0, 1).
      b3: :math:`\beta_3` in [0, 1], or a schedule.
      alpha: :math:`\alpha` >= 0, or a schedule.
      eps, eps_root: :math:`\epsilon, \epsilon_{root}` >= 0.
      mu_dtype: dtype of the moments (default: the params').
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params): decay only there.
      nu_dtype: dtype of the second moment alone (default: ``mu_dtype``; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import ademamix
      >>> opt = ademamix(learning_rate=0.1)
      >>> p = jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(p), p)
      >>> f"{float(u[0]):.5f}"  # -0.1·(2 + 5·2e-4)/2
      '-0.10005'
    """
    return chain(
        scale_by_ademamix(
            b1, b2, b3, alpha, eps, eps_root, mu_dtype, nu_dtype=nu_dtype
        ),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("ademamix", learning_rate),
    )


@_validate.in_callers_words()
def simplified_ademamix(
    learning_rate: ScalarOrSchedule,
    b1: chex.Numeric = 0.99,
    b2: chex.Numeric = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Simplified AdEMAMix: one undamped momentum sum plus the current gradient.

    .. math::
        m_t = \beta_1 m_{t-1} + g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
        \theta_t = \theta_{t-1} - \eta_t \left(
            \frac{m_t + \alpha g_t}
                 {\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}
            + \lambda \theta_{t-1} \right)

    with :math:`m_0 = v_0 = 0`. :math:`m_t` is a sum (about
    :math:`1/(1-\beta_1)` times an average), so learning rates are
    correspondingly smaller than Adam's; :math:`\alpha = 0` is Adam with a
    rescaled :math:`\eta` and :math:`\beta_1`.

    Reference: Morwani et al., 2025, "Connections between Schedule-Free
    Optimizers, AdEMAMix, and Accelerated SGD Variants".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      b1, b2: :math:`\beta_1, \beta_2` in [0, 1).
      alpha: :math:`\alpha` >= 0, or a schedule.
      eps, eps_root: :math:`\epsilon, \epsilon_{root}` >= 0.
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params): decay only there.
      mu_dtype, nu_dtype: dtypes of the moments (default: the params'; see
        ``docs/precision.md``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import simplified_ademamix
      >>> opt = simplified_ademamix(learning_rate=0.1)
      >>> p = jnp.zeros(1)
      >>> u, _ = opt.update(jnp.array([2.0]), opt.init(p), p)
      >>> round(float(u[0]), 4)  # -0.1·2/2
      -0.1
    """
    return chain(
        scale_by_simplified_ademamix(
            b1, b2, alpha, eps, eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype
        ),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("simplified_ademamix", learning_rate),
    )
