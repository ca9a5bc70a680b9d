"""lookahead: Optax's trajectory, a float64 NumPy reference, bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.wrappers.lookahead import LookaheadParams, LookaheadState, lookahead

STEPS = 100


def _start():
    return [jnp.linspace(-2.0, 3.0, 5), jnp.full((2, 2), 1.5)]


def _grad(p):
    return [x - 0.5 + 0.5 * jnp.sin(3 * x) for x in p]


def _run(opt, lib):
    pair = LookaheadParams if lib is gradtx else lib.LookaheadParams

    def step(params, _):
        params, state = params
        u, state = opt.update(_grad(params.fast), state, params)
        params = lib.apply_updates(params, u)
        return (params, state), params

    def run(p):
        params = pair.init_synced(p)
        return jax.lax.scan(step, (params, opt.init(params)), None, length=STEPS)

    (_, state), traj = jax.jit(run)(_start())
    return traj, state


def _rel(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize(
    "fast,kwargs",
    [
        ("sgd", dict(sync_period=5, slow_step_size=0.5)),
        ("adam", dict(sync_period=3, slow_step_size=0.8, reset_state=True)),
        ("adam", dict(sync_period=1, slow_step_size=0.3)),
    ],
)
def test_matches_optax(fast, kwargs):
    ours, state = _run(lookahead(getattr(gradtx, fast)(0.05), **kwargs), gradtx)
    theirs, _ = _run(optax.lookahead(getattr(optax, fast)(0.05), **kwargs), optax)
    assert _rel(ours, theirs) < 1e-6
    assert isinstance(state, LookaheadState)
    assert state.steps_since_sync.dtype == jnp.int32
    assert int(state.steps_since_sync) == STEPS % kwargs["sync_period"]


def test_matches_numpy_reference():
    k, alpha, lr = 4, 0.5, 0.05
    ours, _ = _run(lookahead(gradtx.sgd(lr), k, alpha), gradtx)
    slow = [np.asarray(x, np.float64) for x in _start()]
    fast = [x.copy() for x in slow]
    for t in range(STEPS):
        fast = [f - lr * ((f - 0.5) + 0.5 * np.sin(3 * f)) for f in fast]
        if (t + 1) % k == 0:
            slow = [s + alpha * (f - s) for s, f in zip(slow, fast, strict=True)]
            fast = [s.copy() for s in slow]
        for ours_leaf, ref in zip(ours.fast, fast, strict=True):
            np.testing.assert_allclose(ours_leaf[t], ref, rtol=1e-5, atol=1e-6)
        for ours_leaf, ref in zip(ours.slow, slow, strict=True):
            np.testing.assert_allclose(ours_leaf[t], ref, rtol=1e-5, atol=1e-6)


def test_reset_state_restores_fast_state_at_sync():
    opt = lookahead(
        gradtx.adam(0.1), sync_period=2, slow_step_size=0.5, reset_state=True
    )
    params = LookaheadParams.init_synced(jnp.ones(3))
    state = opt.init(params)
    u, state = opt.update(jnp.ones(3), state, params)
    assert int(state.fast_state[0].count) == 1
    params = gradtx.apply_updates(params, u)
    _, state = opt.update(jnp.ones(3), state, params)
    fresh = gradtx.adam(0.1).init(jnp.ones(3))
    for a, b in zip(
        jax.tree.leaves(state.fast_state), jax.tree.leaves(fresh), strict=True
    ):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_init_accepts_plain_params_and_dtype_follows_gradient():
    opt = lookahead(gradtx.sgd(0.1), sync_period=2, slow_step_size=0.5)
    p = jnp.ones(3, jnp.bfloat16)
    state = opt.init(p)
    params = LookaheadParams.init_synced(p)
    for _ in range(2):
        u, new_state = opt.update(p, state, params)
        assert u.fast.dtype == u.slow.dtype == jnp.bfloat16
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        state, params = new_state, gradtx.apply_updates(params, u)


def test_bad_inputs():
    sgd = gradtx.sgd(0.1)
    with pytest.raises(ValueError, match="sync_period"):
        lookahead(sgd, sync_period=0, slow_step_size=0.5)
    with pytest.raises(TypeError, match="sync_period"):
        lookahead(sgd, sync_period=2.5, slow_step_size=0.5)
    with pytest.raises(ValueError, match="slow_step_size"):
        lookahead(sgd, sync_period=2, slow_step_size=1.5)
    with pytest.raises(TypeError, match="reset_state"):
        lookahead(sgd, sync_period=2, slow_step_size=0.5, reset_state="yes")
    with pytest.raises(TypeError, match="fast_optimizer"):
        lookahead(gradtx.sgd, sync_period=2, slow_step_size=0.5)
    opt = lookahead(sgd, sync_period=jnp.asarray(2), slow_step_size=0.5)
    state = opt.init(jnp.ones(2))
    with pytest.raises(ValueError, match="params"):
        opt.update(jnp.ones(2), state)
    with pytest.raises(TypeError, match="LookaheadParams"):
        opt.update(jnp.ones(2), state, jnp.ones(2))
    params = LookaheadParams(fast=jnp.ones(2), slow=jnp.ones(3))
    with pytest.raises(ValueError, match="slow params"):
        opt.update(jnp.ones(2), state, params)


def test_names_match_optax():
    assert LookaheadState._fields == optax.LookaheadState._fields
    assert LookaheadParams._fields == optax.LookaheadParams._fields
