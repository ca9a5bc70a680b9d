"""kahan_summation, stochastic_rounding: bf16/f16 params without a master copy.

1. The arithmetic, step by step, against NumPy (ml_dtypes' bfloat16): the
   compensated step is bit-exact, stochastic rounding lands on a neighbour and
   is unbiased, the draws are reproducible per key and fresh per step and leaf.
2. The issue's case: 100 SGD steps of 1e-4 on a bf16 parameter equal to 1.0
   end at 0.99 with either wrapper, at exactly 1.0 without.
3. A jitted bf16 training run (logistic regression, 300 steps, SGD and Adam)
   whose final loss is within ``RTOL`` (5%) of the float32 run with either
   wrapper, while plain bf16 stalls ``STALL`` or more above it. Measured
   (loss from 2.50): sgd(0.02) f32 0.912, bf16 1.805, Kahan 0.912, SR 0.917;
   adam(3e-3) f32 0.886, bf16 1.719, Kahan 0.888, SR 0.908.
4. Bad inputs, and jit / scan / vmap.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.precision.rounding import (
    KahanSummationState,
    StochasticRoundingState,
    kahan_summation,
    stochastic_rounding,
)

BF16, F16 = jnp.bfloat16, jnp.float16


def _assert_trees_equal(a, b):
    """Bit-equal trees; PRNG keys are compared by their data."""
    raw = lambda x: (
        jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    )
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(raw(x), raw(y))


WRAPPERS = {
    "kahan": kahan_summation,
    "stochastic": lambda inner: stochastic_rounding(inner, key=0),
}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _run_constant_grad(tx, params, grad, steps):
    """``steps`` updates with a constant gradient; the final params and state."""

    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.tree.map(lambda x: jnp.full_like(x, grad), p), s, p)
        return (gradtx.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), length=steps)
    return params, state


# ------------------------------------------------------------ 1. arithmetic


def test_kahan_step_is_bit_exact_against_numpy():
    rng = np.random.default_rng(0)
    p = rng.normal(size=256).astype(BF16)
    c = (rng.normal(size=256) * 1e-3).astype(BF16)
    g = (rng.normal(size=256) * 1e-2).astype(np.float32)
    tx = kahan_summation(gradtx.identity())
    state = KahanSummationState(gradtx.EmptyState(), jnp.asarray(c))
    u, state = tx.update(jnp.asarray(g), state, jnp.asarray(p))
    # NumPy: y = g + c in float32, t = bf16(p + y), u' = t - p, c' = bf16(y - u').
    y = g + c.astype(np.float32)
    t = (p.astype(np.float32) + y).astype(BF16)
    step = t.astype(np.float32) - p.astype(np.float32)
    assert u.dtype == jnp.float32 and state.compensation.dtype == BF16
    np.testing.assert_array_equal(np.asarray(u), step)
    np.testing.assert_array_equal(
        np.asarray(state.compensation), (y - step).astype(BF16)
    )
    new_p = gradtx.apply_updates(jnp.asarray(p), u)
    assert new_p.dtype == BF16
    np.testing.assert_array_equal(np.asarray(new_p), t)  # apply_updates gives t


@pytest.mark.parametrize("dtype", [BF16, F16])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_stochastic_rounding_is_unbiased_and_lands_on_a_neighbour(dtype, sign):
    n = 20_000
    rng = np.random.default_rng(1)
    p = (rng.choice([-1, 1], n) * rng.uniform(1e-3, 4, n)).astype(dtype)  # normal
    ulp = np.abs(np.spacing(p.astype(np.float32)))  # float32 spacing, rescaled:
    ulp = ulp * 2.0 ** (23 - (7 if dtype == BF16 else 10))
    g = sign * rng.uniform(0, 3, size=n).astype(np.float32) * ulp
    tx = stochastic_rounding(gradtx.identity(), key=3)
    u, _ = tx.update(jnp.asarray(g, jnp.float32), tx.init(jnp.asarray(p)), p)
    t = np.asarray(gradtx.apply_updates(jnp.asarray(p), u)).astype(np.float64)
    x = p.astype(np.float64) + g.astype(np.float64)
    near = x.astype(dtype).astype(np.float64)
    assert np.all(np.abs(t - x) < 2 * ulp), "not a neighbour of p + u"
    assert np.mean(t != near) > 0.1  # it does not round to nearest
    # E[t] = x: the mean rounding error in ulps is 0 within 5 standard errors.
    err = (t - x) / ulp
    assert abs(np.mean(err)) < 5 * 0.5 / np.sqrt(n), np.mean(err)


@pytest.mark.parametrize("dtype", [BF16, F16])
def test_stochastic_rounding_expectation_of_one_small_step(dtype):
    # 1.0 + 1e-3 (bf16; 3e-4 in f16, below its ulp) is 1.0 or the next value up.
    n, du = 20_000, (1e-3 if dtype == BF16 else 3e-4)
    tx = stochastic_rounding(gradtx.sgd(1.0), key=jax.random.key(7))
    p = jnp.ones(n, dtype)
    u, _ = tx.update(jnp.full(n, -du, jnp.float32), tx.init(p), p)
    t = np.asarray(gradtx.apply_updates(p, u)).astype(np.float64)
    up = 1.0 + float(jnp.finfo(dtype).eps)
    assert set(np.unique(t)) == {1.0, up}
    q = du / (up - 1.0)
    sigma = (up - 1.0) * np.sqrt(q * (1 - q) / n)
    assert abs(t.mean() - (1.0 + du)) < 5 * sigma


def test_stochastic_rounding_is_reproducible_and_fresh_per_step_and_leaf():
    p = {"a": jnp.ones(4096, BF16), "b": jnp.ones(4096, BF16)}
    g = jax.tree.map(lambda x: jnp.full(x.shape, 1e-3, jnp.float32), p)

    def two_steps(key):
        tx = stochastic_rounding(gradtx.identity(), key)
        s = tx.init(p)
        u1, s = tx.update(g, s, p)
        u2, s = tx.update(g, s, p)  # same params and gradient, next step
        return u1, u2, s

    u1, u2, state = two_steps(0)
    again = two_steps(jax.random.key(0))  # an int seed is jax.random.key(seed)
    raw = two_steps(jax.random.PRNGKey(0))  # raw uint32 keys are accepted too
    other = two_steps(1)
    for x, y in zip(jax.tree.leaves((u1, u2)), jax.tree.leaves(again[:2]), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(u1["a"], raw[0]["a"])
    assert not np.array_equal(u1["a"], other[0]["a"])  # another key
    assert not np.array_equal(u1["a"], u2["a"])  # another step
    assert not np.array_equal(u1["a"], u1["b"])  # another leaf
    assert isinstance(state, StochasticRoundingState) and int(state.count) == 2


def test_stochastic_rounding_passes_full_precision_leaves_through():
    p = {"f32": jnp.ones(3), "c64": jnp.ones(3, jnp.complex64)}
    g = {"f32": jnp.full(3, 1e-9), "c64": jnp.full(3, 1e-9 + 2e-9j, jnp.complex64)}
    tx = stochastic_rounding(gradtx.identity(), key=0)
    u, _ = tx.update(g, tx.init(p), p)
    for x, y in zip(jax.tree.leaves(u), jax.tree.leaves(g), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_nonfinite_values_stay_nonfinite():
    p = jnp.array([1.0, 1.0, 1.0], BF16)
    g = jnp.array([jnp.nan, jnp.inf, -jnp.inf])
    for tx in (
        kahan_summation(gradtx.identity()),
        WRAPPERS["stochastic"](gradtx.identity()),
    ):
        new = gradtx.apply_updates(p, tx.update(g, tx.init(p), p)[0])
        assert np.isnan(new[0]) and new[1] == np.inf and new[2] == -np.inf


# ------------------------------------------------ 2. the tiny steps


@pytest.mark.parametrize("dtype", [BF16, F16])
def test_100_sgd_steps_of_1e4_move_a_low_precision_param(dtype):
    p0 = jnp.ones(2048, dtype)
    f32, _ = _run_constant_grad(gradtx.sgd(1e-4), jnp.ones(2048), 1.0, 100)
    plain, _ = _run_constant_grad(gradtx.sgd(1e-4), p0, 1.0, 100)
    kahan, state = _run_constant_grad(kahan_summation(gradtx.sgd(1e-4)), p0, 1.0, 100)
    sr, _ = _run_constant_grad(WRAPPERS["stochastic"](gradtx.sgd(1e-4)), p0, 1.0, 100)
    target = float(f32[0])
    assert abs(target - 0.99) < 1e-5
    assert np.all(np.asarray(plain) == 1.0)  # every update lost
    ulp_below_1 = float(jnp.finfo(dtype).eps) / 2
    # Kahan: the param is within one ulp of 0.99, param + compensation at 0.99.
    assert np.all(np.abs(np.asarray(kahan, np.float64) - target) <= ulp_below_1)
    total = np.asarray(kahan, np.float64) + np.asarray(state.compensation, np.float64)
    np.testing.assert_allclose(total, target, atol=1e-4 * ulp_below_1 / 2**-8)
    # Stochastic rounding: 0.99 on average, each element a random walk around
    # it (standard deviation 0.006 in bf16, 0.002 in f16).
    sr = np.asarray(sr, np.float64)
    assert abs(sr.mean() - target) < 5 * sr.std() / np.sqrt(sr.size)
    assert sr.std() < 0.01


def test_kahan_compensates_float32_too():
    # 1 + 1000 * 1e-8: every float32 add rounds back to 1.0; Kahan keeps the sum.
    p = jnp.ones(3, jnp.float32)
    plain, _ = _run_constant_grad(gradtx.sgd(1.0), p, -1e-8, 1000)
    kahan, state = _run_constant_grad(kahan_summation(gradtx.sgd(1.0)), p, -1e-8, 1000)
    assert state.compensation.dtype == jnp.float32
    np.testing.assert_array_equal(plain, 1.0)
    np.testing.assert_allclose(kahan, 1.0 + 1e-5, rtol=2e-7)


# ------------------------------------------------ 3. a bf16 training run

RTOL = 0.05  # |final loss / float32 final loss - 1| with either wrapper
STALL = 0.5  # plain bf16 ends at least this far above float32 (from 2.50)


@functools.cache
def _logistic_problem():
    """Labels of a noisy linear model; weights ~ N(0, 1), far from the optimum."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 32)).astype(np.float32)
    w_true = 6 * rng.normal(size=32) / np.sqrt(32)
    y = (x @ w_true + 0.5 * rng.normal(size=512) > 0).astype(np.float32)
    return x, y, rng.normal(size=32).astype(np.float32)


def _train(tx, dtype):
    return float(_train_jit(tx, dtype, *_logistic_problem()))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _train_jit(tx, dtype, x, y, w0):

    def loss(w):  # bf16 storage; the forward pass in float32
        z = x @ w.astype(jnp.float32)
        return jnp.mean(jax.nn.softplus(z) - y * z)

    def body(carry, _):
        w, s = carry
        u, s = tx.update(jax.grad(loss)(w), s, w)
        return (gradtx.apply_updates(w, u), s), None

    w = w0.astype(dtype)
    (w, _), _ = jax.lax.scan(body, (w, tx.init(w)), length=300)
    return loss(w)


@pytest.mark.parametrize(
    "make", [lambda: gradtx.sgd(0.02), lambda: gradtx.adam(3e-3)], ids=["sgd", "adam"]
)
def test_bf16_training_tracks_float32_with_either_wrapper(make):
    f32 = _train(make(), jnp.float32)
    plain = _train(make(), BF16)
    kahan = _train(kahan_summation(make()), BF16)
    sr = _train(stochastic_rounding(make(), key=0), BF16)
    assert plain > f32 + STALL, (f32, plain)
    assert abs(kahan - f32) < RTOL * f32, (f32, kahan)
    assert abs(sr - f32) < RTOL * f32, (f32, sr)


# ------------------------------------------------ 4. bad inputs, transforms


@pytest.mark.parametrize("name", WRAPPERS)
def test_update_needs_params(name):
    tx = WRAPPERS[name](gradtx.sgd(0.1))
    p = jnp.ones(2, BF16)
    owner = "kahan_summation" if name == "kahan" else "stochastic_rounding"
    with pytest.raises(ValueError, match=f"{owner}: .*needs the current parameters"):
        tx.update(p, tx.init(p))


@pytest.mark.parametrize("name", WRAPPERS)
def test_bad_state(name):
    tx = WRAPPERS[name](gradtx.sgd(0.1))
    p = jnp.ones(2, BF16)
    other = (WRAPPERS["stochastic" if name == "kahan" else "kahan"])(gradtx.sgd(0.1))
    for state in (None, other.init(p), tx.init(p)[0]):
        with pytest.raises(ValueError, match=r"`state` must be the `\w+State`"):
            tx.update(p, state, p)


@pytest.mark.parametrize("name", WRAPPERS)
def test_bad_inner(name):
    with pytest.raises(TypeError, match="not a gradient transformation"):
        WRAPPERS[name](gradtx.sgd)


@pytest.mark.parametrize("key", [None, "0", 1.5])
def test_bad_key(key):
    with pytest.raises(TypeError, match="stochastic_rounding: `key` must be"):
        stochastic_rounding(gradtx.sgd(0.1), key)


@pytest.mark.parametrize("name", WRAPPERS)
def test_mismatched_trees_name_the_leaf(name):
    tx = WRAPPERS[name](gradtx.identity())
    p = {"w": jnp.ones(3, BF16)}
    state = tx.init(p)
    with pytest.raises(ValueError, match=r"`params` .*leaf \['w'\]"):
        tx.update({"w": jnp.ones(3)}, state, {"v": jnp.ones(3, BF16)})
    with pytest.raises(ValueError, match=r"shape mismatch at leaf \['w'\]"):
        tx.update({"w": jnp.ones(3)}, state, {"w": jnp.ones(4, BF16)})
    if name == "kahan":  # a state made for other params
        with pytest.raises(ValueError, match=r"`compensation` .*leaf \['w'\]"):
            tx.update({"w": jnp.ones(3)}, tx.init({"x": jnp.ones(3, BF16)}), p)


@pytest.mark.parametrize("name", WRAPPERS)
def test_bad_dtypes_name_the_leaf(name):
    owner = "kahan_summation" if name == "kahan" else "stochastic_rounding"
    tx = WRAPPERS[name](gradtx.identity())
    p = {"q": jnp.ones(3, jnp.float8_e4m3fn)}
    with pytest.raises(TypeError, match=rf"{owner}: leaf \['q'\] of `params`.*float8"):
        tx.update({"q": jnp.ones(3)}, tx.init(p), p)
    p = {"r": jnp.ones(3, BF16)}
    with pytest.raises(TypeError, match=rf"{owner}: leaf \['r'\] .*complex update"):
        tx.update({"r": jnp.ones(3, jnp.complex64)}, tx.init(p), p)


@pytest.mark.parametrize("name", WRAPPERS)
def test_jit_vmap_and_state_layout(name):
    make = lambda: WRAPPERS[name](gradtx.adam(1e-3))
    tx = make()
    p = {"w": jnp.linspace(-1, 1, 6, dtype=BF16).reshape(2, 3), "b": jnp.ones(3)}
    g = jax.tree.map(lambda x: jnp.full(x.shape, 0.5, x.dtype), p)
    state = tx.init(p)
    if name == "kahan":
        dtypes = lambda tree: jax.tree.map(lambda x: x.dtype, tree)
        assert dtypes(state.compensation) == dtypes(p)
    update = jax.jit(tx.update)
    eager = tx.update(g, state, p)
    _assert_trees_equal(eager, update(g, state, p))
    assert eager[0]["w"].dtype == jnp.float32  # exact t - p for the bf16 leaf
    # vmap over a batch of three parameter trees equals member by member.
    batch = jax.tree.map(lambda x: jnp.stack([x, 2 * x, -x]), p)
    states = jax.vmap(tx.init)(batch)
    grads = jax.tree.map(lambda x: jnp.stack([x] * 3), g)
    batched = jax.jit(jax.vmap(tx.update))(grads, states, batch)
    for i in range(3):
        member = jax.tree.map(lambda x, i=i: x[i], batch)
        alone = update(g, tx.init(member), member)
        _assert_trees_equal(alone, jax.tree.map(lambda y, i=i: y[i], batched))


def test_extra_args_reach_the_inner_optimizer():
    def update_fn(updates, state, params=None, **extra_args):
        del params
        return jax.tree.map(lambda u: -extra_args["value"] * u, updates), state

    inner = gradtx.GradientTransformation(gradtx.init_empty_state, update_fn)
    p = jnp.ones(2, BF16)
    for tx in (kahan_summation(inner), WRAPPERS["stochastic"](inner)):
        u, _ = tx.update(jnp.ones(2), tx.init(p), p, value=0.5)
        np.testing.assert_array_equal(u, [-0.5, -0.5])


def _as_checkpoint(x):
    """A state as a checkpointer returns it: dicts and lists of NumPy arrays."""
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return {k: _as_checkpoint(v) for k, v in zip(x._fields, x, strict=True)}
    if isinstance(x, (tuple, list)):
        return [_as_checkpoint(v) for v in x]
    if isinstance(x, dict):
        return {k: _as_checkpoint(v) for k, v in x.items()}
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


@pytest.mark.parametrize("name", WRAPPERS)
def test_restored_state_continues_identically(name):
    tx = WRAPPERS[name](gradtx.sgd(1e-3, momentum=0.9))
    p = {"w": jnp.linspace(0.5, 2, 64, dtype=BF16)}
    g = {"w": jnp.full(64, 0.3, jnp.float32)}
    _, state = tx.update(g, tx.init(p), p)
    restored = gradtx.restore_state(tx, p, _as_checkpoint(state))
    assert type(restored) is type(state)
    _assert_trees_equal(tx.update(g, state, p), tx.update(g, restored, p))
