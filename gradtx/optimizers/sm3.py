"""SM3 optimizer."""

import chex

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule
from ..combinators.chain import chain
from ..transforms.scaling import learning_rate_step
from ..transforms.sm3 import scale_by_sm3


@_validate.in_callers_words(momentum=("scale_by_sm3", "b1"))
def sm3(
    learning_rate: ScalarOrSchedule, momentum: chex.Numeric | None = 0.9
) -> GradientTransformation:
    r"""SM3: Adagrad with sublinear memory, one accumulator per row, column, ….

    For a leaf of rank :math:`k \ge 2` with accumulators
    :math:`\mu^{(1)}, \dots, \mu^{(k)}` (one vector per axis),

    .. math::
        \nu_t(i) = \min_{r} \mu^{(r)}_{t-1}(i_r) + g_t(i)^2, \quad
        \mu^{(r)}_t(j) = \max_{i:\, i_r = j} \nu_t(i), \\
        m_t = \beta m_{t-1} + (1-\beta) \frac{g_t}{\sqrt{\nu_t + 10^{-8}}},
        \quad \theta_t = \theta_{t-1} - \eta_t m_t

    (SM3-II, with :math:`0/0 = 0` where :math:`\nu_t = 0`). Leaves of rank
    <= 1 keep a full accumulator (plain Adagrad). Memory is the sum of the
    dimensions instead of their product.

    Differences from Optax 0.2.8: scalar leaves, empty leaves of rank >= 2
    and a schedule as learning rate work (Optax raises), and
    ``momentum=None`` means no momentum, as Optax documents (Optax raises a
    ``TypeError`` at the first update).

    Reference: Anil et al., 2019, "Memory-Efficient Adaptive Optimization".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      momentum: :math:`\beta` in [0, 1], or ``None`` for no momentum.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import sm3
      >>> opt = sm3(learning_rate=0.1, momentum=None)
      >>> u, _ = opt.update(jnp.array([[3.0, 4.0]]), opt.init(jnp.zeros((1, 2))))
      >>> [round(float(x), 4) for x in u[0]]  # -0.1 * g / |g| at the first step
      [-0.1, -0.1]
    """
    return chain(
        scale_by_sm3(0.0 if momentum is None else momentum),
        learning_rate_step("sm3", learning_rate),
    )
