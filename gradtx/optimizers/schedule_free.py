"""Schedule-free SGD and AdamW: the schedule-free wrapper around sgd and adam."""

from typing import Any

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation
from ..combinators.chain import chain
from ..schedules.polynomial import linear_schedule
from ..transforms.moments import scale_by_rms
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights
from ..wrappers.schedule_free import schedule_free
from .moments import sgd


def _warmup(owner: str, learning_rate: Any, warmup_steps: Any) -> Any:
    if warmup_steps is None:
        _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
        return learning_rate
    _validate.non_negative(owner, "learning_rate", learning_rate)
    _validate.integer(owner, "warmup_steps", warmup_steps, low=1)
    return linear_schedule(0.0, learning_rate, warmup_steps)


@_validate.in_callers_words()
def schedule_free_sgd(
    learning_rate: chex.Numeric = 1.0,
    warmup_steps: int | None = None,
    b1: chex.Numeric = 0.9,
    weight_decay: chex.Numeric | None = None,
    weight_lr_power: chex.Numeric = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-Free SGD: :func:`schedule_free` around plain SGD.

    .. math::
        y_t = (1-\beta_1) z_t + \beta_1 x_t, \quad
        z_{t+1} = z_t - \gamma_t \left(g(y_t) + \lambda y_t\right), \quad
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

    with :math:`c_{t+1}` as in :func:`schedule_free` and :math:`\lambda` =
    ``weight_decay`` (0 when ``None``; multiplied by the learning rate, as in
    PyTorch). Evaluate at :func:`schedule_free_eval_params`.

    Reference: Defazio et al., 2024, "The Road Less Scheduled".

    Args:
      learning_rate: :math:`\gamma` >= 0 (after the warmup, if any).
      warmup_steps: ``None``, or the length >= 1 of a linear warmup from 0
        (Optax accepts 0, which gives a learning rate of 0 for ever).
      b1: :math:`\beta_1` in (0, 1].
      weight_decay: :math:`\lambda` >= 0, or ``None``.
      weight_lr_power, state_dtype: as in :func:`schedule_free`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import schedule_free_sgd
      >>> opt = schedule_free_sgd(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(params, state, params)  # grad of |x|²/2
      >>> [round(x, 4) for x in (params + updates).tolist()]
      [0.9, -1.8]
    """
    owner = "schedule_free_sgd"
    learning_rate = _warmup(owner, learning_rate, warmup_steps)
    opt = sgd(learning_rate)
    if weight_decay is not None:
        _validate.non_negative(owner, "weight_decay", weight_decay)
        opt = chain(add_decayed_weights(weight_decay), opt)
    return schedule_free(opt, learning_rate, b1, weight_lr_power, state_dtype)


@_validate.in_callers_words()
def schedule_free_adamw(
    learning_rate: chex.Numeric = 0.0025,
    warmup_steps: int | None = None,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    weight_decay: chex.Numeric = 0.0,
    weight_lr_power: chex.Numeric = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-Free AdamW: :func:`schedule_free` around AdamW without momentum.

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \qquad
        z_{t+1} = z_t - \gamma_t \left(\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)}
            + \epsilon} + \lambda y_t\right)

    with :math:`g_t = g(y_t)`, and :math:`x, y` as in :func:`schedule_free`.
    The base optimizer is ``scale_by_rms(b2, eps, eps_in_sqrt=False,
    bias_correction=True)``, decoupled weight decay, then the learning rate:
    Adam with ``b1 = 0``, without storing a zero first moment.

    Reference: Defazio et al., 2024, "The Road Less Scheduled".

    Args:
      learning_rate, warmup_steps: as in :func:`schedule_free_sgd`.
      b1: :math:`\beta_1` in (0, 1], the interpolation weight.
      b2: :math:`\beta_2` in [0, 1), the decay of the second moment.
      eps: :math:`\epsilon` >= 0, added outside the square root.
      weight_decay: :math:`\lambda` >= 0.
      weight_lr_power, state_dtype: as in :func:`schedule_free`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import schedule_free_adamw
      >>> opt = schedule_free_adamw(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(params, state, params)
      >>> [round(x, 4) for x in (params + updates).tolist()]
      [0.9, -1.9]
    """
    owner = "schedule_free_adamw"
    learning_rate = _warmup(owner, learning_rate, warmup_steps)
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "weight_decay", weight_decay)
    opt = chain(
        scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False, bias_correction=True),
        add_decayed_weights(weight_decay),
        learning_rate_step(owner, learning_rate),
    )
    return schedule_free(opt, learning_rate, b1, weight_lr_power, state_dtype)
