"""partition / multi_transform, freeze, selective_transform: against Optax."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.combinators.partition import (
    MultiTransformState,
    PartitionState,
    freeze,
    multi_transform,
    partition,
    selective_transform,
)


def _params():
    rng = np.random.default_rng(0)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return {
        "layers": [{"w": f(3, 2), "b": f(2)}, {"w": f(2, 2), "b": f(2)}],
        "head": {"w": f(2), "scale": f()},
    }


def _grads(params, t):
    return jax.tree.map(lambda p: jnp.cos(p * (1.0 + 0.1 * t)) + 0.1 * p, params)


def _by_name(tree):
    """Labels each leaf by its last dict key: 'w', 'b' or 'scale'."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key, tree)


def _assert_trees_close(a, b, rtol=1e-6):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7)


def _run_both(ours, theirs, params, steps=6, jit=True):
    """Runs both optimizers side by side; checks updates, params and states."""
    so, st = ours.init(params), theirs.init(params)
    _assert_trees_close(so, st)
    uo_fn, ut_fn = ours.update, theirs.update
    if jit:
        uo_fn, ut_fn = jax.jit(uo_fn), jax.jit(ut_fn)
    po = pt = params
    for t in range(steps):
        uo, so = uo_fn(_grads(po, t), so, po)
        ut, st = ut_fn(_grads(pt, t), st, pt)
        _assert_trees_close(uo, ut)
        _assert_trees_close(so, st)
        po, pt = gradtx.apply_updates(po, uo), optax.apply_updates(pt, ut)
    _assert_trees_close(po, pt)
    return so


LABEL_CASES = {
    "label_tree": lambda p: jax.tree_util.tree_map_with_path(
        lambda path, _: "a" if path[-1].key == "w" else "b", p
    ),
    "callable": None,  # `_by_name` passed as the labeler itself
    "prefix": lambda p: {"layers": "a", "head": {"w": "b", "scale": "c"}},
    "list_prefix": lambda p: {"layers": ["a", "b"], "head": "c"},
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_partition_matches_optax(case):
    params = _params()
    labels = _by_name if case == "callable" else LABEL_CASES[case](params)
    if case == "callable":
        ours_tx = {"w": gradtx.adam(0.1), "b": gradtx.sgd(0.05, 0.9)}
        theirs_tx = {"w": optax.adam(0.1), "b": optax.sgd(0.05, 0.9)}
        ours_tx["scale"], theirs_tx["scale"] = gradtx.set_to_zero(), optax.set_to_zero()
    else:
        ours_tx = {
            "a": gradtx.adam(0.1),
            "b": gradtx.sgd(0.05, 0.9),
            "c": gradtx.set_to_zero(),
        }
        theirs_tx = {
            "a": optax.adam(0.1),
            "b": optax.sgd(0.05, 0.9),
            "c": optax.set_to_zero(),
        }
    ours = partition(ours_tx, labels)
    theirs = optax.partition(theirs_tx, labels)
    state = _run_both(ours, theirs, params)
    assert isinstance(state, PartitionState)
    assert set(state.inner_states) == set(ours_tx)
    assert all(isinstance(s, gradtx.MaskedState) for s in state.inner_states.values())


def test_partition_with_none_leaves_and_unused_transforms():
    params = {"a": jnp.linspace(-1.0, 1.0, 4), "b": None, "c": [jnp.ones(2), None]}
    labels = {"a": "x", "b": None, "c": ["y", None]}
    ours = partition(
        {"x": gradtx.adam(0.1), "y": gradtx.rmsprop(0.01), "unused": gradtx.adam(1.0)},
        labels,
    )
    theirs = optax.partition(
        {"x": optax.adam(0.1), "y": optax.rmsprop(0.01), "unused": optax.adam(1.0)},
        labels,
    )
    so, st = ours.init(params), theirs.init(params)
    _assert_trees_close(so, st)
    po = pt = params
    for t in range(4):
        g = {"a": jnp.sin(po["a"] + t), "b": None, "c": [jnp.cos(po["c"][0]), None]}
        uo, so = ours.update(g, so, po)
        ut, st = theirs.update(g, st, pt)
        _assert_trees_close(uo, ut)
        assert uo["b"] is None and uo["c"][1] is None
        po, pt = gradtx.apply_updates(po, uo), optax.apply_updates(pt, ut)
    _assert_trees_close(po, pt)
    # The unused transformation keeps a state built on no leaf: only its count.
    assert [int(x) for x in jax.tree.leaves(so.inner_states["unused"])] == [4]


def test_names_signatures_and_state_classes_match_optax():
    for name in ("partition", "multi_transform", "freeze", "selective_transform"):
        ours = inspect.signature(globals()[name]).parameters
        theirs = inspect.signature(getattr(optax, name)).parameters
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ], name
    assert multi_transform is partition
    assert MultiTransformState is PartitionState
    assert PartitionState._fields == optax.PartitionState._fields
    p = {"w": jnp.ones(2)}
    state = freeze({"w": True}).init(p)
    assert type(state).__name__ == type(optax.freeze({"w": True}).init(p)).__name__


@pytest.mark.parametrize(
    "mask",
    [
        {"layers": True, "head": {"w": False, "scale": True}},
        True,
        False,
        jnp.array(True),
        np.bool_(False),
    ],
    ids=["tree", "true", "false", "jax_bool", "numpy_bool"],
)
def test_freeze_and_selective_transform_match_optax(mask):
    params = _params()
    _run_both(freeze(mask), optax.freeze(mask), params, steps=2)
    ours = gradtx.chain(freeze(mask), gradtx.adam(0.1))
    theirs = optax.chain(optax.freeze(mask), optax.adam(0.1))
    _run_both(ours, theirs, params, steps=3)
    ours = selective_transform(gradtx.adam(0.1), freeze_mask=mask)
    theirs = optax.selective_transform(optax.adam(0.1), freeze_mask=mask)
    state = _run_both(ours, theirs, params, steps=4)
    assert sorted(state.inner_states) == ["freeze", "train"]


def test_freeze_and_selective_transform_accept_a_mask_function():
    params = _params()
    fn = lambda p: jax.tree.map(lambda x: x.ndim < 2, p)
    mask = fn(params)
    _run_both(freeze(fn), optax.freeze(mask), params, steps=2)
    ours = selective_transform(gradtx.adam(0.1), freeze_mask=fn)
    theirs = optax.selective_transform(optax.adam(0.1), freeze_mask=mask)
    _run_both(ours, theirs, params, steps=3)


def test_nested_partitions_and_masks_match_optax():
    params = _params()
    outer_labels = {"layers": "body", "head": "head"}

    def make(lib, partition):
        inner = partition(
            {"w": lib.adam(0.1), "b": lib.sgd(0.1), "scale": lib.set_to_zero()},
            _by_name,
        )
        head = lib.masked(
            lib.chain(lib.scale_by_adam(), lib.scale(-0.2)),
            {"layers": False, "head": {"w": True, "scale": False}},
        )
        return partition({"body": inner, "head": head}, outer_labels)

    _run_both(make(gradtx, partition), make(optax, optax.partition), params)


def test_state_is_a_stable_scan_carry_and_jit_agrees():
    params = _params()
    tx = partition(
        {"w": gradtx.adam(0.1), "b": gradtx.sgd(0.1, 0.9), "scale": freeze(True)},
        _by_name,
    )
    state0 = tx.init(params)

    def step(carry, t):
        p, s = carry
        u, s = tx.update(_grads(p, t), s, p)
        return (gradtx.apply_updates(p, u), s), None

    (p_scan, s_scan), _ = jax.lax.scan(step, (params, state0), jnp.arange(5))
    assert jax.tree.structure(s_scan) == jax.tree.structure(state0)
    shapes = lambda s: [(x.shape, x.dtype) for x in jax.tree.leaves(s)]
    assert shapes(s_scan) == shapes(state0)
    p, s = params, state0
    for t in range(5):
        u, s = tx.update(_grads(p, t), s, p)  # eager, no jit
        p = gradtx.apply_updates(p, u)
    _assert_trees_close(p, p_scan)
    _assert_trees_close(s, s_scan)


def test_extra_args_reach_inner_transforms():
    seen = []

    def update(updates, state, params=None, *, loss=None, tags=None, **extra):
        seen.append((loss, tags))
        return updates, state

    spy = gradtx.GradientTransformation(lambda p: gradtx.EmptyState(), update)
    three_arg = optax.GradientTransformation(
        lambda p: optax.EmptyState(), lambda u, s, p=None: (u, s)
    )
    params = {"w": jnp.ones(2), "b": jnp.ones(3)}
    tags = {"w": jnp.zeros(2), "b": jnp.zeros(3)}
    tx = partition({"x": spy, "y": three_arg}, {"w": "x", "b": "y"})
    tx.update(params, tx.init(params), params, loss=jnp.float32(2.0), tags=tags)
    assert float(seen[-1][0]) == 2.0 and seen[-1][1] is tags
    # With mask_compatible_extra_args, trees shaped like the updates are masked.
    tx = partition(
        {"x": spy, "y": three_arg},
        {"w": "x", "b": "y"},
        mask_compatible_extra_args=True,
    )
    tx.update(params, tx.init(params), params, loss=jnp.float32(3.0), tags=tags)
    loss, masked_tags = seen[-1]
    assert float(loss) == 3.0
    assert isinstance(masked_tags["b"], gradtx.MaskedNode)
    assert masked_tags["w"] is tags["w"]


def test_partition_errors_name_the_problem():
    params = {"w": jnp.ones(2), "b": {"x": jnp.ones(1), "y": jnp.ones(1)}}
    txs = {"a": gradtx.adam(0.1), "b": gradtx.sgd(0.1)}
    # A label tree of another structure: both structures are shown.
    bad = partition(txs, {"w": "a", "c": "b"})
    with pytest.raises(ValueError, match=r"`param_labels` does not match `params`"):
        bad.init(params)
    with pytest.raises(ValueError, match=r"(?s)param_labels: PyTreeDef.*'c'.*"):
        bad.init(params)
    with pytest.raises(ValueError, match=r"(?s)params: PyTreeDef.*'x'.*'y'"):
        bad.init(params)
    # A label with no transformation: the label and a leaf that carries it.
    missing = partition(txs, {"w": "a", "b": {"x": "b", "y": "bias"}})
    with pytest.raises(ValueError, match=r"label\(s\) \['bias'\]"):
        missing.init(params)
    with pytest.raises(ValueError, match=r"'bias' \(at leaf \['b'\]\['y'\]\)"):
        missing.init(params)
    # ... also when the labels come from the updates in `update`.
    state = partition(txs, lambda t: jax.tree.map(lambda _: "a", t)).init(params)
    by_shape = partition(txs, lambda t: jax.tree.map(lambda x: f"n{x.size}", t))
    with pytest.raises(ValueError, match=r"'n2' \(at leaf \['w'\]\)"):
        by_shape.update(params, state, params)
    with pytest.raises(TypeError, match=r"hashable.*at leaf \['w'\]"):
        partition(txs, {"w": np.zeros(1), "b": "a"}).init(params)
    with pytest.raises(ValueError, match="PartitionState"):
        partition(txs, {"w": "a", "b": "b"}).update(params, {"a": None}, params)
    with pytest.raises(TypeError, match=r"`transforms\['b'\]`"):
        partition({"a": gradtx.adam(0.1), "b": gradtx.sgd}, {"w": "a", "b": "b"})
    with pytest.raises(TypeError, match="mapping"):
        partition([gradtx.adam(0.1)], {"w": 0, "b": 0})


def test_freeze_and_selective_transform_errors():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"freeze: .*`mask` does not match"):
        freeze({"w": True}).init(params)
    with pytest.raises(
        TypeError, match=r"freeze: `mask` leaves must be bools.*\['b'\]"
    ):
        freeze({"w": True, "b": 1})
    with pytest.raises(ValueError, match=r"selective_transform: .*`freeze_mask`"):
        selective_transform(gradtx.adam(0.1), freeze_mask={"x": True}).init(params)
    with pytest.raises(TypeError, match=r"`freeze_mask` leaves must be bools"):
        selective_transform(gradtx.adam(0.1), freeze_mask={"w": "yes", "b": False})

    @jax.jit
    def traced(flag):
        return freeze(flag)

    with pytest.raises(TypeError, match="must be static"):
        traced(jnp.array(True))
