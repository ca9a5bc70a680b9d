"""ZeRO-1: optimizer state split across the data-parallel axis (issue 8).

Data-parallel training on 8 devices (the batch split over ``data``, the
params replicated) with the state placed by :func:`gradtx.zero1_shardings`:
each device holds 1/8 of the state, the compiled step keeps it there, and the
numbers are those of the run with replicated state and of one device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

SHAPES = {"w1": (64, 32), "b1": (32,), "w2": (32, 16), "b2": (16,), "odd": (5, 3)}
STEPS = 4

OPTIMIZERS = {
    "adamw": lambda: gradtx.adamw(1e-2, weight_decay=1e-3),
    "clip+adamw": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(0.5), gradtx.adamw(1e-2)
    ),
    "adafactor": lambda: gradtx.adafactor(1e-2, min_dim_size_to_factor=8),
    "adam_8bit": lambda: gradtx.adam_8bit(1e-2, min_size=0, block_size=8),
}


PIN_STATE = {"adam_8bit"}


def _mesh(kind=AxisType.Auto):
    return jax.make_mesh((8,), ("data",), axis_types=(kind,))


def _params():
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=s).astype(np.float32) * 0.3 for k, s in SHAPES.items()}


def _batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 64)).astype(np.float32)
    return x, np.tanh(x[:, :16] * 1.5).astype(np.float32)


def _loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    out = h @ params["w2"] + params["b2"]
    return jnp.mean((out - y) ** 2) + 1e-3 * jnp.sum(params["odd"] ** 2)


def _train(tx, params, state, x, y, out_shardings=None):
    def step(params, state, x, y):
        grads = jax.grad(_loss)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step, out_shardings=out_shardings)
    for _ in range(STEPS):
        params, state = step(params, state, x, y)
    return params, state, step.lower(params, state, x, y).compile()


def _state_bytes(state) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_zero1_splits_state_and_keeps_the_numbers(name):
    tx = OPTIMIZERS[name]()
    mesh = _mesh()
    replicated = NamedSharding(mesh, P())
    batch = NamedSharding(mesh, P("data"))
    params = jax.device_put(_params(), replicated)
    x, y = (jax.device_put(a, batch) for a in _batch())

    shardings = gradtx.zero1_shardings(tx, params, mesh, "data")
    state = jax.jit(tx.init, out_shardings=shardings)(params)

    # 1/8 of every leaf a dimension of which 8 divides; the rest whole.
    want = 0
    for leaf, sharding in zip(
        jax.tree.leaves(state), jax.tree.leaves(shardings), strict=True
    ):
        split = "data" in str(sharding.spec)
        want += leaf.size * leaf.dtype.itemsize // (8 if split else 1)
    per_device = gradtx.per_device_bytes(state)
    assert len(per_device) == 8 and set(per_device.values()) == {want}
    full = _state_bytes(state)
    assert want < full / 4, (want, full)  # all but the odd leaf and scalars split

    # The params are pinned replicated (else the split updates would split
    # them); the state is left to the compiler, which keeps it where it is —
    # except 8-bit blocks, whose split the compiler may change: pin those too.
    pinned = shardings if name in PIN_STATE else None
    params_z, state_z, compiled = _train(
        tx, params, state, x, y, out_shardings=(replicated, pinned)
    )
    for leaf, a, b in zip(
        jax.tree.leaves(state_z),
        jax.tree.leaves(compiled.input_shardings[0][1]),
        jax.tree.leaves(compiled.output_shardings[1]),
        strict=True,
    ):
        assert a.is_equivalent_to(b, leaf.ndim), (a, b)
    for leaf, sharding in zip(
        jax.tree.leaves(state_z), jax.tree.leaves(shardings), strict=True
    ):
        assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)
    for leaf in jax.tree.leaves(params_z):
        assert leaf.sharding.is_fully_replicated

    # The same run with replicated state, and on one device.
    params_r, state_r, _ = _train(
        tx,
        params,
        jax.device_put(tx.init(params), replicated),
        x,
        y,
        (replicated, None),
    )
    one = jax.devices()[0]
    params_1, _, _ = _train(
        tx,
        jax.device_put(_params(), one),
        tx.init(jax.device_put(_params(), one)),
        *jax.device_put(_batch(), one),
    )
    for a, b, c in zip(
        jax.tree.leaves(params_z),
        jax.tree.leaves(params_r),
        jax.tree.leaves(params_1),
        strict=True,
    ):
        # Equal but for the order XLA fuses a few roundings in: <= 2 ulp.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=3e-7, atol=1e-8)
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(state_z), jax.tree.leaves(state_r), strict=True):
        np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=3e-7, atol=1e-8
        )


def _tensor_parallel():
    """A (2, 4) mesh and the params split on ``model`` (biases replicated)."""
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    specs = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None)}
    specs.update(b2=P(), odd=P())
    shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
    return mesh, jax.device_put(_params(), shardings)


def test_zero1_on_a_tensor_parallel_mesh():
    """(2, 4) mesh: params split on ``model``; ZeRO adds ``data`` to the state."""
    mesh, params = _tensor_parallel()
    tx = gradtx.adam(1e-2)
    follow = tx.init(params)
    shardings = gradtx.zero1_shardings(tx, params, mesh, "data")
    state = jax.jit(tx.init, out_shardings=shardings)(params)
    mu = state[0].mu
    assert mu["w1"].sharding.spec == P("data", "model")  # 64 = 2 * 32 rows
    assert mu["b1"].sharding.spec == P(("model", "data"))
    assert mu["w2"].sharding.spec == P(("model", "data"), None)  # 32 = 4 * 2 * 4
    assert mu["odd"].sharding.spec == P(None, None)  # 5 x 3: nothing divides
    shrink = max(gradtx.per_device_bytes(follow).values()) / max(
        gradtx.per_device_bytes(state).values()
    )
    assert 1.7 < shrink <= 2.0, shrink


def test_zero1_explicit_axes():
    """Explicit axes: the state is split by type; the step gathers the updates
    for the replicated params."""
    mesh = _mesh(AxisType.Explicit)
    tx = gradtx.adamw(1e-2)
    with jax.set_mesh(mesh):
        params = jax.device_put(_params(), NamedSharding(mesh, P()))
        x, y = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in _batch())
        shardings = gradtx.zero1_shardings(tx, params, mesh, "data")
        state = jax.jit(tx.init, out_shardings=shardings)(params)
        param_shardings = jax.tree.map(lambda p: p.sharding, params)
        params_z, state_z, _ = _train(
            tx, params, state, x, y, out_shardings=(param_shardings, shardings)
        )
    for leaf, sharding in zip(
        jax.tree.leaves(state_z), jax.tree.leaves(shardings), strict=True
    ):
        assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)
    one = jax.devices()[0]
    params_1, _, _ = _train(
        tx,
        jax.device_put(_params(), one),
        tx.init(jax.device_put(_params(), one)),
        *jax.device_put(_batch(), one),
    )
    for a, c in zip(jax.tree.leaves(params_z), jax.tree.leaves(params_1), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-5, atol=1e-6)


def test_zero1_names_a_missing_axis():
    with pytest.raises(ValueError, match=r"axis='batch' is not an axis of the mesh"):
        gradtx.zero1_shardings(gradtx.adam(1e-3), _params(), _mesh(), "batch")


def test_restore_state_puts_a_saved_state_back_on_the_mesh():
    """A checkpoint read as NumPy goes back where init would put it, or onto
    the ZeRO shardings given; never gathered on one device."""
    mesh, params = _tensor_parallel()
    tx = gradtx.adamw(1e-2)
    state = tx.init(params)
    saved = jax.device_get(state)  # NumPy, as a checkpoint reads back
    for placement in (None, gradtx.zero1_shardings(tx, params, mesh, "data")):
        restored = gradtx.restore_state(tx, params, saved, shardings=placement)
        want = placement or gradtx.state_shardings(tx, params)
        for got, sharding, value in zip(
            jax.tree.leaves(restored),
            jax.tree.leaves(want),
            jax.tree.leaves(saved),
            strict=True,
        ):
            assert got.sharding.is_equivalent_to(sharding, got.ndim)
            np.testing.assert_array_equal(np.asarray(got), value)
