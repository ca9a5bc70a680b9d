"""Tree utilities: against Optax's and against plain NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx

TREE = {"a": jnp.arange(6.0).reshape(2, 3) - 2.5, "b": [jnp.array(-3.0), None]}
OTHER = {"a": jnp.ones((2, 3)) * 0.5, "b": [jnp.array(2.0), None]}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_global_norm():
    expected = np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(TREE)))
    np.testing.assert_allclose(gradtx.global_norm(TREE), expected, rtol=1e-7)
    np.testing.assert_allclose(gradtx.global_norm(TREE), optax.global_norm(TREE))
    assert float(gradtx.global_norm({})) == 0.0
    # bfloat16 leaves are summed in float32: no overflow at 300² * 1e4.
    big = jnp.full((10_000,), 300.0, jnp.bfloat16)
    np.testing.assert_allclose(gradtx.global_norm(big), 30_000.0, rtol=1e-3)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_moments_match_optax(order):
    for ours, theirs in [
        (gradtx.update_moment, optax.tree.update_moment),
        (gradtx.update_moment_per_elem_norm, optax.tree.update_moment_per_elem_norm),
    ]:
        a = ours(TREE, OTHER, 0.9, order)
        b = theirs(TREE, OTHER, 0.9, order)
        if ours is gradtx.update_moment_per_elem_norm and order % 2:
            # For odd orders Optax averages the signed g**order of real inputs;
            # the moment of the element-wise norm |g| is what the name promises.
            b = theirs(jax.tree.map(jnp.abs, TREE), OTHER, 0.9, order)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6)
    a = gradtx.update_infinity_moment(TREE, OTHER, 0.9, 1e-3)
    b = optax.tree.update_infinity_moment(TREE, OTHER, 0.9, 1e-3)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-7)


def test_bias_correction_and_safe_increment():
    count = jnp.int32(3)
    a = gradtx.bias_correction(OTHER, 0.9, count)
    np.testing.assert_allclose(a["a"], 0.5 / (1 - 0.9**3), rtol=1e-6)
    bf = gradtx.bias_correction(jnp.ones(2, jnp.bfloat16), 0.999, jnp.int32(1))
    assert bf.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(bf)))
    top = jnp.iinfo(jnp.int32).max
    assert int(gradtx.safe_increment(jnp.int32(top))) == top
    assert int(gradtx.safe_increment(jnp.int32(41))) == 42
    assert float(gradtx.safe_increment(jnp.float32(1.5))) == 2.5
    with pytest.raises(ValueError, match="count"):
        gradtx.safe_increment(jnp.array(True))


def test_zeros_full_cast():
    z = gradtx.tree_zeros_like(TREE, jnp.bfloat16)
    assert z["a"].dtype == jnp.bfloat16 and z["b"][1] is None
    f = gradtx.tree_full_like(TREE, 0.25)
    np.testing.assert_array_equal(f["a"], np.full((2, 3), 0.25))
    c = gradtx.tree_cast(TREE, jnp.float16)
    assert c["b"][0].dtype == jnp.float16
    assert gradtx.tree_cast(TREE, None) is TREE
    like = gradtx.tree_cast_like(c, TREE)
    assert like["a"].dtype == jnp.float32
    np.testing.assert_allclose(
        gradtx.tree_sum_of_squares(TREE), 6.25 * 2 + 2.25 * 2 + 0.25 * 2 + 9.0
    )


def test_moment_shape_mismatch_names_leaf():
    with pytest.raises(ValueError, match=r"\['a'\]"):
        gradtx.update_moment(
            TREE, {"a": jnp.ones(6), "b": [jnp.array(0.0), None]}, 0.9, 1
        )


@pytest.mark.parametrize("mean", [False, True])
def test_leaf_norms_one_overflow_test_for_the_tree(mean):
    from gradtx._core import maths as _maths
    from gradtx._core.lifting import leaf_norms

    k = jax.random.split(jax.random.key(1), 4)
    leaves = [
        jax.random.normal(k[0], (7,)),
        jax.random.normal(k[1], (300, 300)),  # large: reduced on its own
        jnp.full((5,), 3e19),  # its squares overflow float32
        jax.random.normal(k[2], (3, 4)).astype(jnp.bfloat16),
        jnp.zeros((0,)),
        jnp.arange(3),  # not a float: 0, left to the caller's dtype check
        (jax.random.normal(k[3], (6,)) * (1 + 1j)).astype(jnp.complex64),
    ]
    got = jax.jit(lambda xs: leaf_norms(xs, mean=mean))(leaves)
    for x, norm in zip(leaves, got, strict=True):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            assert float(norm) == 0.0
            continue
        x64 = np.asarray(
            x.astype(jnp.complex64 if x.dtype == jnp.complex64 else jnp.float32),
            np.complex128,
        )
        sq = np.abs(x64) ** 2
        want = np.sqrt(sq.mean() if mean and x.size else sq.sum())
        if x.size == 0 and mean:
            assert np.isnan(norm)
            continue
        np.testing.assert_allclose(float(norm), want, rtol=2e-6)
        if x.dtype != jnp.bfloat16 and x.size:  # the same value as l2_norm's
            one = jax.jit(lambda x: _maths.l2_norm(x, mean=mean))(x)
            assert float(norm) == float(one)
    # without overflow every value is l2_norm's, bit for bit
    calm = leaves[:2]
    for x, norm in zip(calm, jax.jit(leaf_norms)(calm), strict=True):
        assert float(norm) == float(jax.jit(_maths.l2_norm)(x))
