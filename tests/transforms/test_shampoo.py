"""Shampoo: precondition-opt (the authors' JAX code), NumPy reference, edges.

precondition-opt runs in float32 only (its state is float32; it fails under
x64). Its factor statistics are often ill-conditioned (a 1-D block gains rank
one per step), so a 1-ulp difference in a statistic can move a root by 1e-4;
the comparison therefore uses noisy gradients (fixed draws), whose statistics
are better conditioned, as in training. Agreement: a few 1e-6 typically,
asserted at 5e-5, over 30 steps on O(1) params.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_shampoo as RS
from public_references import distributed_shampoo, jax_tree_aliases

import gradtx
from gradtx.transforms.shampoo import ShampooState
from gradtx.transforms.shampoo_blocks import merge_small_dims, shampoo_layout

STEPS = 30
RNG = np.random.default_rng(0)
SHAPES = {"sq": (4, 4), "rect": (3, 5), "vec": (3,), "big": (6, 5),
          "t3": (2, 3, 4), "s": ()}  # fmt: skip
PARAMS = {k: RNG.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
TARGET = {k: RNG.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
NOISE = [
    {k: 0.3 * RNG.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    for _ in range(STEPS)
]


def _loss(p):
    return sum(
        jnp.sum((p[k] - TARGET[k]) ** 2 * (1 + 0.5 * jnp.abs(TARGET[k]))) for k in p
    )


def _trajectory(tx, dtype=jnp.float32, keys=tuple(SHAPES)):
    cast = lambda t: {k: jnp.asarray(t[k], dtype) for k in keys}
    p, noise = cast(PARAMS), NOISE

    def step(carry, z):
        p, s = carry
        g = jax.tree.map(jnp.add, jax.grad(_loss)(p), z)
        u, s = tx.update(g, s, p)
        p = gradtx.apply_updates(p, u)
        return (p, s), p

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[cast(z) for z in noise])
    _, ps = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), stacked))(p)
    return jax.tree.map(np.asarray, ps)


_REF_NAMES = dict(b1="beta1", b2="beta2", diagonal_eps="diagonal_epsilon",
                  matrix_eps="matrix_epsilon")  # fmt: skip

SMALL = ("sq", "rect", "vec")
CASES = [
    # square, rectangular, 1-D, blocked (6x5 by 4), 3-D and scalar leaves,
    # one factor per dimension; weight decay
    (dict(learning_rate=0.05, block_size=4, weight_decay=0.01,
          merge_small_dims_block_size=1), tuple(SHAPES)),
    # merging on (every leaf a vector, blocked by 4); roots every 3 steps,
    # statistics every 2; preconditioning from step 0; sums (b2 = 1)
    (dict(learning_rate=0.05, block_size=4, graft_type="adagrad", b2=1.0,
          preconditioning_compute_steps=3, statistics_compute_steps=2,
          start_preconditioning_step=0), ("rect", "vec", "big", "t3")),
    (dict(learning_rate=0.05, block_size=2, graft_type="rmsprop",
          exponent_override=2, nesterov=False, merge_small_dims_block_size=1,
          skip_preconditioning_dim_size_gt=4), SMALL),
    (dict(learning_rate=0.01, block_size=3, graft_type="sqrt_n", b1=0.0,
          merge_small_dims_block_size=8, skip_preconditioning_rank_lt=2), ("rect",)),
    (dict(learning_rate=0.005, block_size=4, graft_type="rmsprop_normalized",
          merge_small_dims_block_size=1, start_preconditioning_step=1), SMALL),
]  # fmt: skip
IDS = ["sgd", "adagrad-merged", "rmsprop", "sqrt_n", "rmsprop_norm"]


@pytest.mark.parametrize(("kwargs", "keys"), CASES, ids=IDS)
def test_matches_precondition_opt_distributed_shampoo(kwargs, keys):
    ds = distributed_shampoo()
    kw = dict(kwargs)
    graft = kw.pop("graft_type", "sgd")
    ref_kw = {_REF_NAMES.get(k, k): v for k, v in kw.items()}
    ref_kw["graft_type"] = getattr(ds.GraftingType, graft.upper())
    with jax_tree_aliases(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its float64 casts, truncated to float32
        want = _trajectory(ds.distributed_shampoo(**ref_kw), keys=keys)
    got = _trajectory(gradtx.shampoo(graft_type=graft, **kw), keys=keys)
    for k in keys:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=5e-5, err_msg=k)


def _np_grad(p, k):
    return 2 * (p - TARGET[k]) * (1 + 0.5 * np.abs(TARGET[k].astype(np.float64)))


def test_matches_numpy_reference_float64():
    """The plain configuration (no merging, no blocks; AdaGrad grafting, weight
    decay) against the paper's rule with exact (eigh) roots, in float64."""
    ref = RS.Shampoo(0.05, weight_decay=0.01, graft="adagrad")
    p = [np.asarray(PARAMS[k], np.float64) for k in SHAPES]
    for t in range(STEPS):
        g = [_np_grad(x, k) + NOISE[t][k] for x, k in zip(p, SHAPES, strict=True)]
        p = [a + u for a, u in zip(p, ref.update(g, p), strict=True)]
    with jax.enable_x64(True):
        tx = gradtx.shampoo(0.05, 64, weight_decay=0.01, graft_type="adagrad",
                            merge_small_dims_block_size=1)  # fmt: skip
        got = _trajectory(tx, jnp.float64)
    for k, want in zip(SHAPES, p, strict=True):
        np.testing.assert_allclose(got[k][-1], want, rtol=0, atol=1e-6, err_msg=k)


# --------------------------------------------------------------------------
# Layout, state, edges.


def test_merging_and_blocking_layout():
    assert merge_small_dims((16, 8), 4096) == (128,)
    assert merge_small_dims((16, 8), 1) == (16, 8)
    assert merge_small_dims((3, 1, 5), 1) == (3, 5)
    assert merge_small_dims((1, 1), 4096) == (1,)
    lay = shampoo_layout((6, 5), 4, 1, 1, 4096)
    assert lay.sizes == ((4, 2), (4, 1)) and not lay.merged
    assert shampoo_layout((16, 8), 128, 4096, 1, 4096).shape == (128,)
    assert shampoo_layout((), 4, 1, 1, 4096).skip  # rank 0 < 1
    assert shampoo_layout((0, 3), 4, 1, 0, 4096).skip  # size 0
    assert shampoo_layout((3, 9), 4, 1, 1, 8).skip  # 9 > 8


def test_state_shapes_dtypes_and_placement():
    params = {"w": jnp.ones((6, 5), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
    tx = gradtx.shampoo(0.1, 4, graft_type="adagrad", merge_small_dims_block_size=1)
    state = tx.init(params)[0]
    assert isinstance(state, ShampooState)
    shapes = [s.shape for s in state.stats["w"]]
    assert shapes == [(4, 4), (4, 4), (4, 4), (1, 1), (2, 2), (4, 4), (2, 2), (1, 1)]
    assert [s.shape for s in state.stats["b"]] == [(3, 3)]
    for leaf in jax.tree.leaves((state.stats, state.preconds, state.diag)):
        assert leaf.dtype == jnp.float32  # bf16 params: float32 statistics
    np.testing.assert_array_equal(state.preconds["b"][0], np.eye(3))
    np.testing.assert_allclose(state.stats["b"][0], 1e-6 * np.eye(3))
    assert state.mu["w"].dtype == jnp.bfloat16
    abstract = jax.eval_shape(tx.init, params)
    assert jax.tree.structure(abstract) == jax.tree.structure(tx.init(params))
    u, new = jax.jit(tx.update)(params, tx.init(params), params)
    assert u["w"].dtype == jnp.bfloat16 and np.all(
        np.isfinite(np.asarray(u["w"], float))
    )
    same = lambda a, b: (
        [(x.shape, x.dtype) for x in jax.tree.leaves(a)]
        == [(x.shape, x.dtype) for x in jax.tree.leaves(b)]
    )
    assert same(new, tx.init(params))  # a scan carry


def test_grafting_step_until_start_then_preconditioned():
    """Count 0 (SGD grafting, Nesterov): -η(1 + β1)g; the roots are computed
    from step 0 but used from `start_preconditioning_step` on."""
    g = {"w": jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)}
    tx = gradtx.shampoo(
        0.1, 8, merge_small_dims_block_size=1, start_preconditioning_step=1
    )
    state, step = tx.init(g), jax.jit(tx.update)
    u, state = step(g, state, g)
    np.testing.assert_allclose(u["w"], -0.1 * 1.9 * g["w"], rtol=1e-6)
    assert not np.allclose(state[0].preconds["w"][0], np.eye(3))
    u, state = step(g, state, g)
    ratio = np.asarray(u["w"] / g["w"])
    assert np.ptp(ratio) > 1e-3  # preconditioned: not a multiple of g


def test_roots_recomputed_only_every_k_steps():
    g = {"w": jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)}
    tx = gradtx.scale_by_shampoo(8, preconditioning_compute_steps=2,
                                 merge_small_dims_block_size=1)  # fmt: skip
    step = jax.jit(tx.update)
    s0 = tx.init(g)
    _, s1 = step(g, s0)  # count 0: computed
    _, s2 = step(jax.tree.map(lambda x: 2 * x, g), s1)  # count 1: kept
    _, s3 = step(g, s2)  # count 2: computed
    r = lambda s: np.asarray(s.preconds["w"][0])
    assert not np.allclose(r(s1), r(s0))
    np.testing.assert_array_equal(r(s2), r(s1))
    assert not np.allclose(r(s3), r(s2))


def test_scalar_empty_and_skipped_leaves_take_the_grafting_step():
    params = {"s": jnp.asarray(2.0), "e": jnp.zeros((0, 3)), "big": jnp.ones((2, 9))}
    grads = {"s": jnp.asarray(0.5), "e": jnp.zeros((0, 3)), "big": jnp.ones((2, 9))}
    tx = gradtx.shampoo(
        0.1, 4, graft_type="adagrad", skip_preconditioning_dim_size_gt=8
    )
    state = tx.init(params)
    assert state[0].stats["s"] == () and state[0].stats["big"] == ()
    u, _ = jax.jit(tx.update)(grads, state, params)
    np.testing.assert_allclose(u["s"], -0.1 * 1.9 * 1.0, rtol=1e-6)  # AdaGrad: sign
    assert u["e"].shape == (0, 3)
    np.testing.assert_allclose(u["big"], -0.19 * np.ones((2, 9)), rtol=1e-6)


def test_complex_leaf_is_rejected_naming_its_path():
    tx = gradtx.shampoo(0.1, 4)
    with pytest.raises(TypeError, match=r"\['z'\].*complex|complex.*\['z'\]"):
        tx.init({"z": jnp.ones((2, 2), jnp.complex64)})


BAD = [
    (dict(block_size=0), ValueError, "block_size"),
    (dict(block_size=2.5), TypeError, "block_size"),
    (dict(matrix_eps=-1.0), ValueError, "matrix_eps"),
    (dict(diagonal_eps=-1.0), ValueError, "diagonal_eps"),
    (dict(b1=1.0), ValueError, "b1"),
    (dict(b2=1.5), ValueError, "b2"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(start_preconditioning_step=-1), ValueError, "start_precondit"),
    (dict(preconditioning_compute_steps=0), ValueError, "preconditioning_comp"),
    (dict(statistics_compute_steps=0), ValueError, "statistics_compute"),
    (dict(exponent_override=-2), ValueError, "exponent_override"),
    (dict(exponent_override=1.5), TypeError, "exponent_override"),
    (dict(skip_preconditioning_rank_lt=-1), ValueError, "skip_preconditioning_r"),
    (dict(skip_preconditioning_dim_size_gt=-1), ValueError, "skip_preconditioning_d"),
    (dict(merge_small_dims_block_size=0), ValueError, "merge_small_dims"),
    (dict(nesterov=1), TypeError, "nesterov"),
    (dict(graft_type="adam"), ValueError, "graft_type.*sgd.*adagrad.*sqrt_n"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"), BAD, ids=[b[2][:20] for b in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(kwargs, error, pattern):
    kw = dict(learning_rate=0.1, block_size=4) | kwargs
    with pytest.raises(error, match=f"shampoo: `?{pattern}"):
        gradtx.shampoo(**kw)


def test_weight_decay_needs_params():
    tx = gradtx.shampoo(0.1, 4, weight_decay=0.1)
    p = {"w": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match="params"):
        tx.update(p, tx.init(p))
