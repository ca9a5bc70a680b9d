"""Sign-based scalings: sign of the update and Lion's interpolated sign."""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state, init_empty_state
from .._core.lifting import map_leaves, state_zeros_like
from .._core.traits import elementwise

_NO_COMPLEX_SIGN = "the sign of a complex number is undefined"


def scale_by_sign() -> GradientTransformation:
    """Replaces every update by its sign: ``u = sign(g)`` (−1, 0 or 1).

    See :func:`gradtx.sign_sgd` and :func:`gradtx.signum`.

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_sign
      >>> tx = scale_by_sign()
      >>> u, _ = tx.update(jnp.array([-3.0, 0.0, 0.5]), tx.init(None))
      >>> u.tolist()
      [-1.0, 0.0, 1.0]
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return map_leaves(
            jnp.sign,
            updates,
            owner="scale_by_sign",
            complex_ok=_NO_COMPLEX_SIGN,
        ), state

    return elementwise(GradientTransformation(init_empty_state, update_fn))


class ScaleByLionState(NamedTuple):
    """Step count (int32, saturating) and the momentum ``m``."""

    count: chex.Array
    mu: Updates


_LION_MODES = ("hard", "smooth", "refined")


def _lion_sign(x, mode, smooth_beta):
    if mode == "hard":
        return jnp.sign(x)
    if mode == "smooth":
        return jnp.tanh(smooth_beta * x)
    return jnp.where(jnp.abs(x) < 1.0, x, jnp.sign(x))  # refined


def scale_by_lion(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: float = 1.0,
) -> GradientTransformation:
    """Lion scaling: ``u = sign((1 − b1)·g + b1·m)``, then ``m ← (1 − b2)·g + b2·m``.

    The step interpolates the gradient and the *previous* momentum with ``b1``;
    the momentum itself is tracked with the slower ``b2``. See
    :func:`gradtx.lion` for the full rule and reference.

    Args:
      b1: interpolation weight of the momentum in the step, in [0, 1].
      b2: decay of the momentum, in [0, 1].
      mu_dtype: dtype of the momentum (default: the params').
      mode: ``"hard"`` takes the sign; ``"smooth"`` takes
        ``tanh(smooth_beta · x)``; ``"refined"`` keeps ``x`` where ``|x| < 1``
        and takes the sign elsewhere.
      smooth_beta: the slope > 0 of the ``"smooth"`` mode.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByLionState`.
    """
    owner = "scale_by_lion"
    _validate.decay(owner, "b1", b1, allow_one=True)
    _validate.decay(owner, "b2", b2, allow_one=True)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
    if mode not in _LION_MODES:
        raise ValueError(f"{owner}: `mode` must be one of {_LION_MODES}, got {mode!r}.")
    _validate.positive(owner, "smooth_beta", smooth_beta)

    def init_fn(params):
        return ScaleByLionState(
            count=jnp.zeros([], jnp.int32), mu=state_zeros_like(params, mu_dtype)
        )

    def leaf(g, m):
        step = _lion_sign(_maths.ema(g, m, b1), mode, smooth_beta)
        return step, _maths.ema(g, m, b2)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByLionState)
        updates, mu = map_leaves(
            leaf,
            updates,
            state.mu,
            names=["mu"],
            owner=owner,
            nout=2,
            complex_ok=_NO_COMPLEX_SIGN,
        )
        return updates, ScaleByLionState(_maths.safe_increment(state.count), mu)

    return elementwise(GradientTransformation(init_fn, update_fn))
