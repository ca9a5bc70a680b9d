"""flatten, incremental_update, periodic_update: Optax, dtypes, bad input."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_multisteps import RTOL, _run_jax
from test_reference import _rel_err

import gradtx
from gradtx._core.target_updates import incremental_update, periodic_update
from gradtx.combinators.flatten import flatten


def _tree(dtype=jnp.float32):
    return {
        "w": jnp.arange(6.0, dtype=dtype).reshape(2, 3),
        "b": None,
        "s": jnp.asarray(2.0, dtype),
    }


def test_signatures_match_optax():
    for ours, theirs in [
        (flatten, optax.flatten),
        (incremental_update, optax.incremental_update),
        (periodic_update, optax.periodic_update),
    ]:
        a = inspect.signature(ours).parameters
        b = inspect.signature(theirs).parameters
        assert list(a) == list(b)
        assert all(a[k].default == b[k].default for k in a)


# ---------------------------------------------------------------- flatten


def test_flatten_matches_optax():
    ours = flatten(gradtx.adam(0.05, b2=0.99))
    theirs = optax.flatten(optax.adam(0.05, b2=0.99))
    traj, state = _run_jax(ours, gradtx.apply_updates)
    traj_o, state_o = _run_jax(theirs, optax.apply_updates)
    assert _rel_err(traj, traj_o) <= RTOL
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(state_o), strict=True):
        assert x.shape == y.shape  # one flat buffer per moment
        np.testing.assert_allclose(x, y, rtol=1e-5)


def test_flatten_keeps_each_leaf_dtype_and_none():
    tx = flatten(gradtx.scale(2.0))
    grads = {
        "a": jnp.ones(2, jnp.bfloat16),
        "b": None,
        "c": jnp.ones((2, 1), jnp.float32),
    }
    u, _ = tx.update(grads, tx.init(grads), grads)
    assert u["b"] is None
    assert u["a"].dtype == jnp.bfloat16 and u["c"].dtype == jnp.float32
    assert u["c"].shape == (2, 1) and u["c"].tolist() == [[2.0], [2.0]]


def test_flatten_accepts_an_empty_tree():
    tx = flatten(gradtx.adam(0.1))
    u, _ = tx.update({}, tx.init({}), {})
    assert u == {}


def test_flatten_refuses_mismatched_params():
    tx = flatten(gradtx.adamw(0.1))
    grads = {"a": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"\['b'\]"):
        tx.update(grads, tx.init(grads), {"a": jnp.ones(2), "b": jnp.ones(4)})
    with pytest.raises(TypeError, match="gradient transformation"):
        flatten(gradtx.adam)


# ----------------------------------------------------- slow-copy updates


def test_incremental_update_matches_optax_and_keeps_none():
    new, old = _tree(), jax.tree.map(lambda x: 2.0 * x, _tree())
    for step_size in (0.0, 0.3, 1.0, jnp.array(0.7)):
        ours = incremental_update(new, old, step_size)
        theirs = optax.incremental_update(new, old, step_size)
        assert ours["b"] is None
        for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-7)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_none_leaf_stays_none_whatever_the_other_tree_holds(jit):
    # Optax's rule (its test_none_argument): a None in params / new_tensors is
    # kept, whatever the updates / the average hold there.
    x = jnp.array([1.0, 2.0, 3.0])
    maybe = jax.jit if jit else (lambda f: f)
    for ours, theirs in [
        (gradtx.apply_updates, optax.apply_updates),
        (lambda a, b: incremental_update(a, b, 1.0),
         lambda a, b: optax.incremental_update(a, b, 1.0)),
        (lambda a, b: incremental_update(a, b, 0.25),
         lambda a, b: optax.incremental_update(a, b, 0.25)),
    ]:  # fmt: skip
        assert maybe(ours)(None, x) is None
        lead = {"w": x, "b": None, "c": [None]}
        other = {"w": 2 * x, "b": jnp.ones(2), "c": [{"k": x}]}
        got, want = maybe(ours)(lead, other), theirs(lead, other)
        assert jax.tree.structure(got, is_leaf=lambda v: v is None) == (
            jax.tree.structure(want, is_leaf=lambda v: v is None)
        )
        assert got["b"] is None and got["c"] == [None]
        np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)


def test_a_none_update_for_an_array_param_names_the_leaf():
    params = {"w": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(TypeError, match=r"apply_updates: .*\['b'\] is None"):
        gradtx.apply_updates(params, {"w": jnp.ones(2), "b": None})


def test_incremental_update_keeps_the_average_dtype():
    new, old = _tree(jnp.float32), _tree(jnp.bfloat16)
    out = incremental_update(new, old, jnp.array(0.1))
    assert out["w"].dtype == jnp.bfloat16 and out["s"].dtype == jnp.bfloat16


def test_incremental_update_is_traceable():
    out = jax.jit(incremental_update)(_tree(), _tree(), 0.5)
    assert out["b"] is None


def test_periodic_update_matches_optax():
    new, old = _tree(), jax.tree.map(jnp.zeros_like, _tree())
    for steps in range(5):
        ours = periodic_update(new, old, jnp.asarray(steps), 2)
        theirs = optax.periodic_update(new, old, jnp.asarray(steps), 2)
        for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            assert x.tolist() == y.tolist()


def test_periodic_update_keeps_the_slow_copy_dtype():
    out = periodic_update(_tree(jnp.float32), _tree(jnp.bfloat16), 0, 3)
    assert out["w"].dtype == jnp.bfloat16


BAD = [
    (lambda: incremental_update(_tree(), _tree(), 1.5), ValueError, "step_size"),
    (lambda: incremental_update(_tree(), _tree(), -0.1), ValueError, "step_size"),
    (
        lambda: incremental_update({"a": jnp.ones(2)}, {"a": jnp.ones(3)}, 0.1),
        ValueError,
        r"\['a'\]",
    ),
    (
        lambda: incremental_update({"a": jnp.ones(2)}, {"b": jnp.ones(2)}, 0.1),
        ValueError,
        "new_tensors",
    ),
    (lambda: periodic_update(_tree(), _tree(), 3, 0), ValueError, "update_period"),
    (lambda: periodic_update(_tree(), _tree(), 3, 2.5), TypeError, "update_period"),
    (
        lambda: periodic_update(_tree(), _tree(), 3, jnp.array(0)),
        ValueError,
        "update_period",
    ),
    (
        lambda: periodic_update({"a": jnp.ones(2)}, {"a": jnp.ones(3)}, 0, 1),
        ValueError,
        r"\['a'\]",
    ),
]


@pytest.mark.parametrize("call,error,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_raises_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()
