"""apply_if_finite and conditionally_*: Optax, NumPy reference, safety, bad input.

Trajectories as in :mod:`test_multisteps` (closed loop, 240 calls, 1e-6
relative in float32 against Optax and against :mod:`reference_multisteps`).
Where gradtx deliberately differs — ``apply_if_finite`` never applies
non-finite updates unless asked to — the difference is tested; with
``apply_after_max_errors=True`` it matches Optax again.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_multisteps as RM
from test_multisteps import NAN_EVERY, RTOL, _counting, _run_jax, _run_numpy, _signature
from test_reference import _rel_err

import gradtx
from gradtx.wrappers.conditionals import (
    ApplyIfFiniteState,
    ConditionallyMaskState,
    ConditionallyTransformState,
    apply_if_finite,
    conditionally_mask,
    conditionally_transform,
)

OURS = {
    "apply_if_finite": apply_if_finite,
    "conditionally_transform": conditionally_transform,
    "conditionally_mask": conditionally_mask,
}


def _factory(lib, name):
    """gradtx's wrapper (until the package exports it) or Optax's."""
    return OURS[name] if lib is gradtx else getattr(lib, name)


def _every_third(step):
    return step % 3 == 0


def test_apply_if_finite_matches_optax_and_reference_on_isolated_nans():
    # Never more than max_consecutive_errors NaN calls in a row: same as Optax.
    ours = apply_if_finite(gradtx.adam(0.05, b2=0.99), 3)
    theirs = optax.apply_if_finite(optax.adam(0.05, b2=0.99), 3)
    traj, state = _run_jax(ours, gradtx.apply_updates, nan=True)
    traj_o, state_o = _run_jax(theirs, optax.apply_updates, nan=True)
    traj_r = _run_numpy(RM.ApplyIfFinite(R.Adam(0.05, b2=0.99), 3), nan=True)
    assert _rel_err(traj, traj_o) <= RTOL
    assert _rel_err(traj, traj_r) <= RTOL
    bad = sum(t % NAN_EVERY == 3 for t in range(len(traj[0])))
    assert int(state.total_notfinite) == int(state_o.total_notfinite) == bad
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(state_o), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5)


def _persistent_nan_run(tx, n_bad, n_good=2):
    params = jnp.ones(3)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for t in range(n_bad + n_good):
        g = jnp.full(3, jnp.nan if t < n_bad else 1.0)
        u, state = update(g, state, params)
        params = params + u
        if t == n_bad - 1:
            at_worst = params, state
    return at_worst, (params, state)


def test_apply_if_finite_never_writes_nan_by_default():
    tx = apply_if_finite(gradtx.adam(0.1), max_consecutive_errors=2)
    (params, state), (final, final_state) = _persistent_nan_run(tx, n_bad=6)
    assert bool(jnp.all(params == 1.0))  # six NaN calls: nothing applied
    assert int(state.notfinite_count) == 6 > 2  # the signal to stop training
    assert int(state.total_notfinite) == 6 and not bool(state.last_finite)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
    assert bool(jnp.all(jnp.isfinite(final)) & jnp.all(final < 1.0))  # recovers
    assert int(final_state.notfinite_count) == 0
    assert int(final_state.total_notfinite) == 6 and bool(final_state.last_finite)


def test_apply_if_finite_can_give_up_like_optax():
    ours = apply_if_finite(gradtx.sgd(0.1), 2, apply_after_max_errors=True)
    theirs = optax.apply_if_finite(optax.sgd(0.1), 2)
    (p, s), _ = _persistent_nan_run(ours, n_bad=3, n_good=0)
    (p_o, s_o), _ = _persistent_nan_run(theirs, n_bad=3, n_good=0)
    assert bool(jnp.all(jnp.isnan(p))) and bool(jnp.all(jnp.isnan(p_o)))
    for x, y in zip(jax.tree.leaves(s), jax.tree.leaves(s_o), strict=True):
        assert x.tolist() == y.tolist()
    (p, _), _ = _persistent_nan_run(ours, n_bad=2, n_good=0)
    assert bool(jnp.all(p == 1.0))  # still skipping at max_consecutive_errors


@pytest.mark.parametrize("name", ["conditionally_transform", "conditionally_mask"])
def test_conditionals_match_optax_and_reference(name):
    # Momentum on every third step; the passed-through (or masked) gradients
    # then get the same descent step.
    def build(lib):
        return lib.chain(
            _factory(lib, name)(lib.trace(0.9), _every_third), lib.scale(-0.05)
        )

    ours, theirs = build(gradtx), build(optax)
    mask = name == "conditionally_mask"
    ref = R.Chain(
        RM.ConditionallyTransform(R.Trace(0.9), _every_third, mask), R.Scale(-0.05)
    )
    traj, state = _run_jax(ours, gradtx.apply_updates)
    traj_o, state_o = _run_jax(theirs, optax.apply_updates)
    assert _rel_err(traj, traj_o) <= RTOL
    assert _rel_err(traj, _run_numpy(ref)) <= RTOL
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(state_o), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(OURS))
def test_inner_runs_only_on_the_chosen_steps(name):
    calls = []
    if name == "apply_if_finite":
        tx, expected = apply_if_finite(_counting(calls), 1), 24 - 3  # 3 NaN calls
    else:
        tx, expected = OURS[name](_counting(calls), _every_third), 8
    _run_jax(tx, gradtx.apply_updates, nan=name == "apply_if_finite", steps=24)
    jax.effects_barrier()
    assert len(calls) == expected


def test_extra_args_are_forwarded_to_the_condition_when_asked():
    def fn(step, loss):
        return loss < 1.0

    for factory in (conditionally_transform, conditionally_mask):
        tx = factory(gradtx.scale(10.0), fn, forward_extra_args=True)
        s = tx.init(jnp.ones(2))
        u, s = tx.update(jnp.ones(2), s, loss=jnp.array(0.5))
        assert u.tolist() == [10.0, 10.0]
        u, s = tx.update(jnp.ones(2), s, loss=jnp.array(2.0))
        assert u.tolist() == (
            [0.0, 0.0] if factory is conditionally_mask else [1.0, 1.0]
        )
        assert int(s.step) == 2


# ---------------------------------------------- signatures, state, dtypes


def _build(lib, name, inner):
    if name == "apply_if_finite":
        return _factory(lib, name)(inner, 2)
    return _factory(lib, name)(inner, _every_third)


def _fields(state):
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    return None


@pytest.mark.parametrize("name", sorted(OURS))
def test_signature_and_state_match_optax(name):
    a = inspect.signature(OURS[name]).parameters
    b = inspect.signature(getattr(optax, name)).parameters
    assert list(a)[: len(b)] == list(b)
    assert all(a[k].default == b[k].default for k in b)
    extra = [k for k in a if k not in b]  # gradtx's own options: keyword-only
    assert all(a[k].kind is inspect.Parameter.KEYWORD_ONLY for k in extra)
    p = [jnp.ones(3), jnp.zeros(()), jnp.zeros(0)]
    ours = _build(gradtx, name, gradtx.adam(0.1)).init(p)
    theirs = _build(optax, name, optax.adam(0.1)).init(p)
    assert _fields(ours) == _fields(theirs)
    assert type(ours) in (
        ApplyIfFiniteState,
        ConditionallyMaskState,
        ConditionallyTransformState,
    )
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(OURS))
def test_state_is_stable_and_update_dtype_follows_gradient(name, dtype):
    tx = _build(gradtx, name, gradtx.adam(0.1))
    params = [
        jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3),
        jnp.zeros(0, dtype),
    ]
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    s0 = tx.init(params)
    step = jax.jit(tx.update)
    u1, s1 = step(grads, s0, params)
    u2, s2 = step(grads, s1, params)
    assert _signature(s0) == _signature(s1) == _signature(s2)
    assert [x.dtype for x in u1 + u2] == [dtype] * 4


# -------------------------------------------------------------- bad input

BAD = [
    (
        lambda: apply_if_finite(gradtx.sgd(0.1), -1),
        ValueError,
        "max_consecutive_errors",
    ),
    (
        lambda: apply_if_finite(gradtx.sgd(0.1), 1.5),
        TypeError,
        "max_consecutive_errors",
    ),
    (
        lambda: apply_if_finite(gradtx.sgd(0.1), 1, apply_after_max_errors=1),
        TypeError,
        "apply_after_max_errors",
    ),
    (lambda: apply_if_finite(gradtx.sgd, 1), TypeError, "gradient transformation"),
    (
        lambda: conditionally_transform(gradtx.sgd(0.1), 3),
        TypeError,
        "should_transform_fn",
    ),
    (
        lambda: conditionally_mask(gradtx.sgd(0.1), _every_third, "yes"),
        TypeError,
        "forward_extra_args",
    ),
]


@pytest.mark.parametrize(
    "build,error,arg", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_arguments_raise_naming_the_argument(build, error, arg):
    with pytest.raises(error, match=arg):
        build()


@pytest.mark.parametrize("factory", [conditionally_transform, conditionally_mask])
def test_a_non_scalar_condition_is_refused(factory):
    tx = factory(gradtx.sgd(0.1), lambda step: jnp.ones(2, bool))
    with pytest.raises(ValueError, match="should_transform_fn"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
