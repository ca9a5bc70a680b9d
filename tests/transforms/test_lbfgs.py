"""L-BFGS (scale_by_lbfgs and the lbfgs alias): Optax, usage loop, bad input.

Trajectories: the documented loop (``value_and_grad_from_state``, ``update(g,
state, params, value=, grad=, value_fn=)``) jitted as one ``lax.scan`` of 100
steps on a quadratic and on the 4-d Rosenbrock function, params compared at
every step. L-BFGS with its line search is deterministic and gradtx does the
same float32 operations in the same order, so the tolerance is 1e-6
(measured: 0, bit-identical). ``scale_by_lbfgs`` alone (fixed step, no line
search) is compared on the closed-loop problem of :mod:`test_reference`.

``lbfgs`` cannot join the generic ``OPTIMIZERS`` table: its ``update`` needs
the objective (``value_fn``) and its value, which the table's loop
(``update(grads, state, params)``) does not pass.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_linesearch import START, from_state_fn, rel_err, run
from test_reference import _rel_err, _run_jax

import gradtx
from gradtx.optimizers.lbfgs import lbfgs
from gradtx.transforms.backtracking import (
    scale_by_backtracking_linesearch,
    value_and_grad_from_state,
)
from gradtx.transforms.lbfgs import ScaleByLBFGSState, scale_by_lbfgs
from gradtx.transforms.zoom_linesearch import scale_by_zoom_linesearch

RTOL = 1e-6


def _both(kwargs, search=None):
    """(gradtx, optax) lbfgs with the same options; ``search`` = (name, kwargs)."""
    if search is None:
        return lbfgs(**kwargs), optax.lbfgs(**kwargs)
    name, skw = search
    ours = {"zoom": scale_by_zoom_linesearch, "bt": scale_by_backtracking_linesearch}
    theirs = {
        "zoom": optax.scale_by_zoom_linesearch,
        "bt": optax.scale_by_backtracking_linesearch,
    }
    return (
        lbfgs(**kwargs, linesearch=ours[name](**skw)),
        optax.lbfgs(**kwargs, linesearch=theirs[name](**skw)),
    )


CASES = [
    (dict(), None, "rosenbrock"),
    (dict(learning_rate=0.5, memory_size=1, scale_init_precond=False),
     ("zoom", dict(max_linesearch_steps=10, max_learning_rate=2.0)), "quadratic"),
    (dict(memory_size=5), ("bt", dict(max_backtracking_steps=20, store_grad=True)),
     "rosenbrock"),
    (dict(learning_rate=0.1, linesearch=None), None, "quadratic"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs,search,problem", CASES)
def test_lbfgs_matches_optax(kwargs, search, problem):
    ours, theirs = _both(kwargs, search)
    from_state = kwargs.get("linesearch", 0) is not None
    a = run(gradtx, ours, problem, from_state=from_state)
    b = run(optax, theirs, problem, from_state=from_state)
    assert rel_err(a[0], b[0]) <= RTOL
    assert rel_err(a[1][0], b[1][0]) <= RTOL  # the L-BFGS memory too
    if search is None and from_state:
        f, _ = START[problem]
        final = jax.tree.map(lambda x: x[-1], a[0])
        assert float(f(final)) < 1e-8  # it converged


def test_lbfgs_without_linesearch_on_reference_problem():
    """scale_by_lbfgs with a fixed step, no extra arguments at all."""
    ours = gradtx.chain(scale_by_lbfgs(memory_size=4), gradtx.scale(-0.5))
    theirs = optax.chain(optax.scale_by_lbfgs(memory_size=4), optax.scale(-0.5))
    err = _rel_err(
        _run_jax(ours, gradtx.apply_updates), _run_jax(theirs, optax.apply_updates)
    )
    assert err <= RTOL


def test_documented_usage_loop():
    """Optax's L-BFGS docstring loop, eager, with the printed numbers."""
    f = lambda x: jnp.sum(x**2)
    solver = lbfgs()
    params = jnp.array([1.0, 2.0, 3.0])
    opt_state = solver.init(params)
    value_and_grad = value_and_grad_from_state(f)
    out = []
    for _ in range(2):
        value, grad = value_and_grad(params, state=opt_state)
        updates, opt_state = solver.update(
            grad, opt_state, params, value=value, grad=grad, value_fn=f
        )
        params = gradtx.apply_updates(params, updates)
        out.append(f"{f(params):.2E}")
    assert out == ["7.52E+00", "7.46E-14"]


def test_extra_arguments_reach_the_objective():
    f = lambda w, x, y: jnp.sum((x @ w - y) ** 2)
    x = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
    y = jnp.array([1.0, 0.0, -1.0])
    w = jnp.zeros(2)
    results = []
    for lib, vgfs in ((gradtx, value_and_grad_from_state),
                      (optax, optax.value_and_grad_from_state)):  # fmt: skip
        opt = lib.lbfgs() if lib is optax else lbfgs()

        def step(carry, _):
            w, s = carry
            v, g = vgfs(f)(w, x, y, state=s)
            u, s = opt.update(g, s, w, value=v, grad=g, value_fn=f, x=x, y=y)
            return (lib.apply_updates(w, u), s), None

        (wt, _), _ = jax.jit(
            lambda w: jax.lax.scan(step, (w, opt.init(w)), None, length=10)
        )(w)
        results.append(wt)
    assert rel_err(results[0], results[1]) <= RTOL
    np.testing.assert_allclose(results[0], jnp.linalg.lstsq(x, y)[0], atol=1e-4)


def test_update_protocol_errors():
    opt = lbfgs()
    w = jnp.ones(2)
    f = lambda w: jnp.sum(w**2)
    v, g = jax.value_and_grad(f)(w)
    with pytest.raises(TypeError, match="value_fn"):
        opt.update(g, opt.init(w), w)
    with pytest.raises(TypeError, match="batch"):
        opt.update(g, opt.init(w), w, value=v, grad=g, value_fn=f, batch=1)
    with pytest.raises(ValueError, match="params"):
        scale_by_lbfgs().update(g, scale_by_lbfgs().init(w))
    tx = scale_by_lbfgs()
    with pytest.raises(ValueError, match="shape"):
        tx.update(jnp.ones(3), tx.init(w), jnp.ones(3))


# ------------------------------------------------------------- state, dtypes


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x), getattr(x, "weak_type", False))
        for x in jax.tree.leaves(tree)
    ]


def _fields(state):
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    return None


def test_state_fields_match_optax():
    p = {"a": jnp.ones(3), "b": jnp.zeros((2, 2)), "c": jnp.zeros(())}
    for ours, theirs in (
        (lbfgs(), optax.lbfgs()),
        (scale_by_lbfgs(4, False), optax.scale_by_lbfgs(4, False)),
    ):
        s, t = ours.init(p), theirs.init(p)
        assert _fields(s) == _fields(t)
        for x, y in zip(jax.tree.leaves(s), jax.tree.leaves(t), strict=True):
            assert (x.shape, x.dtype) == (y.shape, y.dtype)
    assert ScaleByLBFGSState._fields == optax.ScaleByLBFGSState._fields


def test_state_is_a_stable_scan_carry_and_dtype_follows(dtype=jnp.bfloat16):
    # float32 carries are checked by every trajectory test (lax.scan).
    opt = lbfgs(memory_size=3)
    f = lambda p: jnp.sum((p["w"] - 0.5) ** 2) + jnp.sum(p["b"] ** 4)
    p = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype), "b": jnp.full((2,), 2.0, dtype)}
    s0 = opt.init(p)
    vg = value_and_grad_from_state(f)

    def step(carry, _):
        p, s = carry
        v, g = vg(p, state=s)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=f)
        for x, gx in zip(jax.tree.leaves(u), jax.tree.leaves(g), strict=True):
            assert x.dtype == gx.dtype
        return (gradtx.apply_updates(p, u), s), None

    (p1, s1), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=4))((p, s0))
    assert _signature(s1) == _signature(s0)
    assert float(f(p1)) < 0.1 * float(f(p))


def test_jit_and_eager_agree():
    opt = lbfgs(memory_size=2)
    f, p = START["rosenbrock"]
    vg = from_state_fn(gradtx)(f)

    def step(p, s):
        v, g = vg(p, state=s)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=f)
        return gradtx.apply_updates(p, u), s

    eager, jitted = (p, opt.init(p)), (p, opt.init(p))
    for _ in range(1):  # eager steps recompile the loops: one is enough
        eager = step(*eager)
        jitted = jax.jit(step)(*jitted)
    assert rel_err(eager, jitted) <= RTOL


def test_signatures_match_optax():
    for ours, name in ((lbfgs, "lbfgs"), (scale_by_lbfgs, "scale_by_lbfgs")):
        a = inspect.signature(ours).parameters
        b = inspect.signature(getattr(optax, name)).parameters
        assert list(a) == list(b)
        for k in a:
            # The default line search is an object; the trajectory tests
            # show it behaves as Optax's.
            if k != "linesearch":
                assert a[k].default == b[k].default, k


# ------------------------------------------------------------------ bad input

BAD = [
    (scale_by_lbfgs, dict(memory_size=0), "memory_size"),
    (scale_by_lbfgs, dict(memory_size=2.5), "memory_size"),
    (scale_by_lbfgs, dict(scale_init_precond="yes"), "scale_init_precond"),
    (lbfgs, dict(memory_size=-1), "memory_size"),
    (lbfgs, dict(learning_rate=-0.1), "learning_rate"),
    (lbfgs, dict(linesearch="zoom"), "linesearch"),
    (lbfgs, dict(linesearch=scale_by_zoom_linesearch), "linesearch"),
]


@pytest.mark.parametrize("factory,kwargs,arg", BAD)
def test_bad_hyperparameters_raise(factory, kwargs, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        factory(**kwargs)
