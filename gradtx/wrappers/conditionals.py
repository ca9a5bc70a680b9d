"""Wrappers that run an inner transformation only on some steps.

* :func:`conditionally_transform` runs the inner transformation when a
  predicate of the step count holds and passes updates through otherwise;
* :func:`conditionally_mask` does the same but returns zeros otherwise;
* :func:`apply_if_finite` skips steps whose updates hold an Inf or a NaN.

Each wrapper decides with :func:`jax.lax.cond`, so the inner transformation's
work is done only on the steps that use it (under ``vmap`` with a batched
predicate, ``cond`` becomes a select and both branches run, as usual in JAX).
The inner state is left exactly as it was on the steps that skip it.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    GradientTransformation,
    OptState,
    check_state,
    with_extra_args_support,
)
from .._core.maths import safe_increment
from .._core.placement import zeros_typed_like
from .._core.traits import composed
from ..combinators.chain import check_transforms


class ConditionFn(Protocol):
    """``should_transform_fn(step, **extra_args) -> bool scalar``."""

    def __call__(self, step: chex.Array, **extra_args: Any) -> chex.Array: ...


def zeros_like_output(fn: Callable[..., Any], *args: Any) -> Any:
    """Zeros shaped like ``fn(*args)``, found without running ``fn``."""
    shapes = jax.eval_shape(fn, *args)
    return jax.tree.map(zeros_typed_like, shapes)


def keep_dtypes(new: Any, old: Any) -> Any:
    """``new`` with every leaf cast to the dtype of the matching leaf of ``old``.

    Both branches of a ``lax.cond`` must return the same dtypes; an inner
    transformation that promotes a state leaf would otherwise fail there.
    """
    return jax.tree.map(
        lambda n, o: jnp.asarray(n).astype(jnp.result_type(o)), new, old
    )


def check_predicate(owner: str, name: str, pred: Any) -> chex.Array:
    """``pred`` as an array, or a clear error when it is not a bool scalar."""
    pred = jnp.asarray(pred)
    if pred.shape != () or not (
        pred.dtype == jnp.bool_ or jnp.issubdtype(pred.dtype, jnp.integer)
    ):
        raise ValueError(
            f"{owner}: `{name}` must return a boolean scalar, got an array of "
            f"dtype {pred.dtype} and shape {pred.shape}."
        )
    return pred


def _check_condition_args(owner, inner, should_transform_fn, forward_extra_args):
    check_transforms(owner, [inner])
    if not callable(should_transform_fn):
        raise TypeError(
            f"{owner}: `should_transform_fn` must be a function of the step "
            f"count, got {should_transform_fn!r}."
        )
    _validate.flag(owner, "forward_extra_args", forward_extra_args)


def _conditional_update(owner, inner, should_transform_fn, forward_extra_args, zero):
    """The shared update: returns ``update(updates, step, inner_state, …)``."""

    def update(updates, step, inner_state, params, extra_args):
        kwargs = extra_args if forward_extra_args else {}
        pred = check_predicate(
            owner, "should_transform_fn", should_transform_fn(step, **kwargs)
        )

        def run(u, s, p):
            new_u, new_s = inner.update(u, s, p, **extra_args)
            return new_u, keep_dtypes(new_s, s)

        def hold(u, s, p):
            del p
            return (jax.tree.map(jnp.zeros_like, u) if zero else u), s

        return jax.lax.cond(pred, run, hold, updates, inner_state, params)

    return update


class ConditionallyTransformState(NamedTuple):
    """The inner state and the number of calls to ``update`` so far (int32)."""

    inner_state: Any
    step: chex.Array


def conditionally_transform(
    inner: GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    """Runs ``inner`` on the steps where ``should_transform_fn(step)`` holds.

    On the other steps the updates pass through unchanged and the inner state
    is kept as it was. ``step`` counts the calls to ``update`` (0 on the first
    call), whichever branch they took. To return zeros instead of the
    unchanged updates, use :func:`conditionally_mask`.

    Args:
      inner: the transformation to run conditionally.
      should_transform_fn: ``f(step) -> bool scalar``, ``step`` an int32
        scalar; it also receives the extra keyword arguments of ``update``
        when ``forward_extra_args`` is True.
      forward_extra_args: pass ``update``'s extra keyword arguments to
        ``should_transform_fn``.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ConditionallyTransformState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import conditionally_transform
      >>> from gradtx import scale
      >>> tx = conditionally_transform(scale(10.0), lambda step: step % 2 == 0)
      >>> state = tx.init(jnp.zeros(1))
      >>> for _ in range(3):
      ...     u, state = tx.update(jnp.ones(1), state)
      ...     print(u.tolist())
      [10.0]
      [1.0]
      [10.0]
    """
    owner = "conditionally_transform"
    _check_condition_args(owner, inner, should_transform_fn, forward_extra_args)
    inner = with_extra_args_support(inner)
    cond_update = _conditional_update(
        owner, inner, should_transform_fn, forward_extra_args, zero=False
    )

    def init_fn(params):
        return ConditionallyTransformState(
            inner_state=inner.init(params), step=jnp.zeros([], jnp.int32)
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, ConditionallyTransformState)
        updates, inner_state = cond_update(
            updates, state.step, state.inner_state, params, extra_args
        )
        return updates, ConditionallyTransformState(
            inner_state, safe_increment(state.step)
        )

    return composed(GradientTransformation(init_fn, update_fn), [inner])


class ConditionallyMaskState(NamedTuple):
    """The number of calls to ``update`` so far (int32) and the inner state."""

    step: chex.Array
    inner_state: OptState


def conditionally_mask(
    inner: GradientTransformation,
    should_transform_fn: ConditionFn,
    forward_extra_args: bool = False,
) -> GradientTransformation:
    """Runs ``inner`` where ``should_transform_fn(step)`` holds; zeros elsewhere.

    Like :func:`conditionally_transform`, except that the steps that skip
    ``inner`` return zero updates (shaped and typed like the incoming ones).

    Args:
      inner: the transformation to run conditionally.
      should_transform_fn: ``f(step) -> bool scalar``, ``step`` an int32
        scalar counting the calls to ``update``.
      forward_extra_args: pass ``update``'s extra keyword arguments to
        ``should_transform_fn``.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ConditionallyMaskState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import conditionally_mask
      >>> from gradtx import scale
      >>> tx = conditionally_mask(scale(10.0), lambda step: step >= 1)
      >>> state = tx.init(jnp.zeros(1))
      >>> for _ in range(2):
      ...     u, state = tx.update(jnp.ones(1), state)
      ...     print(u.tolist())
      [0.0]
      [10.0]
    """
    owner = "conditionally_mask"
    _check_condition_args(owner, inner, should_transform_fn, forward_extra_args)
    inner = with_extra_args_support(inner)
    cond_update = _conditional_update(
        owner, inner, should_transform_fn, forward_extra_args, zero=True
    )

    def init_fn(params):
        return ConditionallyMaskState(
            step=jnp.zeros([], jnp.int32), inner_state=inner.init(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, ConditionallyMaskState)
        updates, inner_state = cond_update(
            updates, state.step, state.inner_state, params, extra_args
        )
        return updates, ConditionallyMaskState(safe_increment(state.step), inner_state)

    return composed(GradientTransformation(init_fn, update_fn), [inner])


class ApplyIfFiniteState(NamedTuple):
    """Counters of non-finite steps, and the inner state.

    Attributes:
      notfinite_count: consecutive steps (int32) whose updates held an Inf or a
        NaN, up to this one; 0 after a finite step.
      last_finite: whether this step's updates were all finite (bool).
      total_notfinite: all steps (int32) whose updates held an Inf or a NaN
        since ``init``; never reset.
      inner_state: the inner transformation's state.
    """

    notfinite_count: chex.Array
    last_finite: chex.Array
    total_notfinite: chex.Array
    inner_state: Any


def all_finite(tree: Any) -> chex.Array:
    """Whether every element of every leaf of ``tree`` is finite (a bool scalar)."""
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, flags, jnp.array(True))


def apply_if_finite(
    inner: GradientTransformation,
    max_consecutive_errors: int,
    *,
    apply_after_max_errors: bool = False,
) -> GradientTransformation:
    """Skips the steps whose updates hold an Inf or a NaN.

    On a step whose incoming updates are all finite, ``inner`` runs as usual.
    On a step with any non-finite element, ``inner`` does not run: the updates
    are zeros and the inner state is kept, so one bad batch (an overflow in
    mixed precision, a division by zero in the loss) costs one step instead of
    the run. The state counts the consecutive and total non-finite steps.

    **Unlike Optax, by default this never gives up.** Optax applies the
    non-finite updates once more than ``max_consecutive_errors`` steps in a
    row were non-finite, which writes NaN into the inner state and the
    params and cannot be undone. gradtx keeps skipping and keeps counting
    instead; ``state.notfinite_count > max_consecutive_errors`` is the signal
    for the training loop to stop (or restore a checkpoint)::

        if state.notfinite_count > max_consecutive_errors:
            raise RuntimeError("too many non-finite gradients in a row")

    Pass ``apply_after_max_errors=True`` to get Optax's behaviour.

    Args:
      inner: the transformation to protect.
      max_consecutive_errors: the number (>= 0) of consecutive non-finite
        steps after which training should stop; with
        ``apply_after_max_errors=True``, the number of such steps skipped
        before the non-finite updates are applied.
      apply_after_max_errors: apply the non-finite updates once more than
        ``max_consecutive_errors`` steps in a row were non-finite (Optax's
        behaviour; writes NaN into the params).

    Returns:
      A :class:`GradientTransformation` with state :class:`ApplyIfFiniteState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import apply_if_finite
      >>> from gradtx import scale
      >>> tx = apply_if_finite(scale(-0.1), max_consecutive_errors=3)
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.array([1.0, jnp.nan]), state)
      >>> u.tolist(), int(state.notfinite_count), bool(state.last_finite)
      ([0.0, 0.0], 1, False)
      >>> u, state = tx.update(jnp.array([1.0, 2.0]), state)
      >>> u.tolist(), int(state.notfinite_count), int(state.total_notfinite)
      ([-0.10000000149011612, -0.20000000298023224], 0, 1)
    """
    owner = "apply_if_finite"
    check_transforms(owner, [inner])
    _validate.integer(owner, "max_consecutive_errors", max_consecutive_errors)
    _validate.flag(owner, "apply_after_max_errors", apply_after_max_errors)
    inner = with_extra_args_support(inner)

    def init_fn(params):
        return ApplyIfFiniteState(
            notfinite_count=jnp.zeros([], jnp.int32),
            last_finite=jnp.array(True, jnp.bool_),
            total_notfinite=jnp.zeros([], jnp.int32),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, ApplyIfFiniteState)
        finite = all_finite(updates)
        notfinite_count = jnp.where(
            finite, jnp.zeros([], jnp.int32), safe_increment(state.notfinite_count)
        )
        run_inner = finite
        if apply_after_max_errors:
            run_inner = finite | (notfinite_count > max_consecutive_errors)

        def run(u, s, p):
            new_u, new_s = inner.update(u, s, p, **extra_args)
            return new_u, keep_dtypes(new_s, s)

        def skip(u, s, p):
            zeros = zeros_like_output(lambda *a: run(*a)[0], u, s, p)
            return zeros, s

        updates, inner_state = jax.lax.cond(
            run_inner, run, skip, updates, state.inner_state, params
        )
        total = state.total_notfinite
        return updates, ApplyIfFiniteState(
            notfinite_count=notfinite_count,
            last_finite=finite,
            total_notfinite=jnp.where(finite, total, safe_increment(total)),
            inner_state=inner_state,
        )

    return composed(GradientTransformation(init_fn, update_fn), [inner])
