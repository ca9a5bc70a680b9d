"""Packed parameters (gradtx.engines.pack, gradtx.packed): layout, gradients,
exactness, and the refusal of what is not elementwise."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optimizers import OPTIMIZERS, make

import gradtx
from gradtx._core import traits
from gradtx.engines.pack import (
    Packed,
    pack,
    pack_labels,
    packed_value_and_grad,
    refuse_packed,
    unpack,
)
from gradtx.transforms.muon import scale_by_shape

_KEYS = jax.random.split(jax.random.key(0), 8)

# Nested dict/list, float32 and bfloat16, a scalar, zero-size leaves, None,
# an integer leaf (kept whole) and a large leaf (kept whole at min_leaf_size=100).
MIXED = {
    "layers": [
        {"b": jax.random.normal(_KEYS[0], (5,)), "scale": jnp.float32(0.5)},
        {"b": jax.random.normal(_KEYS[1], (7,)), "scale": None},
    ],
    "h": jax.random.normal(_KEYS[2], (3, 2)).astype(jnp.bfloat16),
    "empty": jnp.zeros((0, 4)),
    "empty16": jnp.zeros((0,), jnp.bfloat16),
    "step": jnp.arange(3),
    "W": jax.random.normal(_KEYS[3], (12, 10)),
}

# For trajectories: leaves of rank >= 1 only (see test_scalar_leaf_rounding),
# and two dtypes, so the optimizer sees two buffers: XLA:CPU rounds scalar
# terms differently when a transformation sees a single array, packed or not
# (docs/packing.md, "Exactness").
PARAMS = {
    "b": [jax.random.normal(_KEYS[i], (5 + i,)) for i in range(4)],
    "m": jax.random.normal(_KEYS[4], (3, 4)),
    "h": jax.random.normal(_KEYS[5], (7,)).astype(jnp.bfloat16),
    "W": jax.random.normal(_KEYS[6], (40, 30)),
}


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _f32(x):
    return x.astype(jnp.float32)


def _loss(p):
    return sum(
        jnp.sum(jnp.sin(_f32(x)) + 0.5 * _f32(x) ** 2) for x in jax.tree.leaves(p)
    )


def test_round_trip_eager_and_jit():
    packed = pack(MIXED, min_leaf_size=100)
    # one buffer per dtype, then the large leaf and the int leaf (tree order)
    shapes = [(x.dtype, x.shape) for x in jax.tree.leaves(packed)]
    assert shapes == [
        (jnp.float32, (13,)),
        (jnp.bfloat16, (6,)),
        (jnp.float32, (12, 10)),
        (jnp.int32, (3,)),
    ]
    _assert_same(unpack(packed), MIXED)
    _assert_same(jax.jit(unpack)(packed), MIXED)
    _assert_same(packed.unpack(), MIXED)
    _assert_same(unpack(packed.layout.pack(MIXED)), MIXED)
    assert unpack(packed)["layers"][1]["scale"] is None


def test_unpack_with_nan_and_many_buffers():
    tree = {"a": jnp.array([jnp.nan, 1.0]), "b": jnp.arange(3.0), "c": jnp.ones(())}
    packed = pack(tree, max_leaves_per_buffer=2)
    names = [str(k[0]) for k, _ in jax.tree_util.tree_leaves_with_path(packed)]
    assert names == ["<packed float32>", "<packed float32 #2>"]
    out = jax.jit(unpack)(packed)
    np.testing.assert_array_equal(out["a"], tree["a"])
    np.testing.assert_array_equal(out["b"], tree["b"])
    assert out["c"].shape == () and out["c"] == 1.0


def test_forward_mode_through_unpack():
    packed = pack(PARAMS)
    f_plain = lambda p: _loss(p)
    f_packed = lambda q: _loss(unpack(q))
    tangent = jax.tree.map(jnp.ones_like, PARAMS)
    hvp = jax.jit(lambda p, t: jax.jvp(jax.grad(f_plain), (p,), (t,))[1])
    hvp_packed = jax.jit(lambda q, t: jax.jvp(jax.grad(f_packed), (q,), (t,))[1])
    expected = hvp(PARAMS, tangent)
    got = hvp_packed(packed, packed.layout.pack(tangent))
    for x, y in zip(
        jax.tree.leaves(unpack(got)), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_allclose(_f32(x), _f32(y), rtol=1e-6)


def test_min_leaf_size_and_edge_trees():
    p = {"a": jnp.ones(3), "b": jnp.ones((4, 4))}
    assert len(jax.tree.leaves(pack(p, min_leaf_size=1))) == 2  # nothing packed
    assert len(jax.tree.leaves(pack(p, min_leaf_size=10**9))) == 1  # all packed
    for tree in [{}, {"x": None}, jnp.ones(3), [jnp.zeros((0,))]]:
        _assert_same(unpack(pack(tree)), tree)
    with pytest.raises(ValueError, match="min_leaf_size"):
        pack(p, min_leaf_size=0)
    with pytest.raises(ValueError, match="max_leaves_per_buffer"):
        pack(p, max_leaves_per_buffer=0)
    with pytest.raises(TypeError, match="already packed"):
        pack({"x": pack(p)})


def test_key_paths_name_buffers_and_kept_leaves():
    packed = pack(MIXED, min_leaf_size=100)
    paths = [
        jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(packed)
    ]
    assert paths == ["<packed float32>", "<packed bfloat16>", "['W']", "['step']"]
    # gradtx's own errors then name them: an integer leaf kept whole
    with pytest.raises(TypeError, match=r"leaf \['step'\]"):
        gradtx.adam(1e-3).update(packed, gradtx.adam(1e-3).init(packed), packed)


def test_grad_through_unpack_equals_per_leaf_grad():
    params = {**PARAMS, "unused": jnp.ones(3), "s": jnp.float32(2.0)}
    loss = lambda p: _loss({k: v for k, v in p.items() if k != "unused"})
    expected = jax.jit(jax.grad(loss))(params)
    packed = pack(params)
    grads = jax.jit(jax.grad(lambda q: loss(unpack(q))))(packed)
    assert isinstance(grads, Packed) and grads.layout == packed.layout
    _assert_same(unpack(grads), expected)
    value, grads2 = jax.jit(packed_value_and_grad(loss))(packed)
    assert value == jax.jit(loss)(params)
    _assert_same(grads2, grads)


def _from_table(name):
    _, factory, kwargs = next(e for e in OPTIMIZERS if e[0] == name)
    return make(factory, **kwargs)


def _trajectory(tx, params, grad_fn, steps=6):
    state = tx.init(params)

    @jax.jit
    def step(g, state, params):
        updates, state = tx.update(g, state, params)
        return gradtx.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(grad_fn(params), state, params)
    return params, state


EXACT = [
    "sgd_nesterov",
    "rmsprop_centered_momentum",
    "adam",
    "adamw",
    "amsgrad",
    "lion",
    "adabelief",
    "adopt",
]


@pytest.mark.parametrize("name", EXACT)
def test_elementwise_optimizers_bit_identical(name):
    tx = _from_table(name)
    plain_grad = jax.jit(jax.grad(_loss))
    packed_grad = jax.jit(jax.grad(lambda q: _loss(unpack(q))))
    expected, _ = _trajectory(tx, PARAMS, plain_grad)
    packed, state = _trajectory(tx, pack(PARAMS), packed_grad)
    _assert_same(unpack(packed), expected)
    # the state stays packed: its moments are buffers like the params'
    shapes = {x.shape for x in jax.tree.leaves(state)}
    assert {x.shape for x in jax.tree.leaves(packed)} <= shapes


def test_scalar_leaf_rounding():
    # XLA:CPU rounds some operations (a division by a constant) differently on
    # a rank-0 array than on a vector; a packed scalar follows the vector path,
    # bit for bit the trajectory of a (1,)-shaped leaf.
    tx = make("schedule_free_adamw", learning_rate=2e-2)
    grad_fn = lambda p: jax.tree.map(lambda x: jnp.sin(x) * 0.5 + 0.1 * x, p)
    as_vector, _ = _trajectory(
        tx, {"s": jnp.full((1,), 0.3), "v": PARAMS["m"]}, grad_fn
    )
    packed, _ = _trajectory(
        tx, pack({"s": jnp.float32(0.3), "v": PARAMS["m"]}), grad_fn
    )
    packed = unpack(packed)
    np.testing.assert_array_equal(packed["s"].reshape(1), as_vector["s"])
    np.testing.assert_array_equal(packed["v"], as_vector["v"])


def test_global_norm_clipping_within_rounding():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 100)
    tx = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adamw(sched))
    grad_fn = jax.jit(jax.grad(_loss))
    expected, _ = _trajectory(tx, PARAMS, grad_fn, steps=20)
    packed_grad = jax.jit(lambda q: pack_like(q, grad_fn))
    packed, _ = _trajectory(tx, pack(PARAMS), packed_grad, steps=20)
    for x, y in zip(
        jax.tree.leaves(unpack(packed)), jax.tree.leaves(expected), strict=True
    ):
        # the norm sums per buffer instead of per leaf (<= 2 ulps apart); after
        # 20 clipped steps params of size ~3 differ by a few ulps (2.4e-7)
        np.testing.assert_allclose(_f32(x), _f32(y), rtol=0, atol=1e-6)


def pack_like(packed, grad_fn):
    return packed.layout.pack(grad_fn(unpack(packed)))


def test_jit_with_donation():
    tx = gradtx.adamw(1e-2)

    def train_step(params, state):
        grads = jax.grad(lambda q: _loss(unpack(q)))(params)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    packed = pack(PARAMS)
    expected = jax.jit(train_step)(packed, tx.init(packed))
    donating = jax.jit(train_step, donate_argnums=(0, 1))
    params, state = jax.tree.map(jnp.copy, packed), tx.init(packed)
    inputs = jax.tree.leaves((params, state))
    got = donating(params, state)
    assert all(x.is_deleted() for x in inputs if x.size)  # buffers were reused
    _assert_same(got, expected)
    donating(*got)  # the outputs feed the next call


def test_pickle_and_jit_cache():
    packed = pack(MIXED, min_leaf_size=100)
    again = pickle.loads(pickle.dumps(packed))
    assert again.layout == packed.layout and hash(again.layout) == hash(packed.layout)
    assert jax.tree.structure(again) == jax.tree.structure(packed)
    _assert_same(unpack(again), MIXED)
    f = jax.jit(lambda q: jax.tree.map(lambda x: x * 2, q))
    f(packed)
    f(again)
    assert f._cache_size() == 1


def test_vmap_over_stacked_packed():
    members = [jax.tree.map(lambda x, i=i: x * (i + 1), PARAMS) for i in range(2)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *map(pack, members))
    grads = jax.jit(jax.vmap(jax.grad(lambda q: _loss(unpack(q)))))(stacked)
    for i, member in enumerate(members):
        expected = jax.jit(jax.grad(_loss))(member)
        _assert_same(unpack(jax.tree.map(lambda x, i=i: x[i], grads)), expected)


def test_unpack_refuses_changed_shapes():
    packed = pack(PARAMS)
    summed = jax.tree.map(jnp.sum, packed)  # a Packed whose children lost shape
    with pytest.raises(ValueError, match=r"child <packed float32> has shape \[\]"):
        unpack(summed)
    with pytest.raises(TypeError, match="expected a Packed"):
        unpack(PARAMS)
    with pytest.raises(ValueError, match=r"leaf \['m'\] has shape \(4, 3\)"):
        packed.layout.pack({**PARAMS, "m": jnp.ones((4, 3))})


def test_refuse_packed_message():
    packed = pack(PARAMS)
    refuse_packed("t", PARAMS, None, why="it uses per-leaf norms")  # plain: fine
    msg = r"scale_by_trust_ratio: the tree is packed.*leaf \['W'\]"
    with pytest.raises(TypeError, match=msg):
        refuse_packed("scale_by_trust_ratio", packed, why="its trust ratio is per leaf")
    vectors = pack({"b": PARAMS["b"], "W": PARAMS["W"]}, min_leaf_size=100)
    refuse_packed("centralize", vectors, why="it centres matrices", max_rank=1)
    with pytest.raises(TypeError, match=r"leaf \['W'\] of shape \(40, 30\)"):
        refuse_packed("centralize", packed, why="it centres matrices", max_rank=1)


def test_labels_keep_buffers_apart_and_masks_follow():
    labels = {"b": "no_decay", "h": "decay", "m": "decay", "W": "decay"}
    packed = pack(PARAMS, labels=labels)
    names = [str(k[0]) for k, _ in jax.tree_util.tree_leaves_with_path(packed)]
    assert names == [
        "<packed float32 decay>",
        "<packed float32 no_decay>",
        "<packed bfloat16 decay>",
    ]
    mask_fn = lambda p: {"b": [False] * 4, "h": True, "m": True, "W": True}
    mask = pack_labels(packed, mask_fn)
    assert jax.tree.leaves(mask) == [True, False, True]
    tx_plain = gradtx.adamw(1e-2, weight_decay=0.1, mask=mask_fn)
    tx_packed = gradtx.adamw(1e-2, weight_decay=0.1, mask=mask)
    grad_fn = jax.jit(jax.grad(_loss))
    expected, _ = _trajectory(tx_plain, PARAMS, grad_fn)
    got, _ = _trajectory(tx_packed, packed, jax.jit(lambda q: pack_like(q, grad_fn)))
    _assert_same(unpack(got), expected)
    with pytest.raises(ValueError, match="holds leaves labelled"):
        pack_labels(pack(PARAMS), mask_fn)


# Transformations that treat a leaf as a whole: on packed buffers they would act
# on whole buffers, so packed() refuses them when it is built, because they do
# not declare themselves elementwise (docs/packing.md, "What packed() refuses").
PER_LEAF = [
    "lion_masked",
    "novograd",
    "sm3",
    "muon",
    "muon_polar_express_gram",
    "normuon",
    "fromage",
    "lars",
    "lamb",
    "adafactor",
    "shampoo",
    "shampoo_adagrad",
]


@pytest.mark.parametrize("name", PER_LEAF)
def test_per_leaf_optimizers_refuse_packed(name):
    with pytest.raises(ValueError, match=r"^packed: "):
        gradtx.packed(_from_table(name))


_MASK_FN = lambda p: jax.tree.map(lambda x: x.ndim == 1, p)
_LABEL_FN = lambda p: jax.tree.map(lambda x: "a" if x.ndim == 1 else "b", p)

# (part named in the message, transformation); each one sees whole leaves.
REFUSERS = [
    ("scale_by_trust_ratio", gradtx.scale_by_trust_ratio()),
    ("scale_by_param_block_norm", gradtx.scale_by_param_block_norm()),
    ("scale_by_param_block_rms", gradtx.scale_by_param_block_rms()),
    ("clip_by_block_rms", gradtx.clip_by_block_rms(1.0)),
    ("adaptive_grad_clip", gradtx.adaptive_grad_clip(0.1)),
    ("scale_by_novograd", gradtx.scale_by_novograd()),
    ("scale_by_sm3", gradtx.scale_by_sm3()),
    ("scale_by_factored_rms", gradtx.scale_by_factored_rms(min_dim_size_to_factor=2)),
    ("scale_by_muon", gradtx.scale_by_muon()),
    ("scale_by_shape", scale_by_shape()),
    ("centralize", gradtx.centralize()),
    ("masked", gradtx.masked(gradtx.sgd(0.1), _MASK_FN)),
    (
        "partition",
        gradtx.partition({"a": gradtx.sgd(0.1), "b": gradtx.sgd(0.2)}, _LABEL_FN),
    ),
    ("freeze", gradtx.freeze(_MASK_FN)),
    (
        "selective_transform",
        gradtx.selective_transform(gradtx.sgd(0.1), freeze_mask=_MASK_FN),
    ),
    ("masked", gradtx.adamw(0.1, mask=_MASK_FN)),
    ("scale_by_trust_ratio", gradtx.lamb(0.1)),
    ("scale_by_muon", gradtx.muon(0.02)),
    ("scale_by_adam_8bit", gradtx.adam_8bit(0.1)),
    ("scale_by_sm3", gradtx.apply_if_finite(gradtx.sm3(0.1), 3)),
    ("scale_by_sm3", gradtx.MultiSteps(gradtx.sm3(0.1), 2).gradient_transformation()),
    (
        "scale_by_trust_ratio",
        gradtx.chain(gradtx.packed(gradtx.adam(0.1)), gradtx.lars(0.1)),
    ),
]


@pytest.mark.parametrize("owner,tx", REFUSERS, ids=[r[0] for r in REFUSERS])
def test_transformations_that_see_whole_leaves_refuse_packed(owner, tx):
    with pytest.raises(ValueError, match=rf"^packed: {owner}\b"):
        gradtx.packed(tx)


def test_a_function_of_the_params_is_refused_with_advice():
    with pytest.raises(
        ValueError, match=r"`mask` is a function of the params.*pack_labels"
    ):
        gradtx.packed(gradtx.adamw(0.1, mask=_MASK_FN))
    with pytest.raises(ValueError, match=r"`param_labels` is a function"):
        gradtx.packed(gradtx.partition({"a": gradtx.sgd(0.1)}, lambda p: "a"))
    # the same combinators with trees are elementwise
    gradtx.packed(gradtx.adamw(0.1, mask={"w": True}))
    gradtx.packed(gradtx.partition({"a": gradtx.sgd(0.1)}, "a"))
    gradtx.packed(gradtx.freeze(False))
    gradtx.packed(gradtx.selective_transform(gradtx.sgd(0.1), freeze_mask=False))


def test_foreign_transformations_are_refused_by_name():
    optax = pytest.importorskip("optax")
    # the case: it used to run and end 0.28 away from the plain run
    with pytest.raises(ValueError, match=r"optax's chain.*scale_by_trust_ratio"):
        gradtx.packed(optax.lamb(0.1))
    # foreign transformations never declare themselves elementwise
    with pytest.raises(ValueError, match=r"optax's scale_by_adam.*outside it"):
        gradtx.packed(optax.scale_by_adam())
    # nor inside a gradtx chain
    with pytest.raises(ValueError, match=r"optax's scale_by_trust_ratio \(optax"):
        gradtx.packed(gradtx.chain(gradtx.adam(0.1), optax.scale_by_trust_ratio()))


def test_only_the_elementwise_part_packed():
    # the advice of the message: pack the elementwise part of a lamb-like chain
    tx = gradtx.chain(gradtx.scale_by_adam(), gradtx.scale_by_trust_ratio())
    split = gradtx.chain(
        gradtx.packed(gradtx.scale_by_adam()), gradtx.scale_by_trust_ratio()
    )
    grad_fn = jax.jit(jax.grad(_loss))
    expected, _ = _trajectory(tx, PARAMS, grad_fn)
    got, _ = _trajectory(split, PARAMS, grad_fn)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(_f32(x), _f32(y), rtol=1e-6, atol=1e-6)


def test_packed_passes_pack_trees_through():
    # gradtx.pack's params stepped through packed(tx): checked, and the same
    # numbers as tx on the packed tree
    tx = _from_table("adamw")
    packed_grad = jax.jit(jax.grad(lambda q: _loss(unpack(q))))
    expected, _ = _trajectory(tx, pack(PARAMS), packed_grad)
    got, _ = _trajectory(gradtx.packed(tx), pack(PARAMS), packed_grad)
    assert isinstance(got, Packed)
    _assert_same(got, expected)
    wrapped = gradtx.packed(tx)
    packed = pack(PARAMS)
    with pytest.raises(TypeError, match=r"`params` are packed.*`updates` are not"):
        wrapped.update(PARAMS, wrapped.init(packed), packed)
    with pytest.raises(TypeError, match=r"`updates` are packed.*`params` are not"):
        wrapped.update(packed, wrapped.init(packed), PARAMS)


# Table entries that are not elementwise, and the part to blame. Every other
# entry must declare itself elementwise: a new primitive chooses (it calls
# gradtx.declare_elementwise, or its optimizer is listed here).
NOT_ELEMENTWISE = {
    "lion_masked": "masked",
    "novograd": "scale_by_novograd",
    "sm3": "scale_by_sm3",
    "muon": "scale_by_muon",
    "muon_polar_express_gram": "scale_by_muon",
    "normuon": "scale_by_muon",
    "shampoo": "scale_by_shampoo",
    "shampoo_adagrad": "scale_by_shampoo",
    "fromage": "scale_by_trust_ratio",
    "lars": "scale_by_trust_ratio",
    "lamb": "scale_by_trust_ratio",
    "adafactor": "scale_by_factored_rms",
    "adafactor_momentum": "scale_by_factored_rms",
    "adam_8bit": "scale_by_adam_8bit",
    "adamw_8bit": "scale_by_adam_8bit",
    "adamw_8bit_float": "scale_by_adam_8bit",
    "sgd_8bit": "trace_8bit",
    "sgd_8bit_nesterov": "trace_8bit",
    "galore": "scale_by_galore",
    "soap": "scale_by_soap",
    "cautious_adamw": "cautious",
    "mars_adamw": "scale_by_mars",
    "adam_mini": "scale_by_adam_mini",
    "psgd_kron": "scale_by_kron",
}


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=[e[0] for e in OPTIMIZERS])
def test_every_table_optimizer_declares_whether_it_is_elementwise(entry):
    name, factory, kwargs = entry
    tx = make(factory, **kwargs)
    blame = traits.not_elementwise(tx)
    if name in NOT_ELEMENTWISE:
        assert blame is not None, f"{name} is elementwise: take it off the list"
        assert traits.name(blame[0]) == NOT_ELEMENTWISE[name]
    else:
        assert blame is None, (
            f"{name}: {traits.name(blame[0])} does not declare itself "
            "elementwise: declare it (gradtx.declare_elementwise) or list "
            "the optimizer in NOT_ELEMENTWISE"
        )
        gradtx.packed(tx)


# Every primitive, built with small arguments, and whether it is elementwise.
PRIMITIVES = [
    (True, lambda: gradtx.identity()),
    (True, lambda: gradtx.set_to_zero()),
    (False, lambda: gradtx.stateless(lambda u, p: u)),  # a user's function
    (False, lambda: gradtx.stateless_with_tree_map(lambda u, p: u)),
    (True, lambda: gradtx.scale(0.1)),
    (True, lambda: gradtx.scale_by_schedule(lambda c: 0.1)),
    (True, lambda: gradtx.scale_by_learning_rate(0.1)),
    (True, lambda: gradtx.clip(1.0)),
    (True, lambda: gradtx.clip_by_global_norm(1.0)),
    (True, lambda: gradtx.add_decayed_weights(0.1)),
    (True, lambda: gradtx.add_noise(0.1, 0.5, 0)),
    (True, lambda: gradtx.apply_every(2)),
    (True, lambda: gradtx.trace(0.9)),
    (True, lambda: gradtx.ema(0.9)),
    (True, lambda: gradtx.scale_by_rms()),
    (True, lambda: gradtx.scale_by_stddev()),
    (True, lambda: gradtx.scale_by_rss()),
    (True, lambda: gradtx.scale_by_adam()),
    (True, lambda: gradtx.scale_by_amsgrad()),
    (True, lambda: gradtx.scale_by_adamax()),
    (True, lambda: gradtx.scale_by_adadelta()),
    (True, lambda: gradtx.scale_by_adan()),
    (True, lambda: gradtx.scale_by_rprop(0.1)),
    (True, lambda: gradtx.scale_by_optimistic_gradient()),
    (True, lambda: gradtx.scale_by_ademamix()),
    (True, lambda: gradtx.scale_by_simplified_ademamix()),
    (True, lambda: gradtx.scale_by_adopt()),
    (True, lambda: gradtx.scale_by_belief()),
    (True, lambda: gradtx.scale_by_radam()),
    (True, lambda: gradtx.scale_by_yogi()),
    (True, lambda: gradtx.scale_by_sign()),
    (True, lambda: gradtx.scale_by_lion()),
    (True, lambda: gradtx.scale_by_polyak()),
    (True, lambda: gradtx.scale_by_lbfgs()),
    (True, lambda: gradtx.normalize_by_update_norm()),
    (True, lambda: gradtx.keep_params_nonnegative()),
    (True, lambda: gradtx.zero_nans()),
    (True, lambda: gradtx.prodigy()),
    (True, lambda: gradtx.reduce_on_plateau()),
    (False, lambda: gradtx.scale_by_distance_over_gradients()),  # per-leaf DoG
    (False, lambda: gradtx.scale_by_backtracking_linesearch(3)),  # f(params)
    (False, lambda: gradtx.scale_by_zoom_linesearch(3)),
    (False, lambda: gradtx.scale_by_sophia()),
    (False, lambda: gradtx.hutchinson_estimator_diag_hessian()),
    (False, lambda: gradtx.scale_by_trust_ratio()),
    (False, lambda: gradtx.scale_by_param_block_norm()),
    (False, lambda: gradtx.scale_by_param_block_rms()),
    (False, lambda: gradtx.clip_by_block_rms(1.0)),
    (False, lambda: gradtx.adaptive_grad_clip(0.1)),
    (False, lambda: gradtx.scale_by_novograd()),
    (False, lambda: gradtx.scale_by_sm3()),
    (False, lambda: gradtx.scale_by_factored_rms()),
    (False, lambda: gradtx.scale_by_muon()),
    (False, lambda: scale_by_shape()),
    (False, lambda: gradtx.centralize()),
    (False, lambda: gradtx.scale_by_adam_8bit()),
    (False, lambda: gradtx.trace_8bit(0.9)),
    (False, lambda: gradtx.snapshot("n", gradtx.tree.norm)),  # a user's measure
]


@pytest.mark.parametrize("expected,factory", PRIMITIVES)
def test_primitives_declare_whether_they_are_elementwise(expected, factory):
    tx = factory()
    assert traits.is_elementwise(tx) is expected, traits.name(tx)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda t: gradtx.chain(t, gradtx.scale(0.1)),
        lambda t: gradtx.named_chain(("a", t)),
        lambda t: gradtx.masked(t, True),
        lambda t: gradtx.partition({"a": t}, "a"),
        lambda t: gradtx.selective_transform(t, freeze_mask=False),
        lambda t: gradtx.flatten(t),
        lambda t: gradtx.MultiSteps(t, 2).gradient_transformation(),
        lambda t: gradtx.apply_if_finite(t, 3),
        lambda t: gradtx.conditionally_mask(t, lambda step: step > 1),
        lambda t: gradtx.conditionally_transform(t, lambda step: step > 1),
        lambda t: gradtx.lookahead(t, 2, 0.5),
        lambda t: gradtx.schedule_free(t, 0.1),
        lambda t: gradtx.kahan_summation(t),
        lambda t: gradtx.stochastic_rounding(t, 0),
    ],
)
def test_combinators_and_wrappers_inherit(wrap):
    assert traits.is_elementwise(wrap(gradtx.scale_by_adam()))
    assert not traits.is_elementwise(wrap(gradtx.scale_by_trust_ratio()))


@pytest.mark.parametrize("name", ["adamw", "sgd_nesterov", "lion"])
def test_packed_wrapper_follows_the_plain_run(name):
    tx = _from_table(name)
    grad_fn = jax.jit(jax.grad(_loss))
    expected, _ = _trajectory(tx, PARAMS, grad_fn)
    got, state = _trajectory(gradtx.packed(tx), PARAMS, grad_fn)
    _assert_same(got, expected)
    # the state is the inner state of the packed tree: a few buffers
    assert any(
        isinstance(x, Packed)
        for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, Packed))
    )


def test_packed_wrapper_clip_schedule_and_errors():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 100)
    tx = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adamw(sched))
    grad_fn = jax.jit(jax.grad(_loss))
    expected, _ = _trajectory(tx, PARAMS, grad_fn, steps=10)
    got, _ = _trajectory(gradtx.packed(tx), PARAMS, grad_fn, steps=10)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(_f32(x), _f32(y), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"packed: scale_by_trust_ratio .*elementwise"):
        gradtx.packed(gradtx.lamb(0.1))
    with pytest.raises(TypeError, match="packed: `params` holds a packed tree"):
        gradtx.packed(gradtx.sgd(0.1)).init({"x": pack(PARAMS)})
    with pytest.raises(TypeError, match="packed: `inner` must be a gradient"):
        gradtx.packed(gradtx.sgd)
    with pytest.raises(ValueError, match="min_leaf_size"):
        gradtx.packed(gradtx.sgd(0.1), min_leaf_size=0)
