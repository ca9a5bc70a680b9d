"""snapshot, monitor, measure_with_ema: Optax's measurements, stable state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.wrappers.monitoring import (
    MonitorState,
    SnapshotState,
    measure_with_ema,
    monitor,
    snapshot,
)


def _loss(x):
    return jnp.sum(x**2)


def _steps(solver, lib, n=6):
    params = jnp.array([1.0, 2.0, 3.0])
    state, states = solver.init(params), []
    for _ in range(n):
        updates, state = solver.update(jax.grad(_loss)(params), state)
        params = lib.apply_updates(params, updates)
        states.append(state)
    return states


def test_snapshot_matches_optax():
    def solver(lib):
        return lib.chain(
            lib.sgd(0.1, momentum=0.9),
            lib.snapshot(
                "norm",
                lambda u: jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(u))),
            ),
            lib.clip_by_global_norm(0.05),
        )

    ours = _steps(solver(_Ours), gradtx)
    theirs = _steps(solver(optax), optax)
    for a, b in zip(ours, theirs, strict=True):
        assert isinstance(a[1], SnapshotState)
        np.testing.assert_allclose(
            a[1].measurement["norm"], b[1].measurement["norm"], rtol=1e-6
        )


def _monitor_solver(lib):
    return lib.chain(
        lib.sgd(0.1, momentum=0.9),
        lib.monitor(
            {
                "norm": gradtx.global_norm,
                "clipped": lib.measure_with_ema(
                    lambda u: gradtx.global_norm(u) > 1.0, 0.9
                ),
                "norm_ema": lib.measure_with_ema(gradtx.global_norm, 0.5, debias=False),
            }
        ),
        lib.clip_by_global_norm(1.0),
    )


class _Ours:
    """gradtx with this module's names (not yet exported by gradtx)."""

    chain = staticmethod(gradtx.chain)
    sgd = staticmethod(gradtx.sgd)
    clip_by_global_norm = staticmethod(gradtx.clip_by_global_norm)
    snapshot = staticmethod(snapshot)
    monitor = staticmethod(monitor)
    measure_with_ema = staticmethod(measure_with_ema)


def test_monitor_matches_optax():
    ours = _steps(_monitor_solver(_Ours), gradtx)
    theirs = _steps(_monitor_solver(optax), optax)
    clipped = [float(s[1].measurements["clipped"]) for s in ours]
    assert max(clipped) > 0 and min(clipped) < 1  # the flag's average moves
    for a, b in zip(ours, theirs, strict=True):
        assert isinstance(a[1], MonitorState)
        for k in ("norm", "clipped", "norm_ema"):
            np.testing.assert_allclose(
                a[1].measurements[k], b[1].measurements[k], rtol=1e-6
            )


def test_monitor_state_is_a_scan_carry():
    solver = _monitor_solver(_Ours)

    def step(carry, _):
        p, s = carry
        u, s = solver.update(jax.grad(_loss)(p), s)
        return (gradtx.apply_updates(p, u), s), s[1].measurements["clipped"]

    p = jnp.array([1.0, 2.0, 3.0])
    state = solver.init(p)
    (_, final), clipped = jax.jit(
        lambda p, s: jax.lax.scan(step, (p, s), None, length=6)
    )(p, state)
    assert jax.tree.structure(final) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(state), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
    assert state[1].measurements["clipped"].dtype == jnp.float32
    assert float(state[1].measurements["norm"]) == 0.0
    np.testing.assert_allclose(
        clipped,
        [s[1].measurements["clipped"] for s in _steps(solver, gradtx)],
        rtol=1e-6,
    )


def test_monitor_forwards_extra_args_and_keeps_updates():
    seen = {}

    def update_fn(updates, state, params=None, loss=None, **extra):
        seen["loss"] = loss
        return loss, state

    measure = gradtx.GradientTransformation(lambda p: (), update_fn)
    tx = monitor({"loss": measure})
    u = jnp.array([1.0, -2.0])
    out, state = tx.update(u, tx.init(u), loss=jnp.asarray(3.0))
    np.testing.assert_array_equal(out, u)
    assert float(state.measurements["loss"]) == 3.0


def test_bad_inputs():
    with pytest.raises(TypeError, match="measure_name"):
        snapshot(1, gradtx.global_norm)
    with pytest.raises(TypeError, match="measure"):
        snapshot("n", 3.0)
    with pytest.raises(TypeError, match="measures"):
        monitor([gradtx.global_norm])
    with pytest.raises(TypeError, match="measures\\['x'\\]"):
        monitor({"x": 1.0})
    with pytest.raises(ValueError, match="decay"):
        measure_with_ema(gradtx.global_norm, 1.5)
    with pytest.raises(TypeError, match="debias"):
        measure_with_ema(gradtx.global_norm, 0.9, debias="yes")


def test_names_match_optax():
    assert SnapshotState._fields == optax.SnapshotState._fields
    assert MonitorState._fields == optax.MonitorState._fields
