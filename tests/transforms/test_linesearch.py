"""Line searches and value_and_grad_from_state: Optax, protocol, bad input.

Trajectories run the Optax-documented loop (value and gradient taken from the
state where it holds them) inside one jitted ``lax.scan``, for 100 steps, on a
quadratic and on the 4-d Rosenbrock function; the params, learning rates and
line-search counters are compared at every step. The searches are
deterministic and gradtx does the same float32 operations in the same order,
so the tolerance is 1e-6 (measured: 0, bit-identical).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.optimizers.lbfgs import lbfgs
from gradtx.transforms.backtracking import (
    ScaleByBacktrackingLinesearchState,
    scale_by_backtracking_linesearch,
    value_and_grad_from_state,
)
from gradtx.transforms.zoom_linesearch import (
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    scale_by_zoom_linesearch,
)

RTOL = 1e-6
STEPS = 100


def quadratic(p):
    a = jnp.linspace(1.0, 10.0, p["w"].size).reshape(p["w"].shape)
    return 0.5 * jnp.sum(a * p["w"] ** 2) + 0.5 * jnp.sum((p["b"] - 1.0) ** 2)


def rosenbrock(p):
    x = p["x"]
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


START = {
    "quadratic": (quadratic, {"w": jnp.ones((2, 4)), "b": jnp.full((3,), -2.0)}),
    "rosenbrock": (rosenbrock, {"x": jnp.array([-1.2, 1.0, -0.5, 0.3])}),
}


def from_state_fn(lib):
    # gradtx's is imported from its module (the flat export is the lead's).
    return value_and_grad_from_state if lib is gradtx else lib.value_and_grad_from_state


def run(lib, opt, problem, steps=STEPS, from_state=True):
    """The documented loop, jitted as one scan; per step: params and state."""
    f, p0 = START[problem]
    vg = from_state_fn(lib)(f) if from_state else None

    def step(carry, _):
        p, s = carry
        v, g = vg(p, state=s) if from_state else jax.value_and_grad(f)(p)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=f)
        p = lib.apply_updates(p, u)
        return (p, s), (p, s)

    scan = lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=steps)[1]
    return jax.jit(scan)(p0)


def rel_err(ours, theirs):
    errs = []
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        a, b = a[np.isfinite(b)], b[np.isfinite(b)]
        scale = max(np.max(np.abs(b), initial=0.0), 1e-30)
        errs.append(np.max(np.abs(a - b), initial=0.0) / scale)
    return max(errs, default=0.0)


def _sgd_with(lib, search, problem="quadratic"):
    # Rosenbrock's gradient is ~1e3 at the start: a scaled direction keeps
    # gradient descent with these searches stable.
    return lib.chain(lib.scale(-1e-3 if problem == "rosenbrock" else -1.0), search)


INF = float("inf")
# (kwargs, problem): the options spread over few cases, to keep compiles few.
BACKTRACKING = [
    (dict(max_backtracking_steps=15), "quadratic"),
    (dict(max_backtracking_steps=15, store_grad=True), "rosenbrock"),
    (
        dict(max_backtracking_steps=30, slope_rtol=0.3, decrease_factor=0.5,
             increase_factor=INF, rtol=1e-3),
        "rosenbrock",
    ),
    (dict(max_backtracking_steps=0, max_learning_rate=1e-3, atol=1e-4), "quadratic"),
]  # fmt: skip

ZOOM = [
    (dict(max_linesearch_steps=15), "rosenbrock"),
    (
        dict(max_linesearch_steps=15, max_learning_rate=0.05, increase_factor=3.0,
             initial_guess_strategy="one"),
        "quadratic",
    ),
    (
        dict(max_linesearch_steps=8, curv_rtol=INF, approx_dec_rtol=None,
             stepsize_precision=1e-2),
        "rosenbrock",
    ),
    (dict(max_linesearch_steps=20, slope_rtol=0.1, curv_rtol=0.2, tol=1e-6),
     "quadratic"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs,problem", BACKTRACKING)
def test_backtracking_matches_optax(kwargs, problem):
    store = kwargs.get("store_grad", False)
    ours = scale_by_backtracking_linesearch(**kwargs)
    theirs = optax.scale_by_backtracking_linesearch(**kwargs)
    ours = run(gradtx, _sgd_with(gradtx, ours, problem), problem, from_state=store)
    theirs = run(optax, _sgd_with(optax, theirs, problem), problem, from_state=store)
    assert rel_err(ours[0], theirs[0]) <= RTOL
    a, b = ours[1][1], theirs[1][1]
    for field in ("learning_rate", "value", "grad"):
        assert rel_err(getattr(a, field), getattr(b, field)) <= RTOL, field
    np.testing.assert_array_equal(
        a.info.num_linesearch_steps, b.info.num_linesearch_steps
    )


@pytest.mark.parametrize("kwargs,problem", ZOOM)
def test_zoom_matches_optax(kwargs, problem):
    ours = scale_by_zoom_linesearch(**kwargs)
    theirs = optax.scale_by_zoom_linesearch(**kwargs)
    ours = run(gradtx, _sgd_with(gradtx, ours, problem), problem)
    theirs = run(optax, _sgd_with(optax, theirs, problem), problem)
    assert rel_err(ours[0], theirs[0]) <= RTOL
    a, b = ours[1][1], theirs[1][1]
    for field in ("learning_rate", "value", "grad"):
        assert rel_err(getattr(a, field), getattr(b, field)) <= RTOL, field
    np.testing.assert_array_equal(
        a.info.num_linesearch_steps, b.info.num_linesearch_steps
    )


def test_documented_example_gives_optax_numbers():
    """Optax's docstring loop (objective with extra arguments), run eagerly.

    The expected strings are those printed in Optax's docstring.
    """
    fn = lambda params, x, y: 0.5 * (x.dot(params) - y) ** 2
    solver = gradtx.chain(
        gradtx.sgd(learning_rate=1.0),
        scale_by_backtracking_linesearch(max_backtracking_steps=15),
    )
    params = jnp.array([1.0, 2.0, 3.0])
    state = solver.init(params)
    x, y, out = jnp.array([3.0, 2.0, 1.0]), jnp.array(0.0), []
    for _ in range(3):
        value, grad = jax.value_and_grad(fn)(params, x, y)
        updates, state = solver.update(
            grad, state, params, value=value, grad=grad, value_fn=fn, x=x, y=y
        )
        params = gradtx.apply_updates(params, updates)
        out.append(f"{fn(params, x, y):.2E}")
    assert out == ["3.86E+01", "2.50E+01", "1.34E+01"]


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.scale_by_zoom_linesearch(15, initial_guess_strategy="keep"),
        lambda lib: lib.scale_by_zoom_linesearch(15),
        lambda lib: lib.scale_by_backtracking_linesearch(15),
    ],
    ids=["zoom-keep", "zoom-one", "backtracking"],
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_learning_rate_set_to_a_python_float_with_tree_set(make, jit):
    # `tree.set(state, learning_rate=0.5)` leaves a Python float in the state;
    # the search used to read its dtype from it.
    fn, params = START["quadratic"]
    results = []
    for lib in (gradtx, optax):
        tx = make(lib)
        state = lib.tree.set(tx.init(params), learning_rate=0.5)
        value, grad = jax.value_and_grad(fn)(params)
        step = lambda s, tx=tx, g=grad, v=value: tx.update(
            jax.tree.map(jnp.negative, g), s, params, value=v, grad=g, value_fn=fn
        )
        updates, new = (jax.jit(step) if jit else step)(state)
        results.append((updates, new.learning_rate))
    (ours, lr), (theirs, lr_optax) = results
    np.testing.assert_allclose(lr, lr_optax, rtol=RTOL)
    assert jnp.asarray(lr).dtype == jnp.float32
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL)


def test_failed_search_makes_no_step_outside_the_domain():
    # Any move from the start is outside the domain (NaN): the step is 0.
    f = lambda w: jnp.where(jnp.all(w == 1.0), jnp.sum(w), jnp.nan)
    w = jnp.ones(3)
    v, g = jax.value_and_grad(f)(w)
    # (Optax does the same: a zero learning rate when every value is NaN.)
    for search in (scale_by_backtracking_linesearch(4), scale_by_zoom_linesearch(4)):
        tx = _sgd_with(gradtx, search)
        u, s = tx.update(g, tx.init(w), w, value=v, grad=g, value_fn=f)
        np.testing.assert_array_equal(u, jnp.zeros(3))
        assert float(s[1].learning_rate) == 0.0


def test_verbose_reports_a_failure(capsys):
    f = lambda w: jnp.sum(w**2)
    w = jnp.ones(2)
    v, g = jax.value_and_grad(f)(w)
    for search in (
        scale_by_backtracking_linesearch(2, verbose=True),
        scale_by_zoom_linesearch(2, verbose=True),
    ):
        tx = gradtx.chain(gradtx.scale(1.0), search)  # ascent: cannot succeed
        tx.update(g, tx.init(w), w, value=v, grad=g, value_fn=f)
        jax.effects_barrier()
    out = capsys.readouterr().out
    assert "scale_by_backtracking_linesearch" in out
    assert "not a descent direction" in out


# ------------------------------------------------------------------ protocol


def _step(tx, f, w, **extra):
    v, g = jax.value_and_grad(f)(w, **extra)
    return tx.update(g, tx.init(w), w, value=v, grad=g, value_fn=f, **extra)


@pytest.mark.parametrize(
    "search", [scale_by_backtracking_linesearch(3), scale_by_zoom_linesearch(3)]
)
def test_update_protocol_errors(search):
    tx = _sgd_with(gradtx, search)
    w = jnp.ones(2)
    f = lambda w, batch: jnp.sum(batch * w**2)
    _step(tx, f, w, batch=2.0)  # extra kwargs reach value_fn
    with pytest.raises(TypeError, match="seed"):
        _step(tx, f, w, batch=2.0, seed=0)
    with pytest.raises(TypeError, match="value_fn"):
        tx.update(w, tx.init(w), w, value=1.0, grad=w)
    with pytest.raises(ValueError, match="params"):
        tx.update(w, tx.init(w), value=1.0, grad=w, value_fn=f)
    with pytest.raises(ValueError, match="structure"):
        tx.update([w], tx.init([w]), [w], value=1.0, grad=(w,), value_fn=f)


def test_value_and_grad_from_state_errors_and_dict_keys():
    f = lambda p: jnp.sum(p["value"] ** 2) + jnp.sum(p["grad"])
    p = {"value": jnp.ones(2), "grad": jnp.ones(1)}
    # Params whose keys are "value" and "grad" (Optax raises KeyError here).
    tx = lbfgs()
    v, _ = value_and_grad_from_state(f)(p, state=tx.init(p))
    assert float(v) == 3.0
    with pytest.raises(KeyError):
        optax.value_and_grad_from_state(f)(p, state=optax.lbfgs().init(p))
    vg = value_and_grad_from_state(lambda w: jnp.sum(w**2))
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="store_grad"):
        vg(w, state=scale_by_backtracking_linesearch(3).init(w))
    with pytest.raises(ValueError, match="found 0"):
        vg(w, state=gradtx.adam(0.1).init(w))
    two = gradtx.chain(scale_by_zoom_linesearch(3), scale_by_zoom_linesearch(3))
    with pytest.raises(ValueError, match="found 2"):
        vg(w, state=two.init(w))
    with pytest.raises(TypeError, match="value_fn"):
        value_and_grad_from_state(3.0)


# ------------------------------------------------------------- state, dtypes


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x), getattr(x, "weak_type", False))
        for x in jax.tree.leaves(tree)
    ]


SEARCHES = {
    "backtracking": (scale_by_backtracking_linesearch, dict(max_backtracking_steps=5)),
    "backtracking_grad": (
        scale_by_backtracking_linesearch,
        dict(max_backtracking_steps=5, store_grad=True),
    ),
    "zoom": (scale_by_zoom_linesearch, dict(max_linesearch_steps=5)),
}


def _fields(state):
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    return None


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_state_fields_match_optax(name):
    factory, kwargs = SEARCHES[name]
    p = {"a": jnp.ones(3), "b": jnp.zeros((2, 2))}
    ours = factory(**kwargs).init(p)
    theirs = getattr(optax, factory.__name__)(**kwargs).init(p)
    assert _fields(ours) == _fields(theirs)
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
    for x, y in pairs:
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


@pytest.mark.parametrize(
    "name,dtype",
    [("zoom", jnp.float32), ("zoom", jnp.bfloat16), ("backtracking_grad", jnp.bfloat16),
    ],
)  # fmt: skip
def test_state_is_a_stable_scan_carry_and_dtype_follows(name, dtype):
    factory, kwargs = SEARCHES[name]
    tx = _sgd_with(gradtx, factory(**kwargs))
    f = lambda p: jnp.sum((p["w"] - 0.5) ** 2) + 0.25 * jnp.sum(p["b"] ** 2)
    p = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype), "b": jnp.full((2,), 2.0, dtype)}
    s0 = tx.init(p)

    def step(carry, _):
        p, s = carry
        v, g = jax.value_and_grad(f)(p)
        u, s = tx.update(g, s, p, value=v, grad=g, value_fn=f)
        for x, gx in zip(jax.tree.leaves(u), jax.tree.leaves(g), strict=True):
            assert x.dtype == gx.dtype
        return (gradtx.apply_updates(p, u), s), None

    (p1, s1), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=3))((p, s0))
    assert _signature(s1) == _signature(s0)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(p1))
    assert float(f(p1)) < float(f(p))


def test_jit_and_eager_agree():
    tx = _sgd_with(gradtx, scale_by_zoom_linesearch(10))
    f, p = START["rosenbrock"]
    s = tx.init(p)
    v, g = jax.value_and_grad(f)(p)
    eager = tx.update(g, s, p, value=v, grad=g, value_fn=f)
    jitted = jax.jit(lambda g, s, p, v: tx.update(g, s, p, value=v, grad=g, value_fn=f))
    assert rel_err(eager, jitted(g, s, p, v)) <= RTOL


def test_signatures_match_optax():
    for ours in (scale_by_backtracking_linesearch, scale_by_zoom_linesearch):
        a = inspect.signature(ours).parameters
        b = inspect.signature(getattr(optax, ours.__name__)).parameters
        assert list(a) == list(b)
        for k in a:
            assert a[k].default == b[k].default, k
    assert ScaleByBacktrackingLinesearchState._fields == (
        optax.ScaleByBacktrackingLinesearchState._fields
    )
    assert (
        ScaleByZoomLinesearchState._fields == optax.ScaleByZoomLinesearchState._fields
    )
    assert ZoomLinesearchInfo._fields == optax.ZoomLinesearchInfo._fields


# ------------------------------------------------------------------ bad input

B, Z = scale_by_backtracking_linesearch, scale_by_zoom_linesearch
BAD = [
    (B, dict(max_backtracking_steps=-1), "max_backtracking_steps"),
    (B, dict(max_backtracking_steps=2.5), "max_backtracking_steps"),
    (B, dict(max_backtracking_steps=5, slope_rtol=1.0), "slope_rtol"),
    (B, dict(max_backtracking_steps=5, decrease_factor=1.0), "decrease_factor"),
    (B, dict(max_backtracking_steps=5, decrease_factor=0.0), "decrease_factor"),
    (B, dict(max_backtracking_steps=5, increase_factor=0.5), "increase_factor"),
    (B, dict(max_backtracking_steps=5, max_learning_rate=0.0), "max_learning_rate"),
    (B, dict(max_backtracking_steps=5, atol=-1.0), "atol"),
    (B, dict(max_backtracking_steps=5, rtol=float("nan")), "rtol"),
    (B, dict(max_backtracking_steps=5, store_grad=1), "store_grad"),
    (Z, dict(max_linesearch_steps=0), "max_linesearch_steps"),
    (Z, dict(max_linesearch_steps=5, max_learning_rate=-1.0), "max_learning_rate"),
    (Z, dict(max_linesearch_steps=5, tol=-1e-3), "tol"),
    (Z, dict(max_linesearch_steps=5, increase_factor=1.0), "increase_factor"),
    (Z, dict(max_linesearch_steps=5, slope_rtol=-0.1), "slope_rtol"),
    (Z, dict(max_linesearch_steps=5, curv_rtol=0.0), "curv_rtol"),
    (Z, dict(max_linesearch_steps=5, slope_rtol=0.5, curv_rtol=0.4), "curv_rtol"),
    (Z, dict(max_linesearch_steps=5, approx_dec_rtol=-1.0), "approx_dec_rtol"),
    (Z, dict(max_linesearch_steps=5, stepsize_precision=-1.0), "stepsize_precision"),
    (Z, dict(max_linesearch_steps=5, initial_guess_strategy="two"), "initial_guess"),
    (Z, dict(max_linesearch_steps=5, verbose="yes"), "verbose"),
]


@pytest.mark.parametrize("factory,kwargs,arg", BAD)
def test_bad_hyperparameters_raise(factory, kwargs, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        factory(**kwargs)
