"""Prodigy: learning-rate-free AdamW (the alias of :func:`scale_by_prodigy`)."""

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from .._core.validation import renamed_errors
from ..transforms.prodigy import scale_by_prodigy


@_validate.in_callers_words()
def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[chex.Numeric, chex.Numeric] = (0.9, 0.999),
    beta3: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-8,
    estim_lr0: chex.Numeric = 1e-6,
    estim_lr_coef: chex.Numeric = 1.0,
    weight_decay: chex.Numeric = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    r"""Prodigy: learning-rate-free AdamW (D-Adaptation with faster growth).

    With :math:`d_t` the current estimate of the distance to the solution,
    :math:`\eta_t` the schedule, :math:`\lambda_t = d_t \eta_t
    \sqrt{1-\beta_2^t} / (1-\beta_1^t)` and :math:`x_0` the starting params:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) d_t g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2 g_t^2, \\
        r_t = \beta_3 r_{t-1} + \frac{d_t}{d_0} \lambda_t
              \langle g_t, x_0 - x_t \rangle, \quad
        s_t = \beta_3 s_{t-1} + \frac{d_t}{d_0} \lambda_t g_t, \\
        d_{t+1} = \max\left(d_t, \; c \, \frac{r_t}{\|s_t\|_1}\right), \quad
        x_{t+1} = x_t - \lambda_t \left(\frac{m_t}{\sqrt{v_t} + d_{t+1}\epsilon}
                  + w \, x_t\right)

    with :math:`m_0 = v_0 = s_0 = 0`, :math:`r_0 = 0`, :math:`d_0` =
    ``estim_lr0``, :math:`c` = ``estim_lr_coef``, :math:`w` = ``weight_decay``
    and :math:`\beta_3 = \sqrt{\beta_2}` by default. With
    ``safeguard_warmup`` the sum :math:`s_t` uses :math:`d_t` in place of
    :math:`\lambda_t` (no schedule), which keeps a warm-up from shrinking the
    denominator. The optimizer is the single primitive
    :func:`gradtx.transforms.scale_by_prodigy` (as in Optax, its state is a
    :class:`ProdigyState`): :math:`d_t` couples every leaf.

    Differences from Optax (same numbers otherwise): while :math:`s_t = 0`
    (every gradient so far zero) the estimate is kept instead of becoming
    ``0/0 = NaN`` and poisoning every later step; the scalars are accumulated
    in float32 at least; invalid hyperparameters raise.

    Reference: Mishchenko & Defazio, 2024, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner" (Algorithm 4, Adam version).

    Args:
      learning_rate: :math:`\eta`, a schedule multiplier (>= 0, default 1.0;
        typically a warm-up and decay from 1 to 0).
      betas: :math:`(\beta_1, \beta_2)`, Adam's decays, each in [0, 1).
      beta3: :math:`\beta_3` in [0, 1], the decay of the estimate's sums, or
        ``None`` for :math:`\sqrt{\beta_2}`.
      eps: :math:`\epsilon` >= 0, scaled by :math:`d_{t+1}`.
      estim_lr0: :math:`d_0 > 0`, the initial under-estimate.
      estim_lr_coef: :math:`c > 0`, multiplies every estimate.
      weight_decay: :math:`w >= 0`, AdamW-style decay.
      safeguard_warmup: leave the schedule out of :math:`s_t`.

    Returns:
      A :class:`GradientTransformation` with state :class:`ProdigyState`; its
      ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import prodigy
      >>> params = jnp.array([1.0, -2.0])
      >>> opt = prodigy()
      >>> state = opt.init(params)
      >>> u, state = opt.update(jnp.array([0.5, -0.5]), state, params)
      >>> [f"{float(x):.2e}" for x in u]  # the first step is d_0-sized
      ['-1.00e-06', '1.00e-06']
    """
    with renamed_errors("scale_by_prodigy", "prodigy"):
        return scale_by_prodigy(
            learning_rate=learning_rate,
            betas=betas,
            beta3=beta3,
            eps=eps,
            estim_lr0=estim_lr0,
            estim_lr_coef=estim_lr_coef,
            weight_decay=weight_decay,
            safeguard_warmup=safeguard_warmup,
        )
