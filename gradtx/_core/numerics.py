"""Norms with a floor whose gradients stay finite, and a saturating counter.

``maximum(norm(x), floor)`` is the natural way to keep a divisor away from
zero, but differentiating it at ``x = 0`` gives NaN: JAX differentiates both
arguments of ``maximum`` and ``d norm / dx`` is ``x / norm = 0 / 0`` there. The
functions here evaluate the norm a second time on an input where the floored
elements are replaced by ones, so no ``0 / 0`` ever reaches the backward pass;
the value is the same and the gradient is 0 wherever the floor is active.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import maths as _maths
from . import validation as _validate
from .maths import safe_increment

__all__ = ["safe_int32_increment", "safe_norm", "safe_root_mean_squares"]

_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))

safe_int32_increment = safe_increment
"""The older name of :func:`gradtx.safe_increment` (kept for Optax parity)."""


def _check_floor(owner: str, name: str, value) -> None:
    # A floor may be an array broadcastable to the result (as in Optax); only a
    # concrete scalar can be range-checked here.
    if isinstance(value, jax.core.Tracer) or np.ndim(value) != 0:
        return
    _validate.non_negative(owner, name, value)


def _split_low_precision(x):
    """``x`` as an array computed in float32+, and the dtype to give back."""
    x = jnp.asarray(x)
    if x.dtype in _LOW_PRECISION:
        return x.astype(jnp.float32), x.dtype
    return x, None


def safe_norm(
    x: chex.Array,
    min_norm: chex.Numeric,
    ord: int | float | str | None = None,
    axis: tuple[int, ...] | int | None = None,
    keepdims: bool = False,
) -> chex.Array:
    """``maximum(norm(x), min_norm)``, with a finite gradient where ``x = 0``.

    The norm is :func:`jax.numpy.linalg.norm` (same ``ord``, ``axis`` and
    ``keepdims``). Where it is ``<= min_norm`` the result is ``min_norm`` and
    its gradient with respect to ``x`` is 0 (plain ``jnp.maximum`` gives NaN at
    ``x = 0``).

    Unlike Optax, a bfloat16/float16 ``x`` is reduced in float32 and the
    result cast back, and a concrete negative or NaN scalar ``min_norm``
    raises ``ValueError``.

    Args:
      x: the array.
      min_norm: the floor (>= 0), a scalar or an array broadcastable to the
        result.
      ord: the order of the norm, as for :func:`jax.numpy.linalg.norm`.
      axis: the axis (int) or axes (tuple) to reduce; ``None``: all of a
        vector, or a matrix norm for a 2-D ``x``.
      keepdims: keep the reduced axes with size 1.

    Returns:
      The floored norm.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import safe_norm
      >>> float(safe_norm(jnp.array([3.0, 4.0]), 1.0))
      5.0
      >>> jax.grad(lambda x: safe_norm(x, 1e-3))(jnp.zeros(2)).tolist()
      [0.0, 0.0]
    """
    _check_floor("safe_norm", "min_norm", min_norm)
    x, back = _split_low_precision(x)
    full = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    floored = full <= min_norm
    masked = jnp.linalg.norm(
        jnp.where(floored, jnp.ones_like(x), x), ord=ord, axis=axis, keepdims=keepdims
    )
    if not keepdims:
        floored = jnp.squeeze(floored, axis=axis)
    out = jnp.where(floored, min_norm, masked)
    return out if back is None else out.astype(back)


def safe_root_mean_squares(x: chex.Array, min_rms: chex.Numeric) -> chex.Array:
    """``maximum(sqrt(mean(|x|²)), min_rms)``, with a finite gradient at 0.

    The root mean square is over every element of ``x`` (``|x|²`` is the
    squared modulus for complex ``x``). Where it is ``<= min_rms`` the result
    is ``min_rms`` with gradient 0. Unlike Optax, low-precision ``x`` is
    reduced in float32 (result cast back) and a concrete negative or NaN
    ``min_rms`` raises ``ValueError``.

    Args:
      x: the array.
      min_rms: the floor (>= 0).

    Returns:
      The floored root mean square, a scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import safe_root_mean_squares
      >>> float(safe_root_mean_squares(jnp.array([3.0, 4.0, 0.0, 0.0]), 0.1))
      2.5
    """
    _check_floor("safe_root_mean_squares", "min_rms", min_rms)
    x, back = _split_low_precision(x)
    rms = lambda y: jnp.sqrt(jnp.mean(_maths.abs_sq(y)))
    floored = rms(x) <= min_rms
    out = jnp.where(floored, min_rms, rms(jnp.where(floored, jnp.ones_like(x), x)))
    return out if back is None else out.astype(back)
