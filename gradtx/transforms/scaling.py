"""Scaling by a constant, a learning rate or a schedule."""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    Schedule,
    check_state,
    identity,
    init_empty_state,
)
from .._core.lifting import map_leaves
from .._core.traits import described, elementwise

ScaleState = EmptyState


def scale(step_size: chex.Numeric) -> GradientTransformation:
    """Multiplies every update by a constant: ``u ← step_size · u``.

    Args:
      step_size: any real number (negative to descend).

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale(-0.1)
      >>> u, _ = tx.update(jnp.array([1.0, 2.0]), tx.init(None))
      >>> u.tolist()
      [-0.10000000149011612, -0.20000000298023224]
    """
    _validate.number("scale", "step_size", step_size)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return map_leaves(lambda g: step_size * g, updates, owner="scale"), state

    tx = GradientTransformation(init_empty_state, update_fn)
    return elementwise(described(tx, "scale", step_size=step_size))


class ScaleByScheduleState(NamedTuple):
    """The number of updates done so far (int32, saturating)."""

    count: chex.Array


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiplies updates by a scheduled factor: ``u ← s(t) · u``, t = 0, 1, …

    Args:
      step_size_fn: a schedule, called with the number of updates done before
        this one (an int32 scalar).

    Returns:
      A :class:`GradientTransformation` whose state counts the steps.
    """
    if not callable(step_size_fn):
        raise TypeError(
            "scale_by_schedule: `step_size_fn` must be callable (step -> value), "
            f"got {step_size_fn!r}."
        )

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state("scale_by_schedule", state, ScaleByScheduleState)
        step_size = step_size_fn(state.count)
        if jnp.ndim(step_size) != 0:
            raise ValueError(
                "scale_by_schedule: the schedule must return a scalar, got shape "
                f"{jnp.shape(step_size)}; a per-leaf or per-element step would "
                "broadcast the updates into another shape."
            )
        updates = map_leaves(
            lambda g: step_size * g, updates, owner="scale_by_schedule"
        )
        return updates, ScaleByScheduleState(_maths.safe_increment(state.count))

    tx = GradientTransformation(init_fn, update_fn)
    return elementwise(described(tx, "schedule", step_size_fn=step_size_fn))


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None = None,
    *,
    flip_sign: bool = True,
) -> GradientTransformation:
    """Scales updates by the learning rate: ``u ← −η · u`` (``+η`` if not flipped).

    Args:
      learning_rate: a number >= 0 or a schedule; ``None`` gives the identity.
      flip_sign: negate the result, so that adding it to the params descends.

    Returns:
      :func:`scale` for a number, :func:`scale_by_schedule` for a schedule.
    """
    _validate.flag("scale_by_learning_rate", "flip_sign", flip_sign)
    if learning_rate is None:
        return identity()
    _validate.scalar_or_schedule(
        "scale_by_learning_rate", "learning_rate", learning_rate
    )
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


@jax.custom_vjp
def _scaled_backward(inputs, scale):
    del scale
    return inputs


def _scaled_backward_fwd(inputs, scale):
    return inputs, scale


def _scaled_backward_bwd(scale, cotangents):
    def leaf(c):
        out = c * scale
        return out if out.dtype == c.dtype else out.astype(c.dtype)

    return jax.tree.map(leaf, cotangents), None


_scaled_backward.defvjp(_scaled_backward_fwd, _scaled_backward_bwd)


def scale_gradient(inputs: chex.ArrayTree, scale: chex.Numeric) -> chex.ArrayTree:
    """The identity on the forward pass; multiplies gradients by ``scale`` backward.

    ``scale = 0`` stops the gradient, ``scale = −1`` reverses it (a
    gradient-reversal layer). A concrete ``scale`` of exactly 1 or 0 takes the
    cheap paths (no-op, :func:`jax.lax.stop_gradient`); a traced ``scale`` is
    accepted too (Optax's test of its value fails under ``jit``).

    Args:
      inputs: a pytree of arrays.
      scale: the factor applied to the gradient (a real scalar).

    Returns:
      ``inputs``, unchanged in value.

    Examples:
      >>> import jax
      >>> from gradtx import scale_gradient
      >>> float(jax.grad(lambda x: scale_gradient(x, 0.5) ** 2)(3.0))
      3.0
    """
    _validate.number("scale_gradient", "scale", scale)
    if not isinstance(scale, jax.core.Tracer):
        if float(scale) == 1.0:
            return inputs
        if float(scale) == 0.0:
            return jax.lax.stop_gradient(inputs)
    return _scaled_backward(inputs, scale)


def learning_rate_step(owner: str, learning_rate: Any) -> GradientTransformation:
    """``scale_by_learning_rate(learning_rate)``, validated in ``owner``'s name.

    The last link of most aliases: a missing or invalid learning rate is
    reported under the alias the user called (``adam: `learning_rate` ...``).
    """
    if learning_rate is None:
        raise ValueError(
            f"{owner}: `learning_rate` is required (a number >= 0 or a schedule)."
        )
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    return scale_by_learning_rate(learning_rate)
