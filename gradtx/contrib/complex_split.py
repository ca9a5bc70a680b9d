r"""Complex parameters optimised as pairs of real ones.

:func:`split_real_and_imaginary` hands an inner optimizer the real and
imaginary parts of every complex leaf as two real arrays, and joins the two
real updates it returns into one complex update. The inner optimizer then
behaves on a complex parameter :math:`z = x + iy` exactly as on the real pair
:math:`(x, y)`. Real leaves pass through unchanged.

JAX's gradient of a real loss with respect to a complex parameter is the
conjugate of the steepest-ascent direction :math:`\partial L/\partial x + i\,
\partial L/\partial y`; conjugate it (``jnp.conj``) before ``update``.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core.base import GradientTransformation, OptState, check_state

__all__ = [
    "SplitRealAndImaginaryArrays",
    "SplitRealAndImaginaryState",
    "split_real_and_imaginary",
]


class SplitRealAndImaginaryArrays(NamedTuple):
    """The two real arrays a complex leaf is split into (Optax's node)."""

    real: chex.Array
    imaginary: chex.Array


def _split(x: Any) -> Any:
    if x is not None and jnp.iscomplexobj(x):
        return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))
    return x


def _is_pair(x: Any) -> bool:
    return isinstance(x, SplitRealAndImaginaryArrays)


def _join(x: Any) -> Any:
    return jax.lax.complex(x.real, x.imaginary) if _is_pair(x) else x


class SplitRealAndImaginaryState(NamedTuple):
    """The inner optimizer's state, made on the split params."""

    inner_state: OptState


def split_real_and_imaginary(
    inner: GradientTransformation,
) -> GradientTransformation:
    r"""Runs ``inner`` on the real and imaginary parts of complex leaves.

    For a complex leaf :math:`z = x + iy` with update :math:`g = g_x + i g_y`:

    .. math::
        (u_x, u_y) = \mathrm{inner}\big((g_x, g_y)\big), \qquad
        u = u_x + i\, u_y

    with the inner optimizer seeing :math:`x` and :math:`y` (and
    :math:`g_x`, :math:`g_y`) as two independent real leaves, so its maths
    (norms, squares, signs) is that of the real pair. Real leaves are passed
    to ``inner`` as they are. The inner state is made on params whose complex
    leaves are :class:`SplitRealAndImaginaryArrays` nodes, as in Optax.

    Reference: the convention discussed in Optax's issue 196
    (https://github.com/google-deepmind/optax/issues/196): optimise a complex
    parameter as the pair of its real and imaginary parts.

    Args:
      inner: the transformation to run on the split (real) leaves.

    Returns:
      A :class:`~gradtx.GradientTransformation` with state
      :class:`SplitRealAndImaginaryState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import split_real_and_imaginary
      >>> opt = split_real_and_imaginary(gradtx.sign_sgd(0.1))  # sign of each part
      >>> z = jnp.array([1.0 - 2.0j])
      >>> u, _ = opt.update(jnp.array([3.0 - 0.5j]), opt.init(z), z)
      >>> complex(u[0])
      (-0.10000000149011612+0.10000000149011612j)
    """
    if not (hasattr(inner, "init") and hasattr(inner, "update")):
        raise TypeError(
            "split_real_and_imaginary: `inner` must be a GradientTransformation "
            f"(with init and update), got {type(inner).__name__}."
        )

    def init_fn(params):
        return SplitRealAndImaginaryState(inner.init(jax.tree.map(_split, params)))

    def update_fn(updates, state, params=None, **extra_args):
        check_state("split_real_and_imaginary", state, SplitRealAndImaginaryState)
        updates = jax.tree.map(_split, updates)
        params = None if params is None else jax.tree.map(_split, params)
        updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args
        )
        updates = jax.tree.map(_join, updates, is_leaf=_is_pair)
        return updates, SplitRealAndImaginaryState(inner_state)

    return GradientTransformation(init_fn, update_fn)
