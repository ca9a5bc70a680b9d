r"""Line searches: scale the update so that the objective really decreases.

A line search is a transformation whose ``update`` takes, besides the
direction ``u`` (the incoming updates), three keyword arguments: the objective
``value`` :math:`f(w)` and gradient ``grad`` :math:`\nabla f(w)` at the current
params :math:`w`, and ``value_fn``, the objective itself. It evaluates
``value_fn`` at trial points :math:`w + \eta u` and returns :math:`\eta u`.
Any other keyword argument whose name is a parameter of ``value_fn`` (a batch,
say) is passed on to it; one that is not raises.

The search ends on a point whose value (and, for the zoom search, gradient) it
has already computed; these are kept in the state and
:func:`value_and_grad_from_state` reuses them at the next step, so that a
deterministic objective is evaluated once per step instead of twice.

This module holds the backtracking search, the reuse helper and the few tree
operations (inner product, ``x + s·y``) shared with :mod:`._zoom_linesearch`
and :mod:`._lbfgs`.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    Params,
    Updates,
    check_state,
)
from .._core.lifting import flatten_like, map_leaves, tree_zeros_like, upcast
from .._core.placement import auto_axes

# --------------------------------------------------------------------------
# Tree operations shared by the line searches and L-BFGS.


def tree_vdot(x: Any, y: Any, *, owner: str, name: str, ref: str) -> chex.Array:
    """``Re Σ conj(x)·y`` over matching leaves, accumulated in float32 or wider.

    Structures and shapes are checked (naming ``name`` against ``ref``); each
    leaf's product is a full-precision contraction.
    """
    xs, treedef = jax.tree.flatten(x)
    ys = flatten_like(treedef, y, name=name, owner=owner, ref=ref)
    total = 0
    for a, b in zip(xs, ys, strict=True):
        a, b = upcast(a), upcast(b)
        if a.shape != b.shape:
            raise ValueError(
                f"{owner}: shape mismatch: `{ref}` has a leaf of shape "
                f"{a.shape} where `{name}` has shape {b.shape}."
            )
        if jnp.iscomplexobj(a):
            a = jnp.conj(a)
        total = total + auto_axes(_full_dot, a, b)  # Explicit axes: a contraction
    return jnp.real(total)


def _full_dot(a: chex.Array, b: chex.Array) -> chex.Array:
    return jnp.tensordot(a, b, a.ndim, precision=jax.lax.Precision.HIGHEST)


def tree_sq_norm(x: Any) -> chex.Array:
    """``Σ |x|²`` over every element of every leaf (float32 or wider)."""
    total = 0
    for a in jax.tree.leaves(x):
        a = upcast(a)
        total = total + jnp.sum(jnp.square(a.real) + jnp.square(a.imag))
    return jnp.asarray(total)


def tree_conj(x: Any) -> Any:
    return jax.tree.map(jnp.conj, x)


def tree_add_scale(x: Any, s: chex.Array, y: Any) -> Any:
    """``x + s·y`` leaf by leaf, each leaf keeping the dtype of ``x``."""
    s = jnp.asarray(s)
    return jax.tree.map(lambda a, b: (a + s * b).astype(jnp.result_type(a)), x, y)


def tree_select(pred: chex.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def scalar_dtype(params: Params) -> jnp.dtype:
    """The real dtype of the first leaf of ``params``, at least float32."""
    leaves = jax.tree.leaves(params)
    if not leaves:
        return jnp.result_type(float)
    dt = jnp.real(jnp.zeros((), jnp.result_type(leaves[0]))).dtype
    return jnp.promote_types(dt, jnp.float32)


def objective_kwargs(owner: str, value_fn: Callable, extra: dict) -> dict:
    """The keyword arguments of ``extra`` that ``value_fn`` takes (all others raise)."""
    try:
        sig = inspect.signature(value_fn)
    except (TypeError, ValueError):
        return dict(extra)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(extra)
    unused = sorted(k for k in extra if k not in sig.parameters)
    if unused:
        raise TypeError(
            f"{owner}: `update` got keyword arguments that `value_fn` does not "
            f"take: {unused}. Extra keyword arguments of a line search are "
            "passed to `value_fn` (e.g. a batch: `value_fn(params, x=..., "
            "y=...)`)."
        )
    return dict(extra)


def check_objective_args(owner, params, value, grad, value_fn) -> None:
    if params is None:
        raise ValueError(NO_PARAMS_MSG.format(name=owner))
    missing = [
        n
        for n, v in (("value", value), ("grad", grad), ("value_fn", value_fn))
        if v is None
    ]
    if missing:
        raise TypeError(
            f"{owner}: `update` needs the keyword arguments `value`, `grad` and "
            f"`value_fn` (the objective's value and gradient at `params`, and "
            f"the objective); missing: {missing}. Call "
            "`update(grad, state, params, value=value, grad=grad, value_fn=f)`."
        )
    if not callable(value_fn):
        raise TypeError(f"{owner}: `value_fn` must be callable, got {value_fn!r}.")


# --------------------------------------------------------------------------
# Backtracking (Armijo) line search.


class BacktrackingLinesearchInfo(NamedTuple):
    """What the last search did: steps taken and the final decrease error.

    A ``decrease_error`` of 0 means the accepted step decreases the objective
    enough; a positive one that the search gave up.
    """

    num_linesearch_steps: chex.Array
    decrease_error: chex.Array


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """Accepted learning rate, objective (and gradient) at the accepted point.

    ``grad`` is ``None`` unless the search was built with ``store_grad=True``.
    """

    learning_rate: chex.Array
    value: chex.Array
    grad: Updates | None
    info: BacktrackingLinesearchInfo


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: chex.Numeric = 1e-4,
    decrease_factor: chex.Numeric = 0.8,
    increase_factor: chex.Numeric = 1.5,
    max_learning_rate: chex.Numeric = 1.0,
    atol: chex.Numeric = 0.0,
    rtol: chex.Numeric = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> GradientTransformation:
    r"""Backtracking line search for sufficient decrease (Armijo's rule).

    Starting from :math:`\eta = \min(\text{increase\_factor}\cdot\eta_{prev},
    \text{max\_learning\_rate})`, multiplies :math:`\eta` by
    ``decrease_factor`` until

    .. math::
        f(w + \eta u) \le (1 + \delta) f(w) + c\,\eta\,\langle u, \nabla f(w)
        \rangle + \epsilon

    (:math:`c` = ``slope_rtol``, :math:`\delta` = ``rtol``, :math:`\epsilon` =
    ``atol``) or ``max_backtracking_steps`` reductions were tried, and returns
    :math:`\eta u`. If no trial point has a finite value the step is 0. The
    direction :math:`u` must descend (:math:`\langle u, \nabla f(w)\rangle <
    0`), as after ``sgd``; see the module docstring for the ``update``
    protocol.

    References: Armijo, 1966; Nocedal & Wright, *Numerical Optimization*,
    1999, §3.1; Vaswani et al., 2019, "Painless Stochastic Gradient".

    Args:
      max_backtracking_steps: the number of reductions allowed, >= 0.
      slope_rtol: :math:`c` in [0, 1).
      decrease_factor: the reduction factor, in (0, 1).
      increase_factor: the growth of the first guess over the last accepted
        learning rate, >= 1 (``inf``: always start from the maximum).
      max_learning_rate: the largest learning rate tried, > 0.
      atol: :math:`\epsilon` >= 0.
      rtol: :math:`\delta` >= 0.
      store_grad: also keep the gradient at the accepted point (for
        :func:`value_and_grad_from_state`).
      verbose: print a diagnostic when the search fails.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleByBacktrackingLinesearchState`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import chain
      >>> from gradtx import scale
      >>> from gradtx import scale_by_backtracking_linesearch
      >>> f = lambda w: jnp.sum(w ** 2)
      >>> tx = chain(scale(-1.0), scale_by_backtracking_linesearch(15))
      >>> w = jnp.array([1.0, 2.0, 3.0])
      >>> v, g = jax.value_and_grad(f)(w)
      >>> u, _ = tx.update(g, tx.init(w), w, value=v, grad=g, value_fn=f)
      >>> round(float(f(w + u)), 2)
      5.04
    """
    owner = "scale_by_backtracking_linesearch"
    _validate.integer(owner, "max_backtracking_steps", max_backtracking_steps)
    _validate.number(owner, "slope_rtol", slope_rtol, low=0.0, high=1.0, high_open=True)
    _validate.number(
        owner, "decrease_factor", decrease_factor, low=0.0, high=1.0,
        low_open=True, high_open=True,
    )  # fmt: skip
    _validate.number(owner, "increase_factor", increase_factor, low=1.0)
    _validate.positive(owner, "max_learning_rate", max_learning_rate)
    _validate.non_negative(owner, "atol", atol)
    _validate.non_negative(owner, "rtol", rtol)
    _validate.flag(owner, "store_grad", store_grad)
    _validate.flag(owner, "verbose", verbose)

    def init_fn(params):
        dt = scalar_dtype(params)
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones((), dt),
            value=jnp.full((), jnp.inf, dt),
            grad=tree_zeros_like(params) if store_grad else None,
            info=BacktrackingLinesearchInfo(
                jnp.zeros((), jnp.int32), jnp.full((), jnp.inf, dt)
            ),
        )

    def update_fn(
        updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra
    ):
        check_state(owner, state, ScaleByBacktrackingLinesearchState)
        check_objective_args(owner, params, value, grad, value_fn)
        f = functools.partial(value_fn, **objective_kwargs(owner, value_fn, extra))
        # The dtype `init` chose; `state.learning_rate` may have been set to a
        # Python number (`gradtx.tree.set`), which has none.
        dt = scalar_dtype(params)
        value0 = jnp.asarray(value, dt)
        slope = tree_vdot(
            updates, tree_conj(grad), owner=owner, name="grad", ref="updates"
        )

        def decrease_error(lr, new_value):
            err = new_value - (1.0 + rtol) * value0 - lr * slope_rtol * slope
            return jnp.maximum(jnp.where(jnp.isnan(err), jnp.inf, err), 0.0)

        def cond(carry):
            _, _, _, err, i = carry
            return ~(err <= atol) & (i <= max_backtracking_steps)

        def body(carry):
            lr, _, new_grad, _, i = carry
            lr = jnp.where(i > 0, decrease_factor * lr, lr).astype(dt)
            trial = tree_add_scale(params, lr, updates)
            if store_grad:
                new_value, vjp = jax.vjp(f, trial)
                err = decrease_error(lr, new_value)
                new_grad = jax.lax.cond(
                    (err <= atol) | (i == max_backtracking_steps),
                    lambda: jax.tree.map(
                        lambda a, b: a.astype(b.dtype),
                        vjp(jnp.ones_like(new_value))[0],
                        new_grad,
                    ),
                    lambda: new_grad,
                )
            else:
                new_value = f(trial)
                err = decrease_error(lr, new_value)
            return lr, jnp.asarray(new_value, dt), new_grad, err.astype(dt), i + 1

        lr0 = jnp.minimum(
            increase_factor * jnp.asarray(state.learning_rate, dt), max_learning_rate
        )
        carry = (
            lr0.astype(dt),
            value0,
            tree_zeros_like(params),
            jnp.full((), jnp.inf, dt),
            jnp.zeros((), jnp.int32),
        )
        lr, new_value, new_grad, err, steps = jax.lax.while_loop(cond, body, carry)
        lr = jnp.where(jnp.isinf(err), 0.0, lr).astype(dt)
        if verbose:
            jax.debug.callback(_report_backtracking, err > atol, lr, value0, slope, err)
        new_updates = map_leaves(lambda u: lr * u, updates, owner=owner)
        new_state = ScaleByBacktrackingLinesearchState(
            learning_rate=lr,
            value=new_value,
            grad=new_grad if store_grad else None,
            info=BacktrackingLinesearchInfo(steps, err),
        )
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)


def _report_backtracking(failed, lr, value, slope, err):
    if failed:
        print(
            "scale_by_backtracking_linesearch: no learning rate gives a "
            f"sufficient decrease (value {value}, slope {slope}, last learning "
            f"rate {lr}, decrease error {err})."
        )


# --------------------------------------------------------------------------
# Reusing the value and gradient a line search already computed.


def _linesearch_states(state: Any) -> list[Any]:
    """Every node of ``state`` that is a NamedTuple with fields value and grad."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        if "value" in state._fields and "grad" in state._fields:
            return [state]
        children = list(state)
    elif isinstance(state, (tuple, list)):
        children = list(state)
    elif isinstance(state, dict):
        children = list(state.values())
    else:
        return []
    return [s for c in children for s in _linesearch_states(c)]


def value_and_grad_from_state(
    value_fn: Callable[..., chex.Numeric],
) -> Callable[..., tuple[chex.Array, Updates]]:
    """Like :func:`jax.value_and_grad`, reusing what a line search computed.

    The returned function ``(params, *args, state, **kwargs) -> (value, grad)``
    takes the optimizer state by keyword. It finds the line search's state in
    it (a state with fields ``value`` and ``grad``) and returns the stored
    value and gradient when the stored value is finite; otherwise (the first
    step: the stored value is ``inf``) it evaluates
    ``jax.value_and_grad(value_fn)(params, *args, **kwargs)``. Use it only for a
    deterministic objective: the stored pair was computed at the params that
    the last update moved to.

    Unlike Optax's, which searches every field and dict key named ``value`` or
    ``grad`` (so params with such a key break it), only optimizer states with
    both fields are considered. The computed branch is cast to the stored
    dtypes, so both branches agree.

    Args:
      value_fn: the objective, differentiable with respect to its first
        argument and returning a scalar.

    Returns:
      The function described above.

    Raises (when called):
      ValueError: when the state holds no line search state, more than one,
        or one whose ``grad`` is ``None`` (``store_grad=False``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import value_and_grad_from_state
      >>> from gradtx import scale_by_zoom_linesearch
      >>> f = lambda w: jnp.sum(w ** 2)
      >>> tx = scale_by_zoom_linesearch(max_linesearch_steps=15)
      >>> w = jnp.array([1.0, 2.0])
      >>> value, grad = value_and_grad_from_state(f)(w, state=tx.init(w))
      >>> float(value), grad.tolist()
      (5.0, [2.0, 4.0])
    """
    if not callable(value_fn):
        raise TypeError(
            f"value_and_grad_from_state: `value_fn` must be callable, got {value_fn!r}."
        )

    def fn(params, *args, state, **kwargs):
        found = _linesearch_states(state)
        if len(found) != 1:
            raise ValueError(
                "value_and_grad_from_state: expected exactly one line search "
                f"state (fields `value` and `grad`) in `state`, found {len(found)}. "
                "Chain one line search (scale_by_zoom_linesearch, or "
                "scale_by_backtracking_linesearch with store_grad=True)."
            )
        stored = found[0]
        if stored.grad is None:
            raise ValueError(
                "value_and_grad_from_state: the line search state stores no "
                "gradient; build scale_by_backtracking_linesearch with "
                "store_grad=True."
            )

        def compute():
            v, g = jax.value_and_grad(value_fn)(params, *args, **kwargs)
            g = jax.tree.map(
                lambda a, b: jnp.asarray(a).astype(b.dtype), g, stored.grad
            )
            return jnp.asarray(v).astype(stored.value.dtype), g

        return jax.lax.cond(
            jnp.isfinite(stored.value), lambda: (stored.value, stored.grad), compute
        )

    return fn
