"""safe_norm, safe_root_mean_squares, safe_int32_increment and scale_gradient.

Values and gradients against Optax and NumPy; the floor's gradient is 0 (not
NaN) at x = 0; bad floors raise; low-precision inputs keep their dtype.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._core import maths as _maths
from gradtx._core.numerics import (
    safe_int32_increment,
    safe_norm,
    safe_root_mean_squares,
)
from gradtx.transforms.scaling import scale_gradient

X = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)

NORM_CASES = [
    dict(),
    dict(ord=1),
    dict(ord=np.inf),
    dict(axis=1),
    dict(axis=0, keepdims=True),
    dict(ord="fro", axis=(0, 1)),
    dict(ord=2, axis=1, keepdims=True),
]


@pytest.mark.parametrize("kw", NORM_CASES, ids=str)
def test_safe_norm_matches_optax_and_numpy(kw):
    for min_norm in (0.0, 1.0, 100.0):
        x = jnp.asarray(X)
        ours, theirs = safe_norm(x, min_norm, **kw), optax.safe_norm(x, min_norm, **kw)
        ref = np.maximum(np.linalg.norm(X.astype(np.float64), **kw), min_norm)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        np.testing.assert_allclose(ours, ref, rtol=1e-6)
        assert ours.shape == theirs.shape


def test_safe_norm_gradient_is_zero_not_nan_at_zero():
    z = jnp.zeros((2, 3))
    for kw in (dict(), dict(axis=1), dict(axis=1, keepdims=True)):
        d = jax.grad(lambda x: jnp.sum(safe_norm(x, 1e-3, **kw)))(z)
        np.testing.assert_array_equal(d, np.zeros((2, 3)))
        assert bool(jnp.all(jnp.isnan(jax.grad(lambda x: jnp.linalg.norm(x))(z))))
    x = jnp.asarray(X)
    np.testing.assert_allclose(
        jax.grad(lambda x: safe_norm(x, 0.1))(x),
        jax.grad(lambda x: optax.safe_norm(x, 0.1))(x),
        rtol=1e-6,
    )


def test_safe_root_mean_squares_matches_optax_and_has_a_finite_gradient():
    x = jnp.asarray(X)
    for m in (0.0, 0.5, 10.0):
        np.testing.assert_allclose(
            safe_root_mean_squares(x, m), optax.safe_root_mean_squares(x, m), rtol=1e-6
        )
        ref = max(np.sqrt(np.mean(X.astype(np.float64) ** 2)), m)
        np.testing.assert_allclose(safe_root_mean_squares(x, m), ref, rtol=1e-6)
    d = jax.grad(lambda x: safe_root_mean_squares(x, 1e-3))(jnp.zeros(4))
    np.testing.assert_array_equal(d, np.zeros(4))
    c = jnp.array([3 + 4j, 0j], jnp.complex64)
    assert float(safe_root_mean_squares(c, 0.0)) == pytest.approx(np.sqrt(12.5))


def test_low_precision_is_reduced_in_float32_and_cast_back():
    big = jnp.full((1000,), 300.0, jnp.bfloat16)  # Σx² overflows nothing in f32
    n = safe_norm(big, 0.0)
    assert n.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(n), 300.0 * np.sqrt(1000), rtol=1e-2)
    assert safe_root_mean_squares(big.astype(jnp.float16), 0.0).dtype == jnp.float16


@pytest.mark.parametrize(
    "fn,arg", [(safe_norm, "min_norm"), (safe_root_mean_squares, "min_rms")]
)
def test_a_bad_floor_raises_naming_it(fn, arg):
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=arg):
            fn(jnp.ones(3), bad)


def test_floors_may_be_traced_or_arrays():
    f = jax.jit(lambda x, m: safe_norm(x, m, axis=1))
    np.testing.assert_allclose(f(X, 1.0), optax.safe_norm(X, 1.0, axis=1), rtol=1e-6)
    m = jnp.array([[0.0], [10.0], [0.0]])  # one floor per row
    np.testing.assert_allclose(
        safe_norm(X, m, axis=1, keepdims=True),
        optax.safe_norm(X, m, axis=1, keepdims=True),
        rtol=1e-6,
    )


def test_safe_int32_increment_is_safe_increment():
    assert safe_int32_increment is _maths.safe_increment
    top = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
    assert int(safe_int32_increment(top)) == int(top)
    assert int(safe_int32_increment(jnp.asarray(4, jnp.int32))) == 5


@pytest.mark.parametrize("dtype", ["bool", "complex64"])
def test_safe_increment_rejects_other_dtypes_with_value_error_like_optax(dtype):
    count = jnp.asarray(1, dtype=dtype)
    with pytest.raises(ValueError):
        optax.safe_increment(count)
    with pytest.raises(ValueError, match=f"count.*{dtype}"):
        _maths.safe_increment(count)
    with pytest.raises(ValueError, match="count"):
        jax.jit(safe_int32_increment)(count)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint32", "float16"])
def test_safe_increment_saturates_like_optax(dtype):
    info = jnp.iinfo if jnp.issubdtype(dtype, jnp.integer) else jnp.finfo
    for start in (3, info(dtype).max):
        count = jnp.asarray(start, dtype)
        ours = jax.jit(_maths.safe_increment)(count)
        assert ours.dtype == count.dtype
        np.testing.assert_array_equal(ours, optax.safe_increment(count))


@pytest.mark.parametrize(
    "name", ["safe_norm", "safe_root_mean_squares", "safe_int32_increment"]
)
def test_signatures_match_optax(name):
    ours = {
        "safe_norm": safe_norm,
        "safe_root_mean_squares": safe_root_mean_squares,
        "safe_int32_increment": safe_int32_increment,
    }[name]
    a = inspect.signature(ours).parameters
    b = inspect.signature(getattr(optax, name)).parameters
    assert [(k, p.default, p.kind) for k, p in a.items()] == [
        (k, p.default, p.kind) for k, p in b.items()
    ]


# ------------------------------------------------------------- scale_gradient


def _loss(sg, scale):
    return lambda p: jnp.sum(sg({"a": p["a"] ** 2, "b": p["b"]}, scale)["a"] * p["b"])


@pytest.mark.parametrize("scale", [1.0, 0.0, 0.5, -1.0, 3.0])
def test_scale_gradient_matches_optax(scale):
    p = {"a": jnp.arange(3.0), "b": jnp.full(3, 2.0)}
    ours = jax.grad(_loss(scale_gradient, scale))(p)
    theirs = jax.grad(_loss(optax.scale_gradient, scale))(p)
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    np.testing.assert_allclose(ours["a"], scale * 2 * 2.0 * np.arange(3.0))
    assert scale_gradient(p, scale) is p or scale != 1.0


def test_scale_gradient_takes_a_traced_scale_and_keeps_the_dtype():
    p = jnp.arange(3.0, dtype=jnp.bfloat16)
    g = jax.jit(lambda s: jax.grad(lambda x: jnp.sum(scale_gradient(x, s) ** 2))(p))
    out = g(jnp.float32(0.5))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), [0.0, 1.0, 2.0])


def test_scale_gradient_rejects_nan():
    with pytest.raises(ValueError, match="scale"):
        scale_gradient(jnp.ones(2), float("nan"))
