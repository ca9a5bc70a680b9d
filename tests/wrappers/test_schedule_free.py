"""Schedule-Free (wrapper, SGD, AdamW, eval params): Optax, NumPy reference, bad input.

Trajectories follow :mod:`test_reference`: closed loop over 120 steps from the
same start, params compared at every step, norm-wise relative error below 1e-6
in float32 against Optax (``optax.contrib``) and against the float64
three-sequence reference of :mod:`reference_schedule_free` (params stored in
float32 between steps).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_schedule_free as RS
from test_reference import X64, _rel_err, _run_jax, _run_numpy, _start

import gradtx
from gradtx.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd
from gradtx.wrappers.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)

RTOL = 1e-10 if X64 else 1e-6
OURS = {f.__name__: f for f in (schedule_free, schedule_free_sgd, schedule_free_adamw)}


def _sched(t):
    return 0.05 * 0.99**t


SGD_CASES = [
    dict(learning_rate=0.1),
    dict(learning_rate=0.05, b1=0.5, weight_decay=0.1),
    dict(learning_rate=0.1, warmup_steps=20, weight_lr_power=1.0, b1=0.95),
    dict(learning_rate=0.02, b1=1.0, weight_lr_power=0.0),
]
ADAMW_CASES = [
    dict(learning_rate=0.05, warmup_steps=15, b2=0.99, weight_decay=0.1),
    dict(learning_rate=0.01, b1=0.5, eps=1e-3, weight_lr_power=3.0),
]


def _optax(name, kwargs):
    return getattr(optax.contrib, name)(**kwargs)


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=range(len(SGD_CASES)))
def test_sgd_matches_optax_and_numpy_reference(kwargs):
    traj = _run_jax(schedule_free_sgd(**kwargs), gradtx.apply_updates)
    theirs = _run_jax(_optax("schedule_free_sgd", kwargs), optax.apply_updates)
    err_optax = _rel_err(traj, theirs)
    err_ref = _rel_err(traj, _run_numpy(RS.ScheduleFreeSgd(**kwargs)))
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= RTOL, f"vs NumPy reference: {err_ref:.2e}"


@pytest.mark.parametrize("kwargs", ADAMW_CASES, ids=range(len(ADAMW_CASES)))
def test_adamw_matches_optax(kwargs):
    traj = _run_jax(schedule_free_adamw(**kwargs), gradtx.apply_updates)
    theirs = _run_jax(_optax("schedule_free_adamw", kwargs), optax.apply_updates)
    assert _rel_err(traj, theirs) <= RTOL


def test_wrapper_around_a_scheduled_base_matches_optax():
    base = gradtx.adam(_sched, b1=0.0, b2=0.99)
    traj = _run_jax(schedule_free(base, _sched, b1=0.8), gradtx.apply_updates)
    theirs = optax.contrib.schedule_free(
        optax.adam(_sched, b1=0.0, b2=0.99), _sched, 0.8
    )
    assert _rel_err(traj, _run_jax(theirs, optax.apply_updates)) <= RTOL


def _final(tx, apply_updates, steps=50):
    params = [jnp.asarray(p, jnp.float32) for p in _start()]
    grad = lambda ps: [(p - 0.5) + 0.5 * jnp.sin(3.0 * p) for p in ps]

    def step(carry, _):
        p, s = carry
        u, s = tx.update(grad(p), s, p)
        return (apply_updates(p, u), s), None

    return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, steps)[0])(
        params
    )


def test_eval_params_match_optax_and_the_reference_average():
    p, s = _final(schedule_free_sgd(0.1, b1=0.7), gradtx.apply_updates)
    pt, st = _final(optax.contrib.schedule_free_sgd(0.1, b1=0.7), optax.apply_updates)
    ours = schedule_free_eval_params(s, p)
    theirs = optax.contrib.schedule_free_eval_params(st, pt)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert a.dtype == b.dtype
    ref, params = RS.ScheduleFreeSgd(0.1, b1=0.7), [np.float32(x) for x in _start()]
    for _ in range(50):
        grads = [(x - 0.5) + 0.5 * np.sin(3.0 * x) for x in params]
        params = [
            (x + u).astype(np.float32)
            for x, u in zip(params, ref.update(grads, params), strict=True)
        ]
    for a, x in zip(ours, ref.x, strict=True):
        np.testing.assert_allclose(a, x, rtol=2e-6, atol=1e-6)


def test_eval_params_at_init_are_the_params_and_find_a_nested_state():
    params = {"w": jnp.arange(3.0), "b": None}
    state = schedule_free_sgd().init(params)
    out = schedule_free_eval_params(state, params)
    np.testing.assert_array_equal(out["w"], params["w"])
    assert out["b"] is None
    nested = gradtx.chain(gradtx.identity(), schedule_free_sgd()).init(params)
    np.testing.assert_array_equal(
        schedule_free_eval_params(nested, params)["w"], params["w"]
    )


def test_eval_params_reject_other_states():
    params = jnp.ones(2)
    with pytest.raises(ValueError, match="ScheduleFreeState"):
        schedule_free_eval_params(gradtx.adam(0.1).init(params), params)
    with pytest.raises(ValueError, match="shape mismatch"):
        schedule_free_eval_params(schedule_free_sgd().init(params), jnp.ones(3))


@pytest.mark.parametrize("name", list(OURS))
def test_signature_matches_optax(name):
    a = inspect.signature(OURS[name]).parameters
    b = inspect.signature(getattr(optax.contrib, name)).parameters
    assert list(a) == list(b)
    for k in a:
        assert (a[k].default, a[k].kind) == (b[k].default, b[k].kind), k


def _fields(state):
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    return None


@pytest.mark.parametrize(
    "name,kwargs",
    [("schedule_free_sgd", c) for c in SGD_CASES]
    + [("schedule_free_adamw", c) for c in ADAMW_CASES],
)
def test_state_fields_shapes_and_dtypes_match_optax(name, kwargs):
    p = [jnp.ones(3), jnp.zeros(()), jnp.ones((2, 2)), jnp.zeros(0)]
    ours, theirs = OURS[name](**kwargs).init(p), _optax(name, kwargs).init(p)
    assert _fields(ours) == _fields(theirs)
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


# ------------------------------------------------------------ state and dtypes


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
@pytest.mark.parametrize(
    "make",
    [
        lambda: schedule_free_sgd(0.1, warmup_steps=3, weight_decay=0.1),
        lambda: schedule_free_adamw(0.1),
        lambda: schedule_free_sgd(0.1, state_dtype=jnp.float32),
    ],
    ids=["sgd", "adamw", "sgd_f32_z"],
)
def test_state_is_stable_and_update_dtype_follows_gradient(make, dtype):
    tx = make()
    params = [
        jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3),
        jnp.full((), 0.5, dtype),
    ]
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    s0 = tx.init(params)
    u, s1 = jax.jit(tx.update)(grads, s0, params)
    assert _signature(s0) == _signature(s1)
    for x, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads), strict=True):
        assert x.dtype == g.dtype
        assert bool(jnp.all(jnp.isfinite(x)))
    assert s0.weight_sum.dtype == s0.max_lr.dtype == s0.b1.dtype == jnp.float32
    _, s2 = jax.jit(tx.update)(grads, s1, params)
    assert _signature(s2) == _signature(s0)


def test_state_dtype_sets_the_dtype_of_z():
    s = schedule_free_sgd(state_dtype=jnp.bfloat16).init(jnp.ones(2))
    assert s.z.dtype == jnp.bfloat16


def test_bf16_weight_sum_keeps_growing():
    """Optax keeps the weight sum in bf16, where it stalls at 256 equal steps."""
    tx = schedule_free_sgd(1.0)
    p = jnp.zeros(2, jnp.bfloat16)

    def step(s, _):
        return tx.update(jnp.zeros(2, jnp.bfloat16), s, p)[1], None

    s = jax.jit(lambda s: jax.lax.scan(step, s, None, 600)[0])(tx.init(p))
    assert float(s.weight_sum) == 600.0


def test_z_is_a_copy_of_the_params():
    p = jnp.ones(3)
    assert schedule_free_sgd().init(p).z is not p


# ------------------------------------------------------------------ bad input

BAD = [
    (schedule_free_sgd, dict(learning_rate=-0.1), "learning_rate"),
    (schedule_free_sgd, dict(b1=0.0), "b1"),
    (schedule_free_sgd, dict(b1=1.5), "b1"),
    (schedule_free_sgd, dict(warmup_steps=0), "warmup_steps"),
    (schedule_free_sgd, dict(weight_decay=-1.0), "weight_decay"),
    (schedule_free_sgd, dict(weight_lr_power=-1.0), "weight_lr_power"),
    (schedule_free_sgd, dict(state_dtype=jnp.int32), "state_dtype"),
    (schedule_free_adamw, dict(b2=1.0), "b2"),
    (schedule_free_adamw, dict(eps=-1e-8), "eps"),
    (schedule_free_adamw, dict(weight_decay=float("nan")), "weight_decay"),
    (schedule_free_adamw, dict(b1=float("nan")), "b1"),
    (schedule_free_adamw, dict(learning_rate=None), "learning_rate"),
]


@pytest.mark.parametrize(
    "factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        factory(**kwargs)


def test_wrapper_checks_its_arguments():
    with pytest.raises(TypeError, match="base_optimizer"):
        schedule_free(lambda g: g, 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        schedule_free(gradtx.sgd(0.1), -0.1)
    with pytest.raises(ValueError, match="b1"):
        schedule_free(gradtx.sgd(0.1), 0.1, b1=0.0)


def test_update_needs_params():
    tx = schedule_free_sgd()
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_extra_args_reach_the_base_optimizer():
    seen = {}

    def update_fn(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    base = gradtx.GradientTransformation(lambda p: (), update_fn)
    tx = schedule_free(base, 0.1)
    tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2), loss=3.0)
    assert seen == {"loss": 3.0}


def test_hyperparameters_may_be_traced():
    def run(b1):
        tx = schedule_free_sgd(0.1, b1=b1)
        p = jnp.ones(2)
        s = tx.init(p)
        u, s = tx.update(p, s, p)
        u, s = tx.update(p + u, s, p + u)
        return u

    out = jax.jit(jax.vmap(run))(jnp.array([0.9, 0.5]))
    np.testing.assert_allclose(out[1], run(0.5), rtol=1e-6)


def test_state_class_is_exported_shape():
    assert ScheduleFreeState._fields == optax.contrib.ScheduleFreeState._fields
