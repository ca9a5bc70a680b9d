"""MARS: the variance-reduced gradient ``c_t = g_t + γ·β/(1 − β)·(g_t − g_{t−1})``.

The alias, with the full rule and references, is :func:`gradtx.mars_adamw`.
"""

from typing import NamedTuple

import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import map_leaves, state_zeros_like
from .._core.traits import declare, elementwise


class ScaleByMarsState(NamedTuple):
    """The previous gradient (zeros before the first step)."""

    prev_grad: Updates


def mars_leaf(g, prev, coeff, max_norm):
    """One leaf: ``(c, g)``, ``c = g + coeff·(g − prev)`` clipped to
    ``‖c‖₂ <= max_norm`` (``None``: not clipped)."""
    c = g + coeff * (g - prev)
    if max_norm is not None:
        norm = _maths.l2_norm(c)
        c = jnp.where(norm > max_norm, c * (max_norm / norm), c)
    return c, g


def scale_by_mars(
    b1: float = 0.95, gamma: float = 0.025, max_norm: float | None = 1.0
) -> GradientTransformation:
    """MARS's corrected gradient: ``c_t = g_t + γ·b1/(1 − b1)·(g_t − g_{t−1})``.

    ``g_0 = 0``, so the first correction is ``(1 + γ·b1/(1 − b1))·g_1``. Each
    leaf's ``c_t`` is then rescaled to an l2 norm of at most ``max_norm``. Use
    it before any optimizer (:func:`gradtx.mars_adamw` puts Adam after it).

    Args:
      b1: the momentum decay β of the optimizer that follows, in [0, 1): the
        correction's weight is ``γ·β/(1 − β)``.
      gamma: γ >= 0, the strength of the correction.
      max_norm: the largest l2 norm (> 0) of each leaf's ``c_t``; ``None`` does
        not clip (the transformation is then elementwise).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByMarsState`.
    """
    owner = "scale_by_mars"
    _validate.decay(owner, "b1", b1)
    _validate.non_negative(owner, "gamma", gamma)
    if max_norm is not None:
        _validate.positive(owner, "max_norm", max_norm)

    def init_fn(params):
        return ScaleByMarsState(prev_grad=state_zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByMarsState)
        coeff = gamma * b1 / _maths.one_minus(b1)
        updates, prev = map_leaves(
            lambda g, p: mars_leaf(g, p, coeff, max_norm),
            updates,
            state.prev_grad,
            names=["prev_grad"],
            owner=owner,
            nout=2,
            complex_ok="MARS's per-leaf clipping is real-only here",
        )
        return updates, ScaleByMarsState(prev)

    tx = GradientTransformation(init_fn, update_fn)
    if max_norm is None:
        return elementwise(tx)
    return declare(tx, reason="it clips each leaf's corrected gradient by its norm")
