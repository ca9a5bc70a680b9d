"""Every optimizer on awkward trees, against Optax; float64 in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optimizers import NOT_COMPARABLE_TO_OPTAX, OPTIMIZERS, make, optax_factory

import gradtx


class Layer(NamedTuple):
    w: jax.Array
    b: jax.Array | None


def _mixed_params():
    rng = np.random.default_rng(1)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return {
        "dense": [Layer(f(3, 2), f(2)), Layer(f(2, 2), None)],
        "pair": (f(4), {"deep": {"scalar": f()}}),
        "empty": jnp.zeros((0, 3), jnp.float32),
        "none": None,
    }


def _grads(params, t):
    return jax.tree.map(lambda p: jnp.cos(p * (1.0 + 0.1 * t)) + 0.1 * p, params)


def _run_jitted(tx, apply_updates, params, steps=5):
    @jax.jit
    def step(p, s, t):
        u, s = tx.update(_grads(p, t), s, p)
        return apply_updates(p, u), s

    p, s = params, tx.init(params)
    for t in range(steps):
        p, s = step(p, s, t)
    return p


@pytest.mark.filterwarnings("ignore:optimistic_adam is deprecated:DeprecationWarning")
@pytest.mark.parametrize("id_,name,kwargs", OPTIMIZERS, ids=[e[0] for e in OPTIMIZERS])
def test_mixed_tree_matches_optax(id_, name, kwargs):
    if name in NOT_COMPARABLE_TO_OPTAX:
        pytest.skip(NOT_COMPARABLE_TO_OPTAX[name])
    params = _mixed_params()
    reference = "adamw" if name == "adam_l2" else name
    ours = make(name, **kwargs)
    if name == "adam_l2":
        theirs = optax.chain(
            optax.add_decayed_weights(kwargs["weight_decay"]),
            optax.scale_by_adam(),
            optax.scale_by_learning_rate(kwargs["learning_rate"]),
        )
    else:
        theirs = optax_factory(reference)(**kwargs)
    po = _run_jitted(ours, gradtx.apply_updates, params)
    pt = _run_jitted(theirs, optax.apply_updates, params)
    assert jax.tree.structure(po) == jax.tree.structure(params)
    assert po["none"] is None and po["dense"][1].b is None
    assert po["empty"].shape == (0, 3)
    for a, b in zip(jax.tree.leaves(po), jax.tree.leaves(pt), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_python_scalars_as_leaves():
    params = {"a": 1.0, "b": [2.0, jnp.ones(2)]}
    opt = gradtx.adam(0.1)
    state = opt.init(params)
    u, state = opt.update({"a": 0.5, "b": [0.5, jnp.ones(2)]}, state, params)
    new = gradtx.apply_updates(params, u)
    np.testing.assert_allclose(new["a"], 0.9, rtol=1e-6)


_X64_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax, gradtx
    assert jax.config.jax_enable_x64
    from optimizers import NOT_COMPARABLE_TO_OPTAX, OPTIMIZERS, make, optax_factory
    params = {"f32": jnp.linspace(-1, 1, 5, dtype=jnp.float32),
              "f64": jnp.linspace(-2, 2, 7, dtype=jnp.float64)}
    def grads(p):
        return jax.tree.map(lambda x: jnp.sin(3 * x) + 0.1 * x, p)
    for id_, name, kw in OPTIMIZERS:
        ours = make(name, **kw)
        state = ours.init(params)
        sig = [(x.shape, x.dtype) for x in jax.tree.leaves(state)]
        p = params
        for _ in range(4):
            u, state = ours.update(grads(p), state, p)
            assert u["f32"].dtype == jnp.float32 and u["f64"].dtype == jnp.float64, id_
            p = gradtx.apply_updates(p, u)
        assert [(x.shape, x.dtype) for x in jax.tree.leaves(state)] == sig, id_
        assert p["f64"].dtype == jnp.float64 and p["f32"].dtype == jnp.float32
        if name != "adam_l2" and name not in NOT_COMPARABLE_TO_OPTAX:
            theirs = optax_factory(name)(**kw)
            q, s = params, theirs.init(params)
            for _ in range(4):
                u, s = theirs.update(grads(q), s, q)
                q = optax.apply_updates(q, u)
            np.testing.assert_allclose(
                p["f64"], q["f64"], rtol=1e-10, atol=1e-12, err_msg=id_
            )
            np.testing.assert_allclose(p["f32"], q["f32"], rtol=1e-6, err_msg=id_)
    print("x64 ok", len(OPTIMIZERS))
    """
)


def test_float64_and_mixed_precision_leaves_with_x64():
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    here = os.path.dirname(__file__)
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _X64_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "x64 ok" in out.stdout
