"""gradtx.fused_step: update + apply in one call, large leaves by the native kernel."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.engines import fused as _fused
from gradtx.engines import native as _native

native = pytest.mark.skipif(
    not _native.available(), reason=f"no native kernel: {_native.why_unavailable()}"
)

_K = jax.random.split(jax.random.key(3), 4)
PARAMS = {
    "w": jax.random.normal(_K[0], (96, 80)),  # 7,680 elements: the kernel's
    "b": jax.random.normal(_K[1], (80,)),  # small: XLA
    "h": jax.random.normal(_K[2], (64, 64)).astype(jnp.bfloat16),  # bf16: XLA
}
MIN_SIZE = 4096  # so that 'w' goes to the kernel in these small tests
SCHED = gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 100)

RECOGNISED = {
    "adam": lambda: gradtx.adam(1e-2),
    "adamw": lambda: gradtx.adamw(1e-2, weight_decay=0.1),
    "nadamw": lambda: gradtx.nadamw(SCHED, weight_decay=lambda c: 1e-3 * c),
    "clip_adamw_schedule": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(0.5), gradtx.adamw(SCHED, eps_root=1e-12)
    ),
}
NOT_RECOGNISED = {
    "sgd": lambda: gradtx.sgd(0.1, momentum=0.9),
    "adam_mu_dtype": lambda: gradtx.adam(1e-2, mu_dtype=jnp.bfloat16),
    "adamw_mask": lambda: gradtx.adamw(1e-2, mask=lambda p: {k: k != "b" for k in p}),
    "adam_l2": lambda: gradtx.adam_l2(1e-2, weight_decay=0.1),
    "adam_then_clip": lambda: gradtx.chain(gradtx.adam(1e-2), gradtx.clip(1.0)),
    "amsgrad": lambda: gradtx.amsgrad(1e-2),
}


def _grads(params, i):
    return jax.tree.map(lambda x: jnp.sin(3 * x + i).astype(x.dtype), params)


def _run(step_fn, tx, steps=25):
    """Both steps from the same start, jitted with donation; final (params, state)."""
    step = jax.jit(step_fn, donate_argnums=(0, 1))
    params = jax.tree.map(jnp.copy, PARAMS)
    state = tx.init(params)
    for i in range(steps):
        params, state = step(params, state, _grads(params, i))
    return params, state


def _plain(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return step


@pytest.mark.parametrize("name", RECOGNISED)
def test_recognised_optimizers_have_a_plan(name):
    assert _fused._plan(RECOGNISED[name]()) is not None


@pytest.mark.parametrize("name", NOT_RECOGNISED)
def test_other_optimizers_run_the_plain_step_bit_for_bit(name):
    tx = NOT_RECOGNISED[name]()
    fused = gradtx.fused_step(tx, min_size=MIN_SIZE)
    assert _fused._plan(tx) is None and not fused.native
    expected = _run(_plain(tx), tx, steps=5)
    got = _run(fused, tx, steps=5)
    jax.tree.map(np.testing.assert_array_equal, got, expected)


# At the -O0 the suite compiles at (tests/conftest.py) XLA contracts no
# multiply-adds, and the plain and the fused programs round apart (1.1e-6 at
# most, measured); at XLA:CPU's default level they agree bit for bit.
AT_O0 = "xla_backend_optimization_level=0" in os.environ.get("XLA_FLAGS", "")


def _assert_same_as_xla(got, want):
    if AT_O0 and jnp.issubdtype(jnp.asarray(want).dtype, jnp.floating):
        as32 = lambda x: np.asarray(jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(as32(got), as32(want), rtol=4e-6, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


@native
@pytest.mark.parametrize("name", RECOGNISED)
def test_kernel_follows_the_plain_step(name):
    tx = RECOGNISED[name]()
    fused = gradtx.fused_step(tx, min_size=MIN_SIZE)
    assert fused.native
    (p1, s1), (p2, s2) = _run(_plain(tx), tx), _run(fused, tx)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    # XLA leaves and counters: bit for bit (see AT_O0)
    _assert_same_as_xla(p2["b"], p1["b"])
    _assert_same_as_xla(p2["h"], p1["h"])
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2), strict=True):
        if a.size < MIN_SIZE:
            _assert_same_as_xla(b, a)
    # The kernel computes the plain step's expression with its own roundings
    # (tests/engines/test_native.py bounds one step); after 25 steps the two are a few
    # ulps apart. Bound: 16 units of (ulp(p) + lr·2^-23); measured 12.2 at most
    # (adam), ~0.2 on average.
    err = np.abs(p2["w"] - p1["w"]) / (np.spacing(np.abs(p1["w"])) + 1e-2 * 2**-23)
    assert err.max() <= 16, err.max()


@native
def test_kernel_updates_in_place_when_donated():
    tx = gradtx.adamw(1e-3)
    step = jax.jit(gradtx.fused_step(tx), donate_argnums=(0, 1))
    params = {"w": jnp.ones((512, 512))}
    state = tx.init(params)
    before = (
        params["w"].unsafe_buffer_pointer(),
        state[0].mu["w"].unsafe_buffer_pointer(),
    )
    params, state = step(params, state, {"w": jnp.full((512, 512), 0.5)})
    after = (
        params["w"].unsafe_buffer_pointer(),
        state[0].mu["w"].unsafe_buffer_pointer(),
    )
    assert after == before
    text = (
        jax.jit(gradtx.fused_step(tx), donate_argnums=(0, 1))
        .lower(params, state, params)
        .compile()
        .as_text()
    )
    assert "gradtx_adam_leaf" in text and " copy(" not in text


@native
def test_kernel_inside_scan_and_with_extra_args():
    tx = gradtx.chain(gradtx.clip_by_global_norm(0.5), gradtx.adam(1e-2))
    fused = gradtx.fused_step(tx, min_size=MIN_SIZE)

    def body(carry, i):
        params, state = carry
        return fused(params, state, _grads(params, i), unused=1.0), None

    (got, _), _ = jax.lax.scan(body, (PARAMS, tx.init(PARAMS)), jnp.arange(5))
    expected, _ = _run(_plain(tx), tx, steps=5)
    np.testing.assert_allclose(got["w"], expected["w"], rtol=1e-6, atol=1e-6)


def test_without_the_kernel_the_step_is_the_plain_one(monkeypatch):
    monkeypatch.setattr(_native, "available", lambda: False)
    tx = RECOGNISED["clip_adamw_schedule"]()
    fused = gradtx.fused_step(tx, min_size=MIN_SIZE)
    assert not fused.native
    got, expected = _run(fused, tx, steps=5), _run(_plain(tx), tx, steps=5)
    jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_bad_arguments():
    with pytest.raises(TypeError, match="fused_step: `tx` must be a gradient"):
        gradtx.fused_step(gradtx.adam)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="fused_step: `min_size`"):
            gradtx.fused_step(gradtx.adam(1e-3), min_size=bad)
