"""Noisy SGD: SGD on gradients with annealed Gaussian noise."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.noise import add_noise
from ..transforms.scaling import learning_rate_step


@_validate.in_callers_words()
def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: chex.Numeric = 0.01,
    gamma: chex.Numeric = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""SGD with annealed Gaussian gradient noise.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left(g_t + \sigma_t \xi_t\right),
        \qquad \sigma_t^2 = \frac{\eta}{t^{\gamma}}, \quad
        \xi_t \sim N(0, I)

    with :math:`\eta` = ``eta`` the initial noise variance (not the learning
    rate :math:`\eta_t`) and :math:`\gamma` = ``gamma``. The noise comes from
    the PRNG key kept in the state (:class:`gradtx.AddNoiseState`): the same
    key gives the same trajectory.

    Reference: Neelakantan et al., 2015, "Adding Gradient Noise Improves
    Learning for Very Deep Networks".

    Args:
      learning_rate: :math:`\eta_t`, a number >= 0 or a schedule.
      eta: the initial noise variance, >= 0.
      gamma: the annealing exponent, >= 0.
      key: a PRNG key or an integer seed (``None`` warns and uses 0).
      seed: deprecated spelling of ``key``; warns.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import noisy_sgd
      >>> opt = noisy_sgd(learning_rate=0.1, eta=0.0, key=jax.random.key(0))
      >>> u, _ = opt.update(jnp.array([1.0, -2.0]), opt.init(jnp.zeros(2)))
      >>> [round(float(x), 4) for x in u]  # no noise with eta = 0
      [-0.1, 0.2]
    """
    return chain(
        add_noise(eta, gamma, key, seed=seed),
        learning_rate_step("noisy_sgd", learning_rate),
    )
