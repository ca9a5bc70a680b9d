"""Reductions over whole leaves or the whole tree give the one-device numbers
under every sharding (issue 8): global-norm clipping, trust ratios, Muon's
orthogonalisation, packed buffers, and ``fused_step`` (whose native kernel
steps aside on a mesh).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from _setup import LEAVES, MESHES, context, host_params, loss, sharded_params, step_fn
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx
from gradtx.engines import native as _native

STEPS = 3


def _clip_adamw():
    return gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adamw(1e-2))


TXS = {
    "clip_by_global_norm": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(0.5), gradtx.sgd(0.1)
    ),
    "lars": lambda: gradtx.lars(0.1),
    "muon": lambda: gradtx.muon(1e-2),
    "packed(clip+adamw)": lambda: gradtx.packed(_clip_adamw(), min_leaf_size=10**6),
}


def _run(step, params, state):
    step = jax.jit(step)
    for _ in range(STEPS):
        params, state = step(params, state)
    return jax.device_get(params)


@functools.cache
def _one_device(name):
    """The one-device run of ``TXS[name]`` (or clip + AdamW for ``None``)."""
    tx = TXS[name]() if name else _clip_adamw()
    params = jax.device_put(host_params(), jax.devices()[0])
    return _run(step_fn(tx, ""), params, tx.init(params))


def _assert_close(got, want):
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a),
            np.asarray(b),
            rtol=2e-5,
            atol=2e-6,
            err_msg=jax.tree_util.keystr(path),
        )


def test_the_clip_is_active():
    norm = jax.jit(lambda p: gradtx.global_norm(jax.grad(loss)(p)))(host_params())
    assert float(norm) > 10 * 0.5


# On the (2, 4) Auto mesh LARS, Muon and packed clipping give the one-device
# numbers in test_shardings_kept.py.
REDUCTION_CASES = [
    (name, mesh)
    for name in TXS
    for mesh in MESHES
    if mesh != "auto-2x4" or name == "clip_by_global_norm"
]


@pytest.mark.parametrize("name, mesh_name", REDUCTION_CASES)
def test_reduction_matches_one_device(name, mesh_name):
    tx = TXS[name]()
    params, _ = sharded_params(mesh_name)
    with context(mesh_name):
        got = _run(step_fn(tx, ""), params, tx.init(params))
    _assert_close(got, _one_device(name))


@pytest.mark.parametrize("mesh_name", list(MESHES))
def test_pack_keeps_split_leaves_whole(mesh_name):
    """``pack`` buffers only replicated leaves (a flat buffer cannot be split
    as each of its leaves is); training on the packed tree gives the
    one-device numbers."""
    tx = _clip_adamw()
    params, shardings = sharded_params(mesh_name)
    with context(mesh_name):
        packed = gradtx.pack(params, min_leaf_size=10**6)
        children = {
            name: child
            for (name, _, _), child in zip(
                packed.layout.children, packed.children, strict=True
            )
        }
        for name in LEAVES:
            split = not shardings[name].is_fully_replicated
            assert (f"['{name}']" in children) == split, (name, list(children))
        buffers = [v for k, v in children.items() if k.startswith("<packed")]
        assert buffers and all(b.sharding.is_fully_replicated for b in buffers)
        value_and_grad = gradtx.packed_value_and_grad(loss)

        def step(packed, state):
            _, grads = value_and_grad(packed)
            updates, state = tx.update(grads, state, packed)
            return gradtx.apply_updates(packed, updates), state

        got = gradtx.unpack(_run(step, packed, tx.init(packed)))
    _assert_close(got, _one_device(None))


@pytest.mark.parametrize("mesh_name", ["auto-8", "explicit-2x4"])
def test_fused_step_partitions_the_plain_step(mesh_name):
    """On one device the kernel takes these leaves (min_size=1)."""
    tx = _clip_adamw()
    fused = gradtx.fused_step(tx, min_size=1)
    params, _ = sharded_params(mesh_name)
    grads_of = jax.grad(loss)

    def step(params, state):
        return fused(params, state, grads_of(params))

    with context(mesh_name):
        state = tx.init(params)
        hlo = jax.jit(step).lower(params, state).compile().as_text()
        assert _native.TARGET not in hlo  # the kernel is not in the program
        got = _run(step, params, state)
    _assert_close(got, _one_device(None))


def test_fused_step_inside_shard_map_is_the_plain_step():
    """Per-device shards inside ``shard_map``: the plain step, exactly."""
    mesh = jax.make_mesh((8,), ("x",))
    tx = gradtx.adamw(1e-2)
    fused = gradtx.fused_step(tx, min_size=1)
    params = {"w": host_params()["fsdp"]}
    grads = jax.tree.map(lambda p: 0.1 * p, params)
    state = tx.init(params)
    split = {"w": P("x")}
    state_specs = (gradtx.ScaleByAdamState(P(), split, split), P(), P())
    step = jax.jit(
        jax.shard_map(
            fused,
            mesh=mesh,
            in_specs=(split, state_specs, split),
            out_specs=(split, state_specs),
        )
    )
    plain = jax.jit(lambda p, s, g: gradtx.apply_updates(p, tx.update(g, s, p)[0]))
    want = plain(params, state, grads)
    place = lambda tree, specs: jax.device_put(
        tree,
        jax.tree.map(
            lambda s: NamedSharding(mesh, s),
            specs,
            is_leaf=lambda s: isinstance(s, P),
        ),
    )
    params, grads = place(params, split), place(grads, split)
    state = place(state, state_specs)
    with jax.set_mesh(mesh):
        assert _native.TARGET not in step.lower(params, state, grads).as_text()
        got, _ = step(params, state, grads)
    np.testing.assert_array_equal(np.asarray(got["w"]), np.asarray(want["w"]))
