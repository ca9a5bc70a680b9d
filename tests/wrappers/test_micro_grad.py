"""micro_vmap, micro_grad and reshape_batch_axis (gradtx.microbatching).

Independently (float64 NumPy): per-example gradients of a least-squares loss,
``g_b = x_b (x_b·w - y_b)``, transformed (clipped to a norm, squared) and
reduced; ``micro_vmap`` against the per-row loop; ``reshape_batch_axis``
against explicit row indices (microbatch ``i`` holds rows ``i, i + n, …``).
Against Optax (``optax.microbatching``): the same outputs for the same calls,
float32, 1e-6 relative (measured: equal, or 1 ulp where MEAN sums microbatches).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx import microbatching as gm

OM = optax.microbatching
RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3))
Y = RNG.normal(size=8)
W = RNG.normal(size=3)
X32, Y32, W32 = (jnp.asarray(a, jnp.float32) for a in (X, Y, W))


def close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(
        a, b, rtol=rtol, atol=rtol * max(np.max(np.abs(b)), 1e-30)
    )


def trees_close(a, b, rtol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        close(u, v, rtol)


def loss(w, x, y):  # a batch loss: fun sees each example with a batch axis of 1
    return 0.5 * jnp.mean((x @ w - y) ** 2)


def clip_to_one(g):
    return g / jnp.maximum(1.0, jnp.linalg.norm(g))


@pytest.mark.parametrize("size", [None, 1, 2, 4, 8])
@pytest.mark.parametrize("kind", ["SUM", "MEAN"])
def test_micro_grad_matches_numpy_per_example_gradients(size, kind):
    per = X * (X @ W - Y)[:, None]  # per-example gradients, float64
    clipped = per / np.maximum(1.0, np.linalg.norm(per, axis=1))[:, None]
    reduce = np.sum if kind == "SUM" else np.mean
    fn = gm.micro_grad(
        loss,
        batch_argnums=(1, 2),
        microbatch_size=size,
        accumulator=getattr(gm.AccumulationType, kind),
        transform_fn=lambda g: (clip_to_one(g), g**2),
        metrics_fn=jnp.linalg.norm,
    )
    (g, g2), out = fn(W32, X32, Y32)
    close(g, reduce(clipped, axis=0), 1e-5)
    close(g2, reduce(per**2, axis=0), 1e-5)
    close(out.values, 0.5 * (X @ W - Y) ** 2, 1e-5)
    close(out.metrics, np.linalg.norm(per, axis=1), 1e-5)
    assert out.aux is None
    assert out._fields == ("values", "metrics", "aux")


@pytest.mark.parametrize("size", [None, 2, 4])
@pytest.mark.parametrize("keep_batch_dim", [True, False])
@pytest.mark.parametrize("has_aux", [False, True])
def test_micro_grad_same_as_optax(size, keep_batch_dim, has_aux):
    def fun(w, x, y):
        value = loss(w, x, y) if keep_batch_dim else 0.5 * (x @ w - y) ** 2
        return (value, jnp.sum(x)) if has_aux else value

    kw = dict(
        has_aux=has_aux,
        batch_argnums=(1, 2),
        keep_batch_dim=keep_batch_dim,
        microbatch_size=size,
        transform_fn=lambda g: (g, g**2),
        metrics_fn=jnp.linalg.norm,
    )
    for kind in ("SUM", "MEAN"):
        ours = gm.micro_grad(fun, accumulator=getattr(gm.AccumulationType, kind), **kw)
        theirs = OM.micro_grad(
            fun, accumulator=getattr(OM.AccumulationType, kind), **kw
        )
        a, b = ours(W32, X32, Y32), theirs(W32, X32, Y32)
        trees_close(a[0], b[0], 1e-6)
        trees_close(tuple(a[1]), tuple(b[1]), 1e-6)


def f2(x, y):
    return jnp.sum(x**2) * y, jnp.sin(x)


@pytest.mark.parametrize("size", [None, 2, 4])
@pytest.mark.parametrize("kind", ["CONCAT", "SUM", "MEAN"])
def test_micro_vmap_matches_numpy_and_optax(size, kind):
    rows = [(np.sum(X[b] ** 2) * Y[b], np.sin(X[b])) for b in range(8)]
    stacked = tuple(np.stack(r) for r in zip(*rows, strict=True))
    want = {
        "CONCAT": stacked,
        "SUM": tuple(s.sum(0) for s in stacked),
        "MEAN": tuple(s.mean(0) for s in stacked),
    }[kind]
    ours = gm.micro_vmap(
        f2, (0, 0), microbatch_size=size, accumulator=getattr(gm.AccumulationType, kind)
    )(X32, Y32)
    trees_close(ours, want, 1e-5)
    theirs = OM.micro_vmap(
        f2, (0, 0), microbatch_size=size, accumulator=getattr(OM.AccumulationType, kind)
    )(X32, Y32)
    trees_close(ours, theirs, 1e-6)


def test_micro_vmap_unmapped_argument_kwargs_and_per_output_accumulator():
    fn = lambda x, w, *, y: (x @ w + y, x @ w)
    acc = (gm.AccumulationType.CONCAT, gm.AccumulationType.SUM)
    ours = gm.micro_vmap(fn, (0, None), microbatch_size=2, accumulator=acc)(
        X32, W32, y=Y32
    )
    trees_close(ours, ((X @ W + Y), np.sum(X @ W)), 1e-5)
    oacc = (OM.AccumulationType.CONCAT, OM.AccumulationType.SUM)
    theirs = OM.micro_vmap(fn, (0, None), microbatch_size=2, accumulator=oacc)(
        X32, W32, y=Y32
    )
    trees_close(ours, theirs, 1e-6)


def test_micro_vmap_under_jit_with_traced_num_real_microbatches():
    def run(n):
        return gm.micro_vmap(
            lambda x: x**2,
            microbatch_size=2,
            accumulator=gm.AccumulationType.SUM,
            num_real_microbatches=n,
        )(X32[:, 0])

    # microbatch i holds rows i, i + 4: the first two microbatches are rows 0, 1, 4, 5
    close(jax.jit(run)(2), np.sum(X[[0, 1, 4, 5], 0] ** 2), 1e-5)


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_reshape_batch_axis_rows_and_optax(axis):
    x = RNG.normal(size=(5, 12, 2)) if axis else RNG.normal(size=(12, 5, 2))
    x = x.astype(np.float32)
    ax = axis % 3
    ours = gm.reshape_batch_axis({"x": x}, 4, axis)["x"]
    n = 3
    want = np.stack(
        [np.take(x, np.arange(i, 12, n), axis=ax) for i in range(n)], axis=ax
    )  # want[..., i, j, ...] = row i + j·n
    assert ours.shape == want.shape
    np.testing.assert_array_equal(ours, want)
    np.testing.assert_array_equal(ours, OM.reshape_batch_axis({"x": x}, 4, ax)["x"])


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="microbatch_size"):
        gm.reshape_batch_axis(jnp.ones(6), 4)
    with pytest.raises(NotImplementedError, match="out_axes"):
        gm.micro_vmap(lambda x: x, out_axes=1)
    with pytest.raises(ValueError, match="in_axes"):
        gm.micro_vmap(lambda x, y: x, (0,))(X32, Y32)
    with pytest.raises(ValueError, match="batch_argnums"):
        gm.micro_grad(loss, batch_argnums=())
    with pytest.raises(ValueError, match="batch_argnums"):
        gm.micro_grad(loss, batch_argnums=5)(W32, X32, Y32)
