"""COCOB-Backprop against Optax and the paper's rule (reference_contrib_cocob).

Closed loop over 120 steps (tests/test_reference.py's problem and error): the
norm-wise relative error must stay below 1e-6 in float32, against Optax and
against the float64 NumPy reference.
"""

import jax.numpy as jnp
import optax
import pytest
import reference_contrib_cocob as RC
from contrib_checks import (
    assert_close_to_optax_and_reference,
    assert_raises_naming,
    assert_same_signature,
)

import gradtx
from gradtx.contrib import COCOBState, cocob, scale_by_cocob


def _sched(t):
    return 0.5 * 0.99**t


CASES = [
    ("scale_by_cocob", dict()),
    ("scale_by_cocob", dict(alpha=10.0, eps=1e-3)),
    ("cocob", dict()),
    ("cocob", dict(learning_rate=_sched, alpha=50.0, weight_decay=0.1)),
    ("cocob", dict(weight_decay=0.2, mask=[True, False, True, False])),
]
OURS = {"cocob": cocob, "scale_by_cocob": scale_by_cocob}
THEIRS = {"cocob": optax.contrib.cocob, "scale_by_cocob": optax.contrib.scale_by_cocob}


@pytest.mark.parametrize(
    "name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_trajectory_matches_optax_and_reference(name, kwargs):
    ref = getattr(RC, name)(**kwargs) if name == "cocob" else RC.ScaleByCocob(**kwargs)
    assert_close_to_optax_and_reference(
        OURS[name](**kwargs), THEIRS[name](**kwargs), ref
    )


@pytest.mark.parametrize("name", ["cocob", "scale_by_cocob"])
def test_signature_matches_optax(name):
    assert_same_signature(OURS[name], THEIRS[name])


def test_state_has_optax_fields():
    assert COCOBState._fields == optax.contrib.COCOBState._fields
    params = {"w": jnp.ones(3)}
    state = cocob().init(params)
    assert isinstance(state[-1], COCOBState)
    assert jnp.allclose(state[-1].scale["w"], 1e-8, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "factory,argument",
    [
        (lambda: scale_by_cocob(alpha=0.0), "alpha"),
        (lambda: scale_by_cocob(eps=0.0), "eps"),
        (lambda: cocob(alpha=-1.0), "alpha"),
        (lambda: cocob(eps=-1e-8), "eps"),
        (lambda: cocob(learning_rate=-1.0), "learning_rate"),
        (lambda: cocob(weight_decay=-0.1), "weight_decay"),
        (lambda: cocob(alpha=float("nan")), "alpha"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, argument):
    assert_raises_naming(factory, argument)


def test_bad_trees_and_missing_params_raise():
    tx = scale_by_cocob()
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state)
    with pytest.raises(ValueError, match=r"\['w'\]"):
        tx.update({"w": jnp.ones(4)}, state, {"w": jnp.ones(4)})


def test_complex_leaf_is_rejected_by_path():
    params = {"r": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)}
    tx = cocob()
    with pytest.raises(TypeError) as info:
        tx.update(params, tx.init(params), params)
    assert "scale_by_cocob" in str(info.value) and "['z']" in str(info.value)
    real = {"r": params["r"]}
    u, _ = tx.update(real, tx.init(real), real)
    assert bool(jnp.all(jnp.isfinite(u["r"])))


def test_float16_params_keep_a_float32_scale():
    # eps = 1e-8 underflows in float16; the accumulators are float32 there.
    params = jnp.ones(3, jnp.float16)
    tx = cocob()
    state = tx.init(params)
    assert state[-1].scale.dtype == jnp.float32
    u, state = tx.update(jnp.zeros(3, jnp.float16), state, params)
    assert u.dtype == jnp.float16 and bool(jnp.all(u == 0))
    assert gradtx.apply_updates(params, u).dtype == jnp.float16
