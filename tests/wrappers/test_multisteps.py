"""MultiSteps (gradient accumulation): Optax, NumPy reference, cost, bad input.

Trajectories follow :mod:`test_reference`: closed loop from the same start,
params compared at every call, norm-wise relative error below 1e-6 in float32
against Optax and against the float64 references of
:mod:`reference_multisteps` (params stored in float32 between steps). The
reference averages with a plain ``sum / k`` where gradtx (and Optax) use a
running mean; the two differ by float32 rounding only, well inside 1e-6 here.

What gradtx does differently from Optax is tested too: the wrapped optimizer
runs only on the calls that emit an update (Optax runs it on every call and
throws the result away), and the state holds only the accumulator, the inner
state and scalars.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_multisteps as RM
from test_reference import DTYPE, X64, _jax_grad, _np_grad, _rel_err, _start

import gradtx
from gradtx._core.base import GradientTransformation, init_empty_state
from gradtx.wrappers.multisteps import (
    MultiSteps,
    MultiStepsState,
    skip_large_updates,
    skip_not_finite,
)

RTOL = 1e-10 if X64 else 1e-6
STEPS = 240
NAN_EVERY = 7  # calls with t % 7 == 3 get a NaN in their first leaf


def _grads(params, t, nan):
    g = _jax_grad(params)
    if nan:
        g[0] = jnp.where(t % NAN_EVERY == 3, jnp.nan, g[0])
    return g


def _np_grads(params, t, nan):
    g = _np_grad(params)
    if nan and t % NAN_EVERY == 3:
        g[0] = np.full_like(g[0], np.nan)
    return g


def _run_jax(tx, apply_updates, nan=False, steps=STEPS):
    params = [jnp.asarray(p, DTYPE) for p in _start()]

    def step(carry, t):
        p, s = carry
        u, s = tx.update(_grads(p, t, nan), s, p)
        p = apply_updates(p, u)
        return (p, s), p

    def scan(p):
        return jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps))

    (_, state), traj = jax.jit(scan)(params)
    return [np.asarray(x, np.float64) for x in traj], state


def _run_numpy(ref, nan=False, steps=STEPS):
    params, traj = [p.astype(DTYPE) for p in _start()], []
    for t in range(steps):
        updates = ref.update(_np_grads(params, t, nan), params)
        params = [(p + u).astype(DTYPE) for p, u in zip(params, updates, strict=True)]
        traj.append(params)
    return [np.stack([p[i] for p in traj]).astype(np.float64) for i in range(4)]


def _k_schedule(step):
    return jnp.where(step < 10, 2, 4)


def _np_k_schedule(step):
    return 2 if step < 10 else 4


# (id, MultiSteps kwargs, inner (lib -> tx), NumPy inner, nan)
CASES = [
    ("sgd-k1", dict(every_k_schedule=1), lambda L: L.sgd(0.05), R.Sgd(0.05), False),
    (
        "momentum-k3",
        dict(every_k_schedule=3),
        lambda L: L.sgd(0.05, momentum=0.9),
        R.Sgd(0.05, momentum=0.9),
        False,
    ),
    (
        "sum-k4",
        dict(every_k_schedule=4, use_grad_mean=False),
        lambda L: L.sgd(0.01, momentum=0.5),
        R.Sgd(0.01, momentum=0.5),
        False,
    ),
    (
        "adam-schedule",
        dict(every_k_schedule=_k_schedule),
        lambda L: L.adam(0.05, b2=0.99),
        R.Adam(0.05, b2=0.99),
        False,
    ),
    (
        "adam-skip-nan",
        dict(every_k_schedule=3, should_skip_update_fn=skip_not_finite),
        lambda L: L.adam(0.05, b2=0.99),
        R.Adam(0.05, b2=0.99),
        True,
    ),
    (
        "acc-dtype-none",
        dict(every_k_schedule=2, accumulator_dtype=None),
        lambda L: L.sgd(0.05, momentum=0.9),
        R.Sgd(0.05, momentum=0.9),
        False,
    ),
]


def _optax_kwargs(kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("should_skip_update_fn") is skip_not_finite:
        kwargs["should_skip_update_fn"] = optax.skip_not_finite
    return kwargs


def _np_kwargs(kwargs):
    k = kwargs["every_k_schedule"]
    return dict(
        every_k_schedule=_np_k_schedule if callable(k) else k,
        use_grad_mean=kwargs.get("use_grad_mean", True),
        skip_not_finite="should_skip_update_fn" in kwargs,
    )


@pytest.mark.parametrize(
    "id_,kwargs,inner,np_inner,nan", CASES, ids=[c[0] for c in CASES]
)
def test_matches_optax_and_numpy_reference(id_, kwargs, inner, np_inner, nan):
    if X64:  # the float32 default accumulator would cap the accuracy at ~1e-8
        kwargs = {"accumulator_dtype": None, **kwargs}
    ours = MultiSteps(inner(gradtx), **kwargs)
    theirs = optax.MultiSteps(inner(optax), **_optax_kwargs(kwargs))
    traj, state = _run_jax(ours.gradient_transformation(), gradtx.apply_updates, nan)
    traj_o, state_o = _run_jax(
        theirs.gradient_transformation(), optax.apply_updates, nan
    )
    traj_r = _run_numpy(RM.MultiSteps(np_inner, **_np_kwargs(kwargs)), nan)
    assert _rel_err(traj, traj_o) <= RTOL
    assert _rel_err(traj, traj_r) <= RTOL
    assert int(state.gradient_step) == int(state_o.gradient_step) > 30
    assert int(state.mini_step) == int(state_o.mini_step)
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(state_o), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_nan_calls_are_rejected_and_counted():
    _, state = _run_jax(
        MultiSteps(
            gradtx.sgd(0.05), 3, should_skip_update_fn=skip_not_finite
        ).gradient_transformation(),
        gradtx.apply_updates,
        nan=True,
    )
    bad = sum(t % NAN_EVERY == 3 for t in range(STEPS))
    assert int(state.gradient_step) * 3 + int(state.mini_step) == STEPS - bad
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))
    assert state.skip_state["num_not_finite"].dtype == jnp.asarray(0).dtype


# ------------------------------------------------- what gradtx does better


def _counting(calls):
    """An identity transformation that counts, on the host, its executions."""

    def update_fn(updates, state, params=None, **extra_args):
        jax.debug.callback(lambda: calls.append(1))
        return updates, state

    return GradientTransformation(init_empty_state, update_fn)


@pytest.mark.parametrize("skip", [False, True])
def test_inner_optimizer_runs_only_when_an_update_is_emitted(skip):
    steps, k = 24, 4
    kw = dict(should_skip_update_fn=skip_not_finite) if skip else {}
    ours, theirs = [], []
    _run_jax(
        MultiSteps(_counting(ours), k, **kw).gradient_transformation(),
        gradtx.apply_updates,
        nan=skip,
        steps=steps,
    )
    kw = dict(should_skip_update_fn=optax.skip_not_finite) if skip else {}
    _run_jax(
        optax.MultiSteps(_counting(theirs), k, **kw).gradient_transformation(),
        optax.apply_updates,
        nan=skip,
        steps=steps,
    )
    jax.effects_barrier()
    good = sum(not (skip and t % NAN_EVERY == 3) for t in range(steps))
    assert len(ours) == good // k  # once per k accepted calls
    assert len(theirs) == good  # Optax: on every accepted call


def test_state_is_the_accumulator_the_inner_state_and_scalars():
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4, jnp.bfloat16)}
    inner = gradtx.adam(1e-3)
    opt = MultiSteps(inner, 4)
    state = opt.init(params)
    assert isinstance(state, MultiStepsState)
    assert state.skip_state == ()
    assert state.mini_step.shape == state.gradient_step.shape == ()
    assert state.mini_step.dtype == state.gradient_step.dtype == jnp.int32
    acc = state.acc_grads
    assert jax.tree.structure(acc) == jax.tree.structure(params)
    assert all(
        a.shape == p.shape and a.dtype == jnp.float32
        for a, p in zip(jax.tree.leaves(acc), jax.tree.leaves(params), strict=True)
    )
    size = lambda t: sum(np.size(x) for x in jax.tree.leaves(t))
    assert size(state) == size(params) + size(inner.init(params)) + 2


def test_has_updated_and_gradient_transformation():
    opt = MultiSteps(gradtx.sgd(1.0), 2)
    assert isinstance(opt.gradient_transformation(), GradientTransformation)
    assert callable(opt.inner_opt.update)
    state = opt.init(jnp.zeros(2))
    seen, update = [], jax.jit(opt.update)
    for g in (1.0, 3.0, 5.0, 7.0):
        u, state = update(jnp.full(2, g), state, jnp.zeros(2))
        seen.append((float(u[0]), bool(opt.has_updated(state))))
    assert seen == [(0.0, False), (-2.0, True), (0.0, False), (-6.0, True)]


def test_skip_large_updates_matches_optax():
    grads = [jnp.ones(3) * 2.0, jnp.ones((2, 2))]
    for max_sq in (1.0, 20.0):
        ours = skip_large_updates(grads, 0, None, max_sq)
        theirs = optax.skip_large_updates(grads, 0, None, max_sq)
        assert bool(ours[0]) == bool(theirs[0])
        np.testing.assert_allclose(ours[1]["norm_squared"], theirs[1]["norm_squared"])
    ours = skip_not_finite([jnp.array([1.0, jnp.inf, jnp.nan])], 0, None)
    assert bool(ours[0]) and int(ours[1]["num_not_finite"]) == 2


def test_skip_large_updates_as_a_partial():
    fn = functools.partial(skip_large_updates, max_squared_norm=4.0)
    opt = MultiSteps(gradtx.sgd(1.0), 1, should_skip_update_fn=fn)
    state = opt.init(jnp.zeros(2))
    u, state = opt.update(jnp.full(2, 3.0), state)
    assert u.tolist() == [0.0, 0.0] and bool(state.skip_state["should_skip"])
    u, state = opt.update(jnp.full(2, 1.0), state)
    assert u.tolist() == [-1.0, -1.0]


def test_extra_args_reach_the_inner_optimizer():
    def update_fn(updates, state, params=None, **extra_args):
        return updates * extra_args["loss"], state

    opt = MultiSteps(GradientTransformation(init_empty_state, update_fn), 1)
    u, _ = opt.update(jnp.ones(2), opt.init(jnp.ones(2)), loss=jnp.array(3.0))
    assert u.tolist() == [3.0, 3.0]


# ---------------------------------------------- signatures, state, dtypes


def test_signatures_match_optax():
    pairs = [
        (MultiSteps.__init__, optax.MultiSteps.__init__),
        (MultiSteps.update, optax.MultiSteps.update),
        (skip_not_finite, optax.skip_not_finite),
        (skip_large_updates, optax.skip_large_updates),
    ]
    for ours, theirs in pairs:
        a = inspect.signature(ours).parameters
        b = inspect.signature(theirs).parameters
        assert list(a) == list(b), ours
        for k in a:
            assert a[k].default == b[k].default, (ours, k)
    assert MultiStepsState._fields == optax.MultiStepsState._fields


@pytest.mark.parametrize("skip", [False, True])
def test_state_matches_optax(skip):
    p = [jnp.ones(3), jnp.zeros(()), jnp.ones((2, 2)), jnp.zeros(0)]
    kw = dict(should_skip_update_fn=skip_not_finite) if skip else {}
    ours = MultiSteps(gradtx.adam(0.1), 3, **kw).init(p)
    kw = dict(should_skip_update_fn=optax.skip_not_finite) if skip else {}
    theirs = optax.MultiSteps(optax.adam(0.1), 3, **kw).init(p)
    assert jax.tree.structure(ours.skip_state) == jax.tree.structure(theirs.skip_state)
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_state_is_stable_and_update_dtype_follows_gradient(dtype):
    opt = MultiSteps(gradtx.adam(0.1), 2, should_skip_update_fn=skip_not_finite)
    params = [
        jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3),
        jnp.zeros(0, dtype),
    ]
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    s0 = opt.init(params)
    step = jax.jit(opt.update)
    u1, s1 = step(grads, s0, params)
    u2, s2 = step(grads, s1, params)
    assert _signature(s0) == _signature(s1) == _signature(s2)
    for u in (u1, u2):
        assert [x.dtype for x in u] == [dtype, dtype]
    assert bool(jnp.all(u1[0] == 0)) and bool(jnp.all(u2[0] != 0))


def test_vmap_over_parameter_trees_equals_each_member():
    opt = MultiSteps(gradtx.adam(0.1), 2)
    params = jnp.stack([jnp.linspace(-1.0, 1.0, 3), jnp.linspace(2.0, 0.0, 3)])

    def run(p):
        s = opt.init(p)
        for _ in range(4):
            u, s = opt.update(jnp.sin(p), s, p)
            p = p + u
        return p

    batched = jax.jit(jax.vmap(run))(params)
    single = jax.jit(run)
    for i in range(2):
        np.testing.assert_allclose(batched[i], single(params[i]), rtol=1e-6)


# -------------------------------------------------------------- bad input

BAD = [
    (dict(every_k_schedule=0), ValueError, "every_k_schedule"),
    (dict(every_k_schedule=2.5), TypeError, "every_k_schedule"),
    (dict(every_k_schedule=2, use_grad_mean="yes"), TypeError, "use_grad_mean"),
    (
        dict(every_k_schedule=2, accumulator_dtype=jnp.int32),
        ValueError,
        "accumulator_dtype",
    ),
    (
        dict(every_k_schedule=2, should_skip_update_fn=3),
        TypeError,
        "should_skip_update_fn",
    ),
]


@pytest.mark.parametrize(
    "kwargs,error,arg", BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)]
)
def test_bad_arguments_raise_naming_the_argument(kwargs, error, arg):
    with pytest.raises(error, match=arg):
        MultiSteps(gradtx.sgd(0.1), **kwargs)


def test_not_a_transformation_is_refused():
    with pytest.raises(TypeError, match="gradient transformation"):
        MultiSteps(gradtx.sgd, 2)


def test_skip_function_must_return_a_bool_scalar():
    opt = MultiSteps(
        gradtx.sgd(0.1),
        2,
        should_skip_update_fn=lambda u, s, p: (jnp.zeros(2, bool), ()),
    )
    with pytest.raises(ValueError, match="should_skip_update_fn"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))


def test_negative_max_squared_norm_is_refused():
    with pytest.raises(ValueError, match="max_squared_norm"):
        skip_large_updates(jnp.ones(2), 0, None, -1.0)


def test_mismatched_accumulator_names_the_leaf():
    opt = MultiSteps(gradtx.sgd(0.1), 2)
    state = opt.init({"a": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"\['a'\]"):
        opt.update({"a": jnp.zeros(4)}, state)
