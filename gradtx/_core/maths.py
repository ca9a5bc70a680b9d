"""Per-array arithmetic shared by several transformations.

Functions here act on single arrays (or scalars) and know nothing of pytrees;
:mod:`gradtx._core.lifting` lifts them to trees.
"""

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np


def abs_sq(x: chex.Array) -> chex.Array:
    """``|x|²``, real-valued for complex ``x``."""
    if jnp.iscomplexobj(x):
        return (x.conj() * x).real
    return x * x


class Complemented:
    """A scalar hyperparameter that carries its complement ``1 − value``.

    ``1 − d`` for a Python float ``d`` is rounded from double precision (what
    Optax and a plain gradtx optimizer compute), whereas a float32 array ``h``
    holding ``d`` gives ``1 − h`` (``0.999`` → 1.3e-5 relative off ``0.001``).
    :func:`gradtx.inject_hyperparams` keeps hyperparameters as float32 arrays,
    so it hands them to the factory in this form: :func:`one_minus` reads
    ``complement``; every other operation (arithmetic, comparisons,
    ``jnp.asarray``, ``float``) sees ``value``. It is a pytree of its two
    scalars, so it passes through ``jit``, ``vmap`` and ``lax`` control flow.
    ``1 - x`` spelt out is ``1 - value``: only :func:`one_minus` reads the
    complement.
    """

    __slots__ = ("complement", "value")
    __array_priority__ = 1000  # NumPy defers its operators to ours

    def __init__(self, value: chex.Array, complement: chex.Array):
        self.value = value
        self.complement = complement

    def __repr__(self) -> str:
        return f"Complemented({self.value!r}, complement={self.complement!r})"

    dtype = property(lambda self: jnp.result_type(self.value))
    shape = property(lambda self: jnp.shape(self.value))
    ndim = property(lambda self: jnp.ndim(self.value))
    size = property(lambda self: jnp.size(self.value))
    weak_type = property(lambda self: getattr(self.value, "weak_type", False))

    def astype(self, dtype: Any) -> chex.Array:
        return jnp.asarray(self.value).astype(dtype)

    def __jax_array__(self) -> chex.Array:
        return jnp.asarray(self.value)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        del copy
        return np.asarray(self.value, dtype)

    def __float__(self) -> float:
        return float(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __neg__(self):
        return -self.value

    def __pos__(self):
        return +self.value

    def __abs__(self):
        return abs(self.value)

    __hash__ = None  # an array is not hashable either


def _forward(name: str):
    def op(self, *args):
        return getattr(self.value, name)(*(_plain(a) for a in args))

    op.__name__ = name
    return op


def _plain(x: Any) -> Any:
    return x.value if isinstance(x, Complemented) else x


for _name in (
    "add mul sub truediv floordiv mod pow lt le gt ge eq ne "
    "radd rmul rsub rtruediv rfloordiv rmod rpow"
).split():
    setattr(Complemented, f"__{_name}__", _forward(f"__{_name}__"))
del _name

jax.tree_util.register_pytree_node(
    Complemented,
    lambda x: ((x.value, x.complement), None),
    lambda _, children: Complemented(*children),
)


def plain(x: Any) -> Any:
    """``x``, or the value a :class:`Complemented` ``x`` holds."""
    return _plain(x)


def one_minus(x: chex.Numeric) -> chex.Numeric:
    """``1 − x``, the complement of a decay or mixing rate.

    For a :class:`Complemented` ``x`` (how :func:`gradtx.inject_hyperparams`
    passes a Python float it holds as a float32 array) the complement it
    carries, rounded as the plain optimizer rounds ``1 − d``. Every
    ``1 − hyperparameter`` in gradtx's maths goes through here.
    """
    if isinstance(x, Complemented):
        return x.complement
    return 1 - x


def sqrt0(x: chex.Array) -> chex.Array:
    """``sqrt(x)`` for ``x >= 0``, with gradient 0, not NaN, at ``x = 0``.

    A NaN stays NaN (a norm of a leaf holding NaN must not read as 0).
    """
    zero = x == 0
    return jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, x)))


RESCUE_SCALE = 2.0**-64


def scaled_sum_of_squares(
    x: chex.Array, axis: Any = None, keepdims: bool = False, mean: bool = False
) -> chex.Array:
    """``Σ |x · 2^-64|²`` (or the mean): for when the plain sum of squares overflowed.

    Some square then exceeds ~1e38 / n, so elements whose scaled squares
    underflow (|x| < ~2) change the norm by less than one part in 1e38 / n.
    The norm is ``sqrt`` of this divided by :data:`RESCUE_SCALE`.
    """
    scale = jnp.asarray(RESCUE_SCALE, jnp.real(x).dtype)
    reduce = jnp.mean if mean else jnp.sum
    return reduce(abs_sq(x * scale), axis=axis, keepdims=keepdims)


def _rescaled_norm(x: chex.Array, axis: Any, keepdims: bool, mean: bool) -> chex.Array:
    return sqrt0(scaled_sum_of_squares(x, axis, keepdims, mean)) / RESCUE_SCALE


def l2_norm(
    x: chex.Array, axis: Any = None, keepdims: bool = False, mean: bool = False
) -> chex.Array:
    """``sqrt(Σ|x|²)`` (``mean``: ``sqrt(mean |x|²)``), finite when representable.

    The plain sum of squares is computed first; only if it overflowed (the
    elements are finite but above ~1e19 in float32) is the norm recomputed with
    the elements scaled by their maximum, under ``lax.cond`` so ordinary inputs
    pay one scalar test. Non-finite elements still give ``inf`` or NaN.
    """
    axis = tuple(axis) if isinstance(axis, list) else axis  # hashable, for the cache
    reduce = jnp.mean if mean else jnp.sum
    sq = reduce(abs_sq(x), axis=axis, keepdims=keepdims)
    rescue, plain = _norm_branches(axis, keepdims, mean)
    return jax.lax.cond(jnp.any(jnp.isposinf(sq)), rescue, plain, x, sq)


@functools.cache
def _norm_branches(axis: Any, keepdims: bool, mean: bool) -> tuple:
    """:func:`l2_norm`'s ``lax.cond`` branches, made once per configuration so
    that eager calls hit JAX's compilation cache instead of recompiling."""

    def rescue(x, sq):
        rescaled = _rescaled_norm(x, axis, keepdims, mean)
        return jnp.where(jnp.isposinf(sq), rescaled, sqrt0(sq))

    def plain(x, sq):
        del x
        return sqrt0(sq)

    return rescue, plain


def ema(g: chex.Array, m: chex.Array, decay: chex.Numeric) -> chex.Array:
    """One step of an exponential moving average: ``(1 − d)·g + d·m``."""
    return one_minus(decay) * g + decay * m


def ema_sq(g: chex.Array, v: chex.Array, decay: chex.Numeric) -> chex.Array:
    """One step of an exponential moving average of ``|g|²``."""
    return one_minus(decay) * abs_sq(g) + decay * v


def infinity_moment(
    g: chex.Array, u: chex.Array, decay: chex.Numeric, eps: chex.Numeric
) -> chex.Array:
    """The exponentially weighted infinity norm: ``max(d·u, |g| + eps)``."""
    return jnp.maximum(decay * u, jnp.abs(g) + eps)


@functools.partial(jax.jit, inline=True)
def debias_factor(decay: chex.Numeric, count: chex.Array) -> chex.Array:
    """``1 − decay^count``: divide a zero-started average by it to unbias it.

    Always compiled (and inlined into an enclosing jit), so eager and jitted
    code round it the same way: evaluated op by op, float32 ``pow`` followed by
    the subtraction loses ~1e-5 relative for ``decay = 0.999`` at small counts.
    """
    return 1 - decay**count


def safe_increment(count: chex.Array) -> chex.Array:
    """``count + 1``, saturating at the largest value of its dtype.

    An int32 step counter therefore never wraps around to a negative number
    (which would flip the sign of ``decay^count``-style bias corrections).

    Args:
      count: an integer or float array (a step counter, usually int32
        scalar).

    Returns:
      ``count + 1`` in ``count``'s dtype, or its largest value there.

    Raises:
      ValueError: if ``count`` is neither an integer nor a float array.
    """
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        top = jnp.iinfo(count.dtype).max
    elif jnp.issubdtype(count.dtype, jnp.floating):
        top = jnp.finfo(count.dtype).max
    else:  # ValueError, as Optax raises (bool, complex, …)
        raise ValueError(
            f"safe_increment: count must be an integer or float array, got "
            f"dtype {count.dtype}."
        )
    top = jnp.asarray(top, count.dtype)
    return jnp.where(count < top, count + jnp.asarray(1, count.dtype), top)


def axis_gram(x: chex.Array, axis: int, batch_dims: int = 0) -> chex.Array:
    """``X_(axis) X_(axis)ᵀ``: the Gram matrix of ``x`` along ``axis``,
    contracting every other axis but the leading ``batch_dims`` (kept first).

    The Kronecker-factor statistic of SOAP, Shampoo and PSGD-Kron; products
    at the highest precision (float32 accumulation on TPU and GPU).
    """
    batch = list(range(batch_dims))
    others = [i for i in range(batch_dims, jnp.ndim(x)) if i != axis]
    return jax.lax.dot_general(
        x, x, ((others, others), (batch, batch)), precision=jax.lax.Precision.HIGHEST
    )
