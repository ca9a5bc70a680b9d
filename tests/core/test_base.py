"""The protocol: base transformations, apply_updates, chains, masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx


def test_apply_updates_casts_to_param_dtype_and_keeps_none():
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": None, "c": jnp.ones(3)}
    updates = {"a": jnp.full(2, 0.5, jnp.float32), "b": None, "c": jnp.ones(3)}
    new = gradtx.apply_updates(params, updates)
    assert new["a"].dtype == jnp.bfloat16
    assert new["b"] is None
    np.testing.assert_allclose(new["a"].astype(np.float32), [1.5, 1.5])
    np.testing.assert_allclose(new["c"], [2.0, 2.0, 2.0])


def test_identity_and_set_to_zero():
    u = {"x": jnp.arange(3.0)}
    tx = gradtx.identity()
    out, state = tx.update(u, tx.init(u))
    assert out is u and state == gradtx.EmptyState()
    z, _ = gradtx.set_to_zero().update(u, gradtx.EmptyState())
    np.testing.assert_array_equal(z["x"], np.zeros(3))
    assert z["x"].dtype == u["x"].dtype


def test_stateless_and_tree_map_variants():
    u = {"x": jnp.array([1.0, -2.0])}
    p = {"x": jnp.array([10.0, 20.0])}
    tx = gradtx.stateless(lambda u, p: jax.tree.map(lambda a, b: a + b, u, p))
    np.testing.assert_allclose(tx.update(u, tx.init(p), p)[0]["x"], [11.0, 18.0])
    tx = gradtx.stateless_with_tree_map(lambda g, p: g * 2 if p is None else g + p)
    np.testing.assert_allclose(tx.update(u, tx.init(p))[0]["x"], [2.0, -4.0])
    np.testing.assert_allclose(tx.update(u, tx.init(p), p)[0]["x"], [11.0, 18.0])


def test_extra_args_reach_every_member_and_are_ignored_by_others():
    seen = {}

    def init(params):
        return gradtx.EmptyState()

    def update(updates, state, params=None, *, loss=None, **extra):
        seen["loss"] = loss
        return updates, state

    three_arg = optax.GradientTransformation(init, lambda u, s, p=None: (u, s))
    tx = gradtx.chain(
        gradtx.adam(1e-3),
        gradtx.GradientTransformation(init, update),
        three_arg,
    )
    p = jnp.ones(2)
    u, _ = tx.update(p, tx.init(p), p, loss=jnp.float32(3.0))
    assert float(seen["loss"]) == 3.0
    assert u.shape == (2,)


def test_chain_state_layout_and_optax_interop():
    p = {"w": jnp.ones((2, 2))}
    tx = gradtx.chain(gradtx.clip(1.0), gradtx.scale_by_adam(), gradtx.scale(-0.1))
    state = tx.init(p)
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[1], gradtx.ScaleByAdamState)
    # An Optax transformation inside a gradtx chain, and the reverse.
    mixed = gradtx.chain(optax.scale_by_adam(), gradtx.scale(-0.1))
    mixed2 = optax.chain(gradtx.scale_by_adam(), optax.scale(-0.1))
    g = {"w": jnp.full((2, 2), 0.3)}
    a = tx.update(g, state, p)[0]
    b = mixed.update(g, mixed.init(p), p)[0]
    c = mixed2.update(g, mixed2.init(p), p)[0]
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-7)
    np.testing.assert_allclose(a["w"], c["w"], rtol=1e-7)


def test_chain_rejects_wrong_state_and_non_transforms():
    tx = gradtx.chain(gradtx.scale(1.0), gradtx.scale(2.0))
    with pytest.raises(ValueError, match="2 states"):
        tx.update(jnp.ones(1), (gradtx.EmptyState(),))
    with pytest.raises(TypeError, match="argument 1 is not a gradient"):
        gradtx.chain(gradtx.scale(1.0), gradtx.scale)


def test_named_chain():
    tx = gradtx.named_chain(
        ("clip", gradtx.clip(0.5)), ("adam", gradtx.scale_by_adam())
    )
    p = jnp.ones(3)
    state = tx.init(p)
    assert list(state) == ["clip", "adam"]
    u, state = tx.update(jnp.full(3, 2.0), state, p)
    ref = gradtx.chain(gradtx.clip(0.5), gradtx.scale_by_adam())
    np.testing.assert_allclose(u, ref.update(jnp.full(3, 2.0), ref.init(p))[0])
    with pytest.raises(ValueError, match="unique"):
        gradtx.named_chain(("a", gradtx.identity()), ("a", gradtx.identity()))
    with pytest.raises(TypeError, match="argument 0"):
        gradtx.named_chain(gradtx.identity())


def test_masked_applies_inner_only_where_true_and_accepts_prefix_masks():
    p = {"w": jnp.ones((2, 2)), "bias": {"b1": jnp.ones(2), "b2": jnp.ones(1)}}
    g = jax.tree.map(lambda x: jnp.full_like(x, 2.0), p)
    tx = gradtx.masked(gradtx.scale(10.0), {"w": True, "bias": False})
    u, state = tx.update(g, tx.init(p), p)
    np.testing.assert_allclose(u["w"], 20.0)
    np.testing.assert_allclose(u["bias"]["b1"], 2.0)
    # Callable mask; the inner state holds nothing for masked-out leaves.
    tx = gradtx.masked(
        gradtx.scale_by_adam(), lambda t: jax.tree.map(lambda x: x.ndim > 1, t)
    )
    state = tx.init(p)
    assert len(jax.tree.leaves(state.inner_state.mu)) == 1
    u, _ = tx.update(g, state, p)
    np.testing.assert_allclose(u["bias"]["b2"], 2.0)
    # Nested masks compose.
    inner = gradtx.masked(
        gradtx.scale(3.0), {"w": True, "bias": {"b1": True, "b2": False}}
    )
    outer = gradtx.masked(inner, {"w": False, "bias": True})
    u, _ = outer.update(g, outer.init(p), p)
    np.testing.assert_allclose(u["w"], 2.0)
    np.testing.assert_allclose(u["bias"]["b1"], 6.0)
    np.testing.assert_allclose(u["bias"]["b2"], 2.0)


def test_masked_errors_name_the_problem():
    p = {"w": jnp.ones(2), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="mask's tree structure"):
        gradtx.masked(gradtx.scale(1.0), {"w": True}).init(p)
    with pytest.raises(TypeError, match="Python bools"):
        gradtx.masked(gradtx.scale(1.0), {"w": 1, "b": 0}).init(p)


def test_weight_decay_mask_matches_optax():
    p = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.1), p)
    mask = {"w": True, "b": False}
    ours = gradtx.adamw(0.1, weight_decay=0.5, mask=mask)
    theirs = optax.adamw(0.1, weight_decay=0.5, mask=mask)
    a = ours.update(g, ours.init(p), p)[0]
    b = theirs.update(g, theirs.init(p), p)[0]
    for k in p:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-7)


def test_scheduled_weight_decay_and_learning_rate_count_steps():
    sched = gradtx.linear_schedule(1.0, 0.0, 10)
    ours = gradtx.adamw(sched, weight_decay=sched)
    theirs = optax.adamw(sched, weight_decay=sched)
    p = jnp.linspace(-1.0, 1.0, 5)
    so, st = ours.init(p), theirs.init(p)
    po = pt = p
    for _ in range(12):
        uo, so = ours.update(jnp.cos(po), so, po)
        ut, st = theirs.update(jnp.cos(pt), st, pt)
        po, pt = gradtx.apply_updates(po, uo), optax.apply_updates(pt, ut)
    np.testing.assert_allclose(po, pt, rtol=1e-6)


def test_params_required_where_needed():
    tx = gradtx.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match=r"add_decayed_weights.*params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "lion", "adafactor"])
def test_float16_updates_keep_dtype_and_stay_finite(name):
    params = {"w": jnp.full((4, 3), 0.5, jnp.float16), "b": jnp.ones(3, jnp.float16)}
    opt = getattr(gradtx, name)(1e-3)
    state = opt.init(params)
    grads = jax.tree.map(lambda x: jnp.full_like(x, 300.0), params)  # 300² > f16 max
    updates, new_state = jax.jit(opt.update)(grads, state, params)
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.float16 and bool(jnp.all(jnp.isfinite(u)))
    same = lambda t: [(x.shape, x.dtype) for x in jax.tree.leaves(t)]
    assert same(state) == same(new_state)
