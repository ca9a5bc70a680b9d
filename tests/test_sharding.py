"""Sharding helpers on one device, and abstract init for every optimizer.

The multi-device behaviour is tested on 8 simulated devices in
``tests/multidevice`` (run by ``tests/test_multidevice.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from optimizers import OPTIMIZERS, make

import gradtx

EXTRA = [
    ("polyak_sgd", "polyak_sgd", dict(max_learning_rate=0.1)),
    ("lbfgs", "lbfgs", dict()),
    ("sophia", "sophia", dict(learning_rate=1e-2)),
]
PARAMS = {
    "w": np.ones((4, 3), np.float32),
    "b": np.zeros((3,), np.float32),
    "h": np.ones((2, 5), jnp.bfloat16),
    "s": np.float32(1.0),
}


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


@pytest.mark.parametrize(
    "oid, factory, kwargs", OPTIMIZERS + EXTRA, ids=[e[0] for e in OPTIMIZERS + EXTRA]
)
def test_init_runs_abstractly(oid, factory, kwargs):
    tx = make(factory, **kwargs)
    abstract = jax.eval_shape(tx.init, _abstract(PARAMS))
    concrete = tx.init(jax.tree.map(jnp.asarray, PARAMS))
    assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
    for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete), strict=True):
        assert (a.shape, a.dtype) == (c.shape, c.dtype)


def test_state_shardings_on_one_device():
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3))
    params = jax.tree.map(jnp.asarray, PARAMS)
    shardings = gradtx.state_shardings(tx, params)
    state = tx.init(params)
    assert jax.tree.structure(shardings) == jax.tree.structure(state)
    device = jax.devices()[0]
    assert all(s.device_set == {device} for s in jax.tree.leaves(shardings))
    # Abstract params give the same answer.
    assert gradtx.state_shardings(tx, _abstract(PARAMS)) == shardings


def test_init_keeps_unplaced_arrays_unplaced():
    """Uncommitted params give uncommitted state (as jnp.zeros_like does),
    so a jitted step sees the same kind of arguments before and after."""
    state = gradtx.adam(1e-3).init({"w": jnp.ones(3)})
    assert not state[0].mu["w"].committed
    placed = {"w": jax.device_put(jnp.ones(3), jax.devices()[0])}
    assert gradtx.adam(1e-3).init(placed)[0].mu["w"].committed


def test_per_device_bytes_counts_arrays_only():
    tree = {"a": jnp.ones((4, 3)), "b": jnp.ones(2, jnp.bfloat16), "c": None, "d": 3}
    assert gradtx.per_device_bytes(tree) == {jax.devices()[0]: 4 * 3 * 4 + 2 * 2}


def test_zero1_on_one_device_keeps_everything_whole():
    mesh = jax.make_mesh((1,), ("data",))
    shardings = gradtx.zero1_shardings(gradtx.adam(1e-3), PARAMS, mesh, "data")
    mu = shardings[0].mu
    assert mu["w"].spec == P("data", None) and mu["b"].spec == P("data")
    assert shardings[0].count.spec == P()


def test_zero1_names_a_missing_axis():
    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(ValueError, match=r"axis='batch' is not an axis of the mesh"):
        gradtx.zero1_shardings(gradtx.adam(1e-3), PARAMS, mesh, "batch")


def test_state_shardings_refuses_params_on_two_meshes():
    one, other = (jax.make_mesh((1,), (name,)) for name in ("a", "b"))
    params = {
        "x": jax.ShapeDtypeStruct(
            (2,), jnp.float32, sharding=jax.NamedSharding(one, P())
        ),
        "y": jax.ShapeDtypeStruct(
            (2,), jnp.float32, sharding=jax.NamedSharding(other, P())
        ),
    }
    with pytest.raises(ValueError, match="more than one mesh"):
        gradtx.state_shardings(gradtx.adam(1e-3), params)


def test_restore_state_places_leaves_on_the_given_shardings():
    tx = gradtx.adam(1e-3)
    params = jax.tree.map(jnp.asarray, PARAMS)
    saved = jax.device_get(tx.init(params))
    device = jax.devices()[0]
    shardings = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(device), saved)
    restored = gradtx.restore_state(tx, params, saved, shardings=shardings)
    assert all(x.committed for x in jax.tree.leaves(restored))
    with pytest.raises(ValueError, match="`shardings` must be a tree of shardings"):
        gradtx.restore_state(tx, params, saved, shardings=[shardings[0]])
