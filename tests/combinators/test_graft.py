"""graft: per-leaf norm of one transformation, direction of another (NumPy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.combinators.graft import match_norm

RNG = np.random.default_rng(0)


def _np_graft(m, d, eps=1e-25):
    return d * np.linalg.norm(m) / (np.linalg.norm(d) + eps)


def test_norms_and_directions_match_numpy_over_steps():
    """Adam's per-leaf norm, the sign direction; 5 steps on a small tree."""
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(3), "s": jnp.asarray(1.0)}
    mag, dirn = gradtx.adam(0.1), gradtx.scale_by_sign()
    tx = gradtx.graft(mag, dirn)
    s, sm = tx.init(params), mag.init(params)
    for _ in range(5):
        g = jax.tree.map(
            lambda x: jnp.asarray(RNG.normal(size=x.shape), x.dtype), params
        )
        u, s = tx.update(g, s, params)
        um, sm = mag.update(g, sm, params)
        for k in params:
            want = _np_graft(np.asarray(um[k], np.float64), np.sign(np.asarray(g[k])))
            np.testing.assert_allclose(u[k], want, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(
                np.linalg.norm(u[k]), np.linalg.norm(um[k]), rtol=1e-6
            )


def test_zero_direction_gives_zero_and_match_norm_is_per_array():
    np.testing.assert_array_equal(match_norm(jnp.ones(3), jnp.zeros(3)), np.zeros(3))
    out = match_norm(jnp.asarray([3.0, 4.0]), jnp.asarray([0.0, -2.0]))
    np.testing.assert_allclose(out, [0.0, -5.0])


def test_state_jit_and_bad_inputs():
    tx = gradtx.graft(gradtx.sgd(0.1, momentum=0.9), gradtx.scale_by_adam())
    p = {"w": jnp.ones((2, 2))}
    state = tx.init(p)
    assert isinstance(state, gradtx.GraftState)
    u1, _ = tx.update(p, state, p)
    u2, _ = jax.jit(tx.update)(p, state, p)
    np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)
    with pytest.raises(TypeError, match="graft: argument 1"):
        gradtx.graft(gradtx.sgd(0.1), gradtx.scale_by_adam)
    with pytest.raises(ValueError, match="graft: `eps`"):
        gradtx.graft(gradtx.sgd(0.1), gradtx.scale_by_adam(), eps=-1.0)
