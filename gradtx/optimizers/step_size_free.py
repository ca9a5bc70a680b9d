"""Step-size-free optimizers: Polyak's step size."""

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.step_size_free import scale_by_polyak
from .moments import sgd


@_validate.in_callers_words()
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
      >>> from gradtx import polyak_sgd
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
