"""Property-based tests over random shapes, values and masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradtx

# XLA:CPU flushes subnormals to zero: keep inputs normal.
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False, width=32)
arrays = hnp.arrays(
    np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), elements=finite
)
trees = st.lists(arrays, min_size=1, max_size=4)
SETTINGS = settings(max_examples=12, deadline=None)


@SETTINGS
@given(trees, st.floats(1e-3, 1e3))
def test_clip_by_global_norm_bounds_the_norm_and_keeps_direction(leaves, max_norm):
    tx = gradtx.clip_by_global_norm(max_norm)
    out, _ = tx.update(leaves, tx.init(leaves))
    norm_in = float(gradtx.global_norm(leaves))
    norm_out = float(gradtx.global_norm(out))
    assert norm_out <= max_norm * (1 + 1e-5) or norm_out == norm_in
    factor = min(1.0, max_norm / norm_in) if norm_in > 0 else 1.0
    for a, b in zip(out, leaves, strict=True):
        np.testing.assert_allclose(a, b * factor, rtol=1e-5, atol=1e-6 * max_norm)


@SETTINGS
@given(trees, st.one_of(st.just(0.0), st.floats(1e-30, 10.0)))
def test_clip_bounds_every_element(leaves, max_delta):
    out, _ = gradtx.clip(max_delta).update(leaves, gradtx.EmptyState())
    for a, b in zip(out, leaves, strict=True):
        assert np.all(np.abs(a) <= np.float32(max_delta))
        np.testing.assert_array_equal(a, np.clip(b, -np.float32(max_delta), max_delta))


@SETTINGS
@given(trees, st.data())
def test_masked_equals_selective_application(leaves, data):
    mask = data.draw(
        st.lists(st.booleans(), min_size=len(leaves), max_size=len(leaves))
    )
    tx = gradtx.masked(gradtx.scale(-2.0), mask)
    out, _ = tx.update(leaves, tx.init(leaves))
    for a, b, m in zip(out, leaves, mask, strict=True):
        np.testing.assert_array_equal(a, -2.0 * b if m else b)


@SETTINGS
@given(trees, st.floats(1e-4, 1.0))
def test_first_adam_step_is_at_most_the_learning_rate(leaves, lr):
    # At t = 1, m̂ = g and v̂ = g², so |update| = lr·|g|/(|g| + eps) <= lr.
    opt = gradtx.adam(lr)
    out, _ = opt.update(leaves, opt.init(leaves), leaves)
    for a in out:
        assert np.all(np.abs(a) <= lr * (1 + 1e-6))


@SETTINGS
@given(trees)
def test_apply_updates_is_plain_addition_in_param_dtype(leaves):
    params = [x.astype(jnp.bfloat16) for x in map(jnp.asarray, leaves)]
    new = gradtx.apply_updates(params, leaves)
    for p, u, n in zip(params, leaves, new, strict=True):
        assert n.dtype == jnp.bfloat16
        expected = (p.astype(jnp.float32) + u).astype(jnp.bfloat16)
        np.testing.assert_array_equal(
            np.asarray(n, np.float32), np.asarray(expected, np.float32)
        )


@SETTINGS
@given(trees)
def test_state_signature_survives_a_step_for_any_tree(leaves):
    opt = gradtx.adamw(1e-2)
    s0 = opt.init(leaves)
    _, s1 = opt.update(leaves, s0, leaves)
    sig = lambda s: [(x.shape, x.dtype) for x in jax.tree.leaves(s)]
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    assert sig(s0) == sig(s1)
