r"""The zoom line search (strong Wolfe conditions), as used by L-BFGS.

The search has two phases (Nocedal & Wright, 1999, Algorithms 3.5 and 3.6):

1. *bracketing*: try :math:`\eta_0` (the first guess), then multiply by
   ``increase_factor`` until the trial point is acceptable or an interval
   ``[low, high]`` is known to contain an acceptable step;
2. *zoom*: shrink that interval, trying the minimiser of a cubic through
   ``low``, ``high`` and the previous end point (if it lies well inside), else
   of a quadratic through ``low`` and ``high``, else the midpoint.

Throughout, the best point found with a sufficient decrease is kept as a
fallback, used when the curvature condition cannot be met within the allowed
evaluations or once the interval is shorter than ``stepsize_precision``.
Each trial costs one value-and-gradient evaluation; the last one is kept in
the state for :func:`gradtx.value_and_grad_from_state`. See
:mod:`._linesearch` for the ``update`` protocol.
"""

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import map_leaves, tree_zeros_like
from .._core.maths import safe_increment
from .backtracking import (
    check_objective_args,
    objective_kwargs,
    scalar_dtype,
    tree_add_scale,
    tree_conj,
    tree_select,
    tree_vdot,
)

_GUESSES = ("one", "keep")


class ZoomLinesearchInfo(NamedTuple):
    """What the last search did.

    ``decrease_error`` > 0: the accepted step does not decrease the objective
    enough (the search failed); ``curvature_error`` > 0: the step is too short
    or too long for the curvature condition (benign, often a too small
    ``max_learning_rate``).
    """

    num_linesearch_steps: chex.Array
    decrease_error: chex.Array
    curvature_error: chex.Array


class ScaleByZoomLinesearchState(NamedTuple):
    """Accepted learning rate, objective and gradient at the accepted point."""

    learning_rate: chex.Array
    value: chex.Array
    grad: Updates
    info: ZoomLinesearchInfo


class _Point(NamedTuple):
    """A trial step size with the value, gradient and slope found there."""

    stepsize: chex.Array
    value: chex.Array
    grad: Any
    slope: chex.Array


class _Search(NamedTuple):
    count: chex.Array
    point: _Point  # the last trial
    decrease_error: chex.Array
    curvature_error: chex.Array
    interval_found: chex.Array
    done: chex.Array
    failed: chex.Array
    low: tuple  # (stepsize, value, slope); f(low) <= f(high)
    high: tuple
    ref: tuple  # (stepsize, value): third point of the cubic fit
    safe: tuple  # (stepsize, value, grad): best sufficient decrease so far


def _cubic_min(a, fa, fpa, b, fb, c, fc):
    """Critical point of the cubic through (a, fa), (b, fb), (c, fc).

    The cubic has slope ``fpa`` at ``a``; NaN when it has no critical point
    (then the caller falls back).
    """
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    rhs = jnp.array([fb - fa - fpa * db, fc - fa - fpa * dc])
    mat = jnp.array([[dc**2, -(db**2)], [-(dc**3), db**3]])
    p3, p2 = jnp.dot(mat, rhs, precision=jax.lax.Precision.HIGHEST) / denom
    return a + (-p2 + jnp.sqrt(p2 * p2 - 3.0 * p3 * fpa)) / (3.0 * p3)


def _quad_min(a, fa, fpa, b, fb):
    """Critical point of the quadratic through (a, fa), (b, fb) with slope fpa at a."""
    db = b - a
    curv = (fb - fa - fpa * db) / (db**2)
    return a - fpa / (2.0 * curv)


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: chex.Numeric | None = None,
    tol: chex.Numeric = 0.0,
    increase_factor: chex.Numeric = 2.0,
    slope_rtol: chex.Numeric = 1e-4,
    curv_rtol: chex.Numeric = 0.9,
    approx_dec_rtol: chex.Numeric | None = 1e-6,
    stepsize_precision: chex.Numeric = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> GradientTransformation:
    r"""Line search for the strong Wolfe conditions, by bracketing and zooming.

    Finds :math:`\eta` with a sufficient decrease and a small slope along
    :math:`u`:

    .. math::
        f(w + \eta u) \le f(w) + c_1 \eta \langle u, \nabla f(w)\rangle
        + \epsilon, \qquad
        |\langle \nabla f(w + \eta u), u\rangle|
        \le c_2 |\langle \nabla f(w), u\rangle| + \epsilon

    (:math:`c_1` = ``slope_rtol``, :math:`c_2` = ``curv_rtol``,
    :math:`\epsilon` = ``tol``), and returns :math:`\eta u`. Near a minimum,
    where float rounding hides the decrease, the first condition may be met
    instead by Hager & Zhang's approximate one, :math:`\langle \nabla f(w +
    \eta u), u\rangle \le (2c_1 - 1)\langle \nabla f(w), u\rangle`, provided
    :math:`f(w + \eta u) \le f(w) + c_3 |f(w)|` (:math:`c_3` =
    ``approx_dec_rtol``; ``None`` turns this off). The algorithm is described
    in the module docstring; ``curv_rtol=inf`` drops the curvature condition.

    References: Nocedal & Wright, *Numerical Optimization*, 1999, Algorithms
    3.5 and 3.6; Hager & Zhang, 2006, "Algorithm 851: CG_DESCENT".

    Args:
      max_linesearch_steps: the most value-and-gradient evaluations, >= 1.
      max_learning_rate: the largest step size tried (> 0), or ``None``.
      tol: :math:`\epsilon` >= 0.
      increase_factor: the growth of the step while bracketing, > 1.
      slope_rtol: :math:`c_1` in [0, 1).
      curv_rtol: :math:`c_2`, larger than ``slope_rtol`` (``inf`` allowed).
      approx_dec_rtol: :math:`c_3` >= 0, or ``None``.
      stepsize_precision: the interval length (>= 0) below which the best
        sufficient-decrease point is taken.
      initial_guess_strategy: ``"one"`` starts each search at 1 (for
        quasi-Newton directions); ``"keep"`` at the last accepted step.
      verbose: print a diagnostic when the search fails.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleByZoomLinesearchState`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import chain
      >>> from gradtx import scale
      >>> from gradtx import scale_by_zoom_linesearch
      >>> f = lambda w: jnp.sum(w ** 2)
      >>> tx = chain(scale(-1.0), scale_by_zoom_linesearch(15))
      >>> w = jnp.array([1.0, 2.0, 3.0])
      >>> v, g = jax.value_and_grad(f)(w)
      >>> u, _ = tx.update(g, tx.init(w), w, value=v, grad=g, value_fn=f)
      >>> float(f(w + u))  # the exact minimiser along -g is found
      0.0
    """
    owner = "scale_by_zoom_linesearch"
    _validate.integer(owner, "max_linesearch_steps", max_linesearch_steps, low=1)
    if max_learning_rate is not None:
        _validate.positive(owner, "max_learning_rate", max_learning_rate)
    _validate.non_negative(owner, "tol", tol)
    _validate.number(owner, "increase_factor", increase_factor, low=1.0, low_open=True)
    _validate.number(owner, "slope_rtol", slope_rtol, low=0.0, high=1.0, high_open=True)
    _validate.number(owner, "curv_rtol", curv_rtol, low=0.0, low_open=True)
    concrete = not any(isinstance(x, jax.core.Tracer) for x in (slope_rtol, curv_rtol))
    if concrete and not float(slope_rtol) < float(curv_rtol):
        raise ValueError(
            f"{owner}: `curv_rtol` must be larger than `slope_rtol` (0 <= c1 < c2) "
            f"for a step meeting both conditions to exist, got curv_rtol="
            f"{curv_rtol!r} and slope_rtol={slope_rtol!r}."
        )
    if approx_dec_rtol is not None:
        _validate.non_negative(owner, "approx_dec_rtol", approx_dec_rtol)
    _validate.non_negative(owner, "stepsize_precision", stepsize_precision)
    if initial_guess_strategy not in _GUESSES:
        raise ValueError(
            f"{owner}: `initial_guess_strategy` must be one of {_GUESSES}, got "
            f"{initial_guess_strategy!r}."
        )
    _validate.flag(owner, "verbose", verbose)

    def init_fn(params):
        dt = scalar_dtype(params)
        inf = jnp.full((), jnp.inf, dt)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones((), dt),
            value=inf,
            grad=tree_zeros_like(params),
            info=ZoomLinesearchInfo(jnp.zeros((), jnp.int32), inf, inf),
        )

    def update_fn(
        updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra
    ):
        check_state(owner, state, ScaleByZoomLinesearchState)
        check_objective_args(owner, params, value, grad, value_fn)
        kwargs = objective_kwargs(owner, value_fn, extra)
        value_and_grad = jax.value_and_grad(functools.partial(value_fn, **kwargs))
        # The dtype `init` chose; `state.learning_rate` may have been set to a
        # Python number (`gradtx.tree.set`), which has none.
        dt = scalar_dtype(params)
        value0 = jnp.asarray(value, dt)
        slope0 = tree_vdot(updates, grad, owner=owner, name="grad", ref="updates")
        slope0 = slope0.astype(dt)
        grad0 = jax.tree.map(
            lambda g, s: jnp.asarray(g).astype(s.dtype), grad, state.grad
        )

        def evaluate(stepsize):
            v, g = value_and_grad(tree_add_scale(params, stepsize, updates))
            g = jax.tree.map(lambda a, b: a.astype(b.dtype), g, grad0)
            s = tree_vdot(
                tree_conj(g), updates, owner=owner, name="updates", ref="grad"
            )
            return _Point(stepsize, jnp.asarray(v).astype(dt), g, s.astype(dt))

        def errors(p):
            dec = p.value - value0 - slope_rtol * p.stepsize * slope0
            if approx_dec_rtol is not None:
                approx = p.slope - (2 * slope_rtol - 1.0) * slope0
                near = p.value - value0 - approx_dec_rtol * jnp.abs(value0)
                dec = jnp.minimum(jnp.maximum(approx, near), dec)
            curv = jnp.abs(p.slope) - curv_rtol * jnp.abs(slope0)
            clean = lambda e: jnp.where(jnp.isnan(e), jnp.inf, jnp.maximum(e, 0.0))
            return clean(dec).astype(dt), clean(curv).astype(dt)

        def bracket(s):
            prev = s.point
            step = jnp.where(s.count == 0, guess, increase_factor * prev.stepsize)
            at_max = jnp.asarray(False)
            if max_learning_rate is not None:
                at_max = step >= max_learning_rate
                step = jnp.minimum(step, max_learning_rate)
            new = evaluate(step.astype(dt))
            dec, curv = errors(new)
            good = jnp.maximum(dec, curv) <= tol
            safe = tree_select(dec <= tol, (new.stepsize, new.value, new.grad), s.safe)
            to_high = (dec > 0.0) | ((new.value >= prev.value) & (s.count > 0))
            to_low = (new.slope >= 0.0) & ~to_high
            old3 = (prev.stepsize, prev.value, prev.slope)
            new3 = (new.stepsize, new.value, new.slope)
            low, high = tree_select(to_low, (new3, old3), (old3, new3))
            found = to_high | to_low | good
            done = good | (at_max & ~found)
            failed = (s.count + 1 >= max_linesearch_steps) & ~done
            return _Search(
                safe_increment(s.count), new, dec, curv, found, done, failed,
                low, high, low[:2], safe,
            )  # fmt: skip

        def zoom(s):
            (lo, v_lo, d_lo), (hi, v_hi, _) = s.low, s.high
            width = jnp.abs(hi - lo)
            left, right = jnp.minimum(hi, lo), jnp.maximum(hi, lo)
            cubic = _cubic_min(lo, v_lo, d_lo, hi, v_hi, *s.ref)
            quad = _quad_min(lo, v_lo, d_lo, hi, v_hi)
            use_cubic = (cubic > left + 0.2 * width) & (cubic < right - 0.2 * width)
            use_quad = (
                ~use_cubic & (quad > left + 0.1 * width) & (quad < right - 0.1 * width)
            )
            mid = jnp.where(
                use_cubic, cubic, jnp.where(use_quad, quad, (lo + hi) / 2.0)
            )
            new = evaluate(mid.astype(dt))
            dec, curv = errors(new)
            done = jnp.maximum(dec, curv) <= tol
            better = (dec <= tol) & (new.value < s.safe[1])
            safe = tree_select(better, (new.stepsize, new.value, new.grad), s.safe)
            new3 = (new.stepsize, new.value, new.slope)
            mid_is_high = (dec > 0.0) | (new.value >= v_lo)
            low_is_high = (new.slope * (hi - lo) >= 0.0) & ~mid_is_high
            high = tree_select(mid_is_high, new3, s.high)
            high = tree_select(low_is_high, s.low, high)
            low = tree_select(mid_is_high, s.low, new3)
            ref = tree_select(mid_is_high | low_is_high, s.high[:2], s.low[:2])
            too_short = (width <= stepsize_precision) & (safe[0] > 0.0)
            failed = ((s.count + 1 >= max_linesearch_steps) | too_short) & ~done
            return _Search(
                safe_increment(s.count), new, dec, curv, s.interval_found, done,
                failed, low, high, ref, safe,
            )  # fmt: skip

        def fall_back(s):
            # Take the best sufficient-decrease point if there is one, or stay
            # put (step 0) if the last trial left the objective's domain.
            use_safe = (s.safe[0] > 0.0) | jnp.isinf(s.decrease_error)
            step, val, g = tree_select(
                use_safe, s.safe, (s.point.stepsize, s.point.value, s.point.grad)
            )
            return s._replace(point=s.point._replace(stepsize=step, value=val, grad=g))

        def step(s):
            s = jax.lax.cond(s.interval_found, zoom, bracket, s)
            return jax.lax.cond(s.failed, fall_back, lambda x: x, s)

        if initial_guess_strategy == "one":
            guess = jnp.ones((), dt)
        else:
            guess = jnp.asarray(state.learning_rate, dt)
        zero, no, inf = jnp.zeros((), dt), jnp.asarray(False), jnp.full((), jnp.inf, dt)
        start = _Search(
            jnp.zeros((), jnp.int32), _Point(zero, value0, grad0, slope0), inf, inf,
            no, no, no, (zero, value0, slope0), (zero, value0, slope0),
            (zero, value0), (zero, value0, grad0),
        )  # fmt: skip
        s = jax.lax.while_loop(lambda s: ~(s.done | s.failed), step, start)
        if verbose:
            jax.debug.callback(
                _report, s.failed, s.point.stepsize, value0, slope0,
                s.decrease_error, s.curvature_error,
            )  # fmt: skip
        lr = s.point.stepsize
        new_updates = map_leaves(lambda u: lr * u, updates, owner=owner)
        info = ZoomLinesearchInfo(s.count, s.decrease_error, s.curvature_error)
        return new_updates, ScaleByZoomLinesearchState(
            lr, s.point.value, s.point.grad, info
        )

    return GradientTransformation(init_fn, update_fn)


def _report(failed, stepsize, value, slope, dec, curv):
    if not failed:
        return
    why = "not a descent direction" if slope >= 0 else "out of evaluations"
    print(
        "scale_by_zoom_linesearch: the search failed "
        f"({why}; value {value}, slope {slope}); taking step size {stepsize} "
        f"with decrease error {dec} and curvature error {curv}."
    )
