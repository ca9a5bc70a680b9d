"""microbatch: Optax, full-batch equivalence, jit, custom accumulators, bad input.

Against Optax: the same microbatches (rows ``i, i + n, …``) summed in the same
order, so float32 results agree to 1e-6 relative (measured: bit-identical).
Independently: the microbatched gradient of a summed loss equals the
full-batch gradient (float32 sums in another order: 1e-5 relative), and
CONCAT of a per-example function equals the function on the whole batch.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.wrappers.microbatch import AccumulationType, Accumulator, microbatch

OA = optax.microbatching.AccumulationType
RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3)).astype(np.float32)
Y = RNG.normal(size=(12,)).astype(np.float32)
W = np.array([0.5, -1.0, 2.0], np.float32)


def sq_loss(w, x, y):
    return jnp.sum((x @ w - y) ** 2)


def _close(a, b, rtol=1e-6):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b), initial=0) <= rtol * max(np.max(np.abs(b)), 1e-30)


def test_signature_and_enum_match_optax():
    ours = inspect.signature(microbatch).parameters
    theirs = inspect.signature(optax.microbatch).parameters
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].kind == theirs[k].kind, k
    assert ours["accumulator"].default.name == theirs["accumulator"].default.name
    for k in ("argnames", "in_axes", "num_real_microbatches"):
        assert ours[k].default == theirs[k].default
    assert [m.name for m in AccumulationType] == [m.name for m in OA]
    fields = [f.name for f in __import__("dataclasses").fields(Accumulator)]
    assert fields == ["init", "update", "finalize", "aggregate"]


@pytest.mark.parametrize("kind", ["SUM", "MEAN", "RUNNING_MEAN"])
@pytest.mark.parametrize("size", [1, 3, 12])
def test_gradients_match_optax_and_full_batch(kind, size):
    g = jax.grad(sq_loss)
    ours = microbatch(g, (1, 2), size, AccumulationType[kind])(W, X, Y)
    theirs = optax.microbatch(g, (1, 2), size, OA[kind])(W, X, Y)
    _close(ours, theirs)
    full = g(W, X, Y) / (1 if kind == "SUM" else 12 // size)
    _close(ours, full, rtol=1e-5)


def test_concat_prefix_trees_argnames_and_in_axes():
    fun = lambda x, *, y: ({"double": x * 2, "rows": y + 1}, jnp.sum(x, axis=1))
    acc = (AccumulationType.CONCAT, AccumulationType.MEAN)
    ours = microbatch(fun, 0, 4, acc, argnames="y", in_axes=(1, 0))(X.T, y=Y)
    theirs = optax.microbatch(fun, 0, 4, (OA.CONCAT, OA.MEAN), argnames="y",
                              in_axes=(1, 0))(X.T, y=Y)  # fmt: skip
    jax.tree.map(_close, ours, theirs)
    # CONCAT restores the batch order: equal to the function on the full batch
    full = fun(X.T, y=Y)
    _close(ours[0]["rows"], full[0]["rows"])
    _close(ours[1], full[1] / 3, rtol=1e-5)  # MEAN over 3 microbatches
    per_example = microbatch(lambda x: x**2, 0, 3, AccumulationType.CONCAT)(X)
    np.testing.assert_array_equal(per_example, X**2)
    # negative in_axes count from the end (Optax mis-reshapes them)
    _close(microbatch(lambda x: jnp.sum(x), 0, 4, in_axes=-1)(X.T), np.sum(X))


def test_num_real_microbatches_concrete_and_traced():
    g = jax.grad(sq_loss)
    for kind in ("SUM", "MEAN", "RUNNING_MEAN"):
        ours = microbatch(g, (1, 2), 3, AccumulationType[kind], num_real_microbatches=2)
        theirs = optax.microbatch(g, (1, 2), 3, OA[kind], num_real_microbatches=2)
        _close(ours(W, X, Y), theirs(W, X, Y))
    # microbatches 0 and 1 hold rows {0, 4, 8} and {1, 5, 9}
    rows = np.array([0, 4, 8, 1, 5, 9])
    ref = jax.grad(sq_loss)(W, X[rows], Y[rows]) / 2
    run = jax.jit(
        lambda n: microbatch(
            g, (1, 2), 3, AccumulationType.RUNNING_MEAN, num_real_microbatches=n
        )(W, X, Y)
    )
    _close(run(2), ref, rtol=1e-5)
    _close(run(99), microbatch(g, (1, 2), 3, AccumulationType.MEAN)(W, X, Y))  # clamped


def test_jit_and_custom_accumulator():
    g = jax.grad(sq_loss)
    jitted = jax.jit(microbatch(g, (1, 2), 4, AccumulationType.MEAN))
    _close(jitted(W, X, Y), microbatch(g, (1, 2), 4, AccumulationType.MEAN)(W, X, Y))
    biggest = Accumulator(
        init=lambda s: jnp.full(s.shape, -jnp.inf, s.dtype),
        update=lambda c, v, i: jnp.maximum(c, v),
        finalize=lambda c: c,
        aggregate=lambda v: jnp.max(v, axis=0),
    )
    out = microbatch(lambda x: jnp.max(x, axis=0), 0, 2, biggest)(X)
    np.testing.assert_array_equal(out, X.max(axis=0))
    # Optax's AccumulationType values are accepted too (matched by name)
    out = microbatch(lambda x: jnp.sum(x), 0, 6, OA.SUM)(X)
    assert float(out) == pytest.approx(float(np.sum(X)), rel=1e-6)


def test_low_precision_outputs_are_summed_in_float32():
    xb = jnp.asarray(np.abs(X), jnp.bfloat16)
    fun = lambda x: jnp.sum(x.astype(jnp.float32), axis=0).astype(jnp.bfloat16)
    out = microbatch(fun, 0, 1, AccumulationType.SUM)(xb)
    assert out.dtype == jnp.bfloat16
    exact = np.sum(np.asarray(xb, np.float64), axis=0)
    np.testing.assert_allclose(np.asarray(out, np.float64), exact, rtol=8e-3)
    mean = microbatch(fun, 0, 1, AccumulationType.RUNNING_MEAN)(xb)
    assert mean.dtype == jnp.bfloat16
    assert microbatch(lambda x: x + 1, 0, 2, AccumulationType.CONCAT)(xb).dtype == (
        jnp.bfloat16
    )


def test_none_size_returns_fun_and_int_sums():
    f = lambda x: x
    assert microbatch(f, 0, None) is f
    out = microbatch(lambda x: jnp.sum(x), 0, 2)(jnp.arange(6))
    assert int(out) == 15 and jnp.issubdtype(out.dtype, jnp.integer)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(microbatch_size=0), "microbatch_size"),
        (dict(microbatch_size=-2), "microbatch_size"),
        (dict(microbatch_size=2.5), "microbatch_size"),
        (dict(in_axes=(0, 0)), "in_axes"),
        (dict(num_real_microbatches=-1), "num_real_microbatches"),
    ],
)
def test_bad_construction(kw, match):
    args = dict(fun=jnp.sum, argnums=0, microbatch_size=2) | kw
    with pytest.raises((ValueError, TypeError), match=match):
        microbatch(**args)


@pytest.mark.parametrize(
    "build,call,match",
    [
        (dict(microbatch_size=5), ((X,), {}), "microbatch_size"),
        (dict(argnums=(0, 1)), ((X, Y[:6]), {}), "batch size"),
        (dict(argnums=3), ((X,), {}), "argnums"),
        (dict(argnames="y"), ((X,), {}), "argnames"),
        (dict(in_axes=2), ((X,), {}), "in_axes"),
        (dict(num_real_microbatches=7), ((X,), {}), "num_real_microbatches"),
        (dict(accumulator=AccumulationType.MEAN), ((np.arange(12),), {}),
         "accumulator"),
        (dict(accumulator="sum"), ((X,), {}), "accumulator"),
        (dict(accumulator=(AccumulationType.SUM,) * 3), ((X,), {}), "accumulator"),
    ],
)  # fmt: skip
def test_bad_calls(build, call, match):
    fun = lambda *a, **k: jnp.sum(a[0])
    if isinstance(build.get("accumulator"), tuple):
        fun = lambda x: (jnp.sum(x), jnp.max(x))
    args = dict(fun=fun, argnums=0, microbatch_size=2) | build
    with pytest.raises(ValueError, match=match):
        microbatch(**args)(*call[0], **call[1])
