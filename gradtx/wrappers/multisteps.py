r"""Gradient accumulation: :class:`MultiSteps` and its skip predicates.

``MultiSteps(opt, k)`` averages (or sums) the gradients of ``k`` consecutive
calls to ``update`` and runs ``opt`` once on the result:

.. math::
    \bar g_j = \bar g_{j-1} + \frac{g_j - \bar g_{j-1}}{j}, \quad j = 1 \dots k,
    \qquad u = \mathrm{opt}(\bar g_k) \text{ on the } k\text{-th call, else } 0,

a running (Welford) mean, numerically stable in float32; with
``use_grad_mean=False`` the plain sum :math:`\sum_j g_j`. This trains with a
batch ``k`` times larger than the one that fits in memory.

Unlike Optax, the wrapped optimizer runs only on the calls that emit an
update: the choice is a :func:`jax.lax.cond`, so the ``k − 1`` accumulating
calls cost one add per element, not a full optimizer step whose result is
thrown away. (Under ``vmap`` with per-member step counts the predicate is
batched and ``cond`` turns into a select that runs both branches, as anywhere
in JAX.) The state holds the accumulator, the inner state and scalars: no
other buffer the size of the params.
"""

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    GradientTransformation,
    OptState,
    Params,
    Updates,
    check_state,
    with_extra_args_support,
)
from .._core.lifting import (
    map_leaves,
    state_zeros_like,
    tree_sum_of_squares,
    tree_zeros_like,
)
from .._core.maths import safe_increment
from .._core.traits import composed
from ..combinators.chain import check_transforms
from .conditionals import keep_dtypes, zeros_like_output


class ShouldSkipUpdateFunction(Protocol):
    """``f(updates, gradient_step, params) -> (skip, skip_state)``.

    ``skip`` is a bool scalar: True rejects this call's updates, as if the call
    never happened. ``skip_state`` is any pytree (with the same structure on
    every call), stored in :attr:`MultiStepsState.skip_state` for monitoring.
    ``gradient_step`` is :attr:`MultiStepsState.gradient_step`.
    """

    def __call__(
        self, updates: Updates, gradient_step: chex.Array, params: Params | None
    ) -> tuple[chex.Array, Any]: ...


def skip_not_finite(
    updates: Updates, gradient_step: chex.Array, params: Params | None
) -> tuple[chex.Array, dict[str, chex.Array]]:
    """Skips the calls whose updates hold an Inf or a NaN.

    A :class:`ShouldSkipUpdateFunction`, as Optax's function of the same name.

    Args:
      updates: the updates (gradients) of this call, a tree of arrays.
      gradient_step: :attr:`MultiStepsState.gradient_step` (unused).
      params: the current params, or ``None`` (unused).

    Returns:
      ``(skip, {"should_skip": skip, "num_not_finite": n})`` with ``n`` the
      number of non-finite elements over all leaves.
    """
    del gradient_step, params
    count = jnp.zeros([], int)
    for x in jax.tree.leaves(updates):
        count = count + jnp.sum(~jnp.isfinite(x))
    skip = count > 0
    return skip, {"should_skip": skip, "num_not_finite": count}


def skip_large_updates(
    updates: Updates,
    gradient_step: chex.Array,
    params: Params | None,
    max_squared_norm: chex.Numeric,
) -> tuple[chex.Array, dict[str, chex.Array]]:
    """Skips the calls where ``‖updates‖² >= max_squared_norm`` (or it is NaN).

    Bind ``max_squared_norm`` with :func:`functools.partial` to use it as a
    :class:`ShouldSkipUpdateFunction`.

    Args:
      updates: the updates (gradients) of this call, a tree of arrays.
      gradient_step: :attr:`MultiStepsState.gradient_step` (unused).
      params: the current params, or ``None`` (unused).
      max_squared_norm: the threshold on the squared global norm, >= 0.

    Returns:
      ``(skip, {"should_skip": skip, "norm_squared": ‖updates‖²})``.
    """
    del gradient_step, params
    _validate.non_negative("skip_large_updates", "max_squared_norm", max_squared_norm)
    norm_sq = tree_sum_of_squares(updates)
    skip = ~(norm_sq < max_squared_norm)
    return skip, {"should_skip": skip, "norm_squared": norm_sq}


def _never_skip(updates, gradient_step, params):
    del updates, gradient_step, params
    return jnp.array(False), ()


class MultiStepsState(NamedTuple):
    """The state of :class:`MultiSteps`.

    Attributes:
      mini_step: calls accumulated since the last emitted update (int32).
      gradient_step: updates emitted so far (int32, saturating).
      inner_opt_state: the wrapped optimizer's state.
      acc_grads: the running mean (or sum) of the gradients of this window.
      skip_state: what ``should_skip_update_fn`` returned last (``()`` without
        one).
    """

    mini_step: chex.Array
    gradient_step: chex.Array
    inner_opt_state: Any
    acc_grads: Any
    skip_state: chex.ArrayTree = ()


class MultiSteps:
    """Accumulates gradients over several calls, then runs the wrapped optimizer.

    Each call to :meth:`update` adds its gradients to the accumulator and
    returns zeros, except every ``k``-th call, which runs ``opt`` on the mean
    (or the sum) of the ``k`` gradients, returns its updates and resets the
    accumulator. See the module docstring for the rule and for what differs
    from Optax (``opt`` runs only on emitting calls).

    Args:
      opt: the optimizer to wrap.
      every_k_schedule: ``k``, an int >= 1, or a function of
        ``gradient_step`` (the number of updates emitted so far) returning
        ``k``, to grow the effective batch size during training.
      use_grad_mean: average the accumulated gradients (default); otherwise
        sum them.
      should_skip_update_fn: an optional :class:`ShouldSkipUpdateFunction`;
        calls it rejects leave the whole state unchanged (except
        ``skip_state``) and return zeros, e.g. :func:`skip_not_finite`.
      accumulator_dtype: dtype of the accumulator (float32 by default;
        ``None`` follows the params).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import MultiSteps
      >>> from gradtx import scale
      >>> opt = MultiSteps(scale(-1.0), every_k_schedule=2)
      >>> state = opt.init(jnp.zeros(1))
      >>> for g in (1.0, 3.0, 5.0, 7.0):
      ...     u, state = opt.update(jnp.array([g]), state)
      ...     print(u.tolist(), bool(opt.has_updated(state)))
      [0.0] False
      [-2.0] True
      [0.0] False
      [-6.0] True
    """

    def __init__(
        self,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[chex.Array], chex.Numeric],
        use_grad_mean: bool = True,
        should_skip_update_fn: ShouldSkipUpdateFunction | None = None,
        accumulator_dtype: Any = jnp.float32,
    ):
        owner = "MultiSteps"
        check_transforms(owner, [opt])
        if callable(every_k_schedule):
            self._every_k_schedule = every_k_schedule
        else:
            _validate.integer(owner, "every_k_schedule", every_k_schedule, low=1)
            self._every_k_schedule = lambda step: every_k_schedule
        _validate.flag(owner, "use_grad_mean", use_grad_mean)
        if should_skip_update_fn is not None and not callable(should_skip_update_fn):
            raise TypeError(
                f"{owner}: `should_skip_update_fn` must be a function or None, "
                f"got {should_skip_update_fn!r}."
            )
        self._opt = with_extra_args_support(opt)
        composed(self, [self._opt])  # keyed by this object: its methods are bound
        self._use_grad_mean = use_grad_mean
        self._should_skip = should_skip_update_fn or _never_skip
        self._accumulator_dtype = _validate.float_dtype(
            owner, "accumulator_dtype", accumulator_dtype, complex_ok=True
        )

    @property
    def inner_opt(self) -> GradientTransformation:
        """The wrapped optimizer."""
        return self._opt

    def init(self, params: Params) -> MultiStepsState:
        """The initial state: empty accumulator, the inner optimizer's state."""
        gradient_step = jnp.zeros([], jnp.int32)
        _, skip_state = self._should_skip(
            tree_zeros_like(params), gradient_step, params
        )
        return MultiStepsState(
            mini_step=jnp.zeros([], jnp.int32),
            gradient_step=gradient_step,
            inner_opt_state=self._opt.init(params),
            acc_grads=state_zeros_like(params, self._accumulator_dtype),
            skip_state=skip_state,
        )

    def _accumulate(self, updates: Updates, state: MultiStepsState) -> Any:
        """``(mean so far in the updates' dtypes, new accumulator)``."""
        n = state.mini_step

        def leaf(g, acc):
            new = acc + (g - acc) / (n + 1) if self._use_grad_mean else g + acc
            return new, new

        return map_leaves(
            leaf,
            updates,
            state.acc_grads,
            names=["acc_grads"],
            owner="MultiSteps",
            nout=2,
        )

    def update(
        self,
        updates: Updates,
        state: MultiStepsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MultiStepsState]:
        """Accumulates ``updates``; every ``k``-th call runs the wrapped optimizer."""
        check_state("MultiSteps", state, MultiStepsState)
        skip, skip_state = self._should_skip(updates, state.gradient_step, params)
        skip = jnp.asarray(skip)
        if (skip.dtype, skip.shape) != (jnp.bool_, ()):
            raise ValueError(
                "MultiSteps: `should_skip_update_fn` must return a boolean "
                f"scalar first, got an array of dtype {skip.dtype} and shape "
                f"{skip.shape}."
            )
        k = self._every_k_schedule(state.gradient_step)
        mean, acc = self._accumulate(updates, state)
        emit = ~skip & (state.mini_step + 1 >= k)

        def run(g, s, p):
            new_u, new_s = self._opt.update(g, s, p, **extra_args)
            return new_u, keep_dtypes(new_s, s)

        def hold(g, s, p):
            return zeros_like_output(lambda *a: run(*a)[0], g, s, p), s

        out, inner_state = jax.lax.cond(
            emit, run, hold, mean, state.inner_opt_state, params
        )
        acc = jax.tree.map(
            lambda old, new: jnp.where(skip, old, jnp.where(emit, 0, new)),
            state.acc_grads,
            acc,
        )
        mini = safe_increment(state.mini_step)
        mini = jnp.where(skip, state.mini_step, jnp.where(emit, 0, mini))
        gradient_step = jnp.where(
            emit, safe_increment(state.gradient_step), state.gradient_step
        )
        return out, MultiStepsState(
            mini_step=mini,
            gradient_step=gradient_step,
            inner_opt_state=inner_state,
            acc_grads=acc,
            skip_state=skip_state,
        )

    def has_updated(self, state: MultiStepsState | OptState) -> chex.Array:
        """Whether the last call to :meth:`update` emitted an update."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformation:
        """This wrapper as a plain ``GradientTransformation(init, update)``."""
        return GradientTransformation(init=self.init, update=self.update)
