"""The dtype policy (docs/precision.md) on float16, bfloat16 and mixed trees.

Optax 0.2.8 fails each case below (the issue's measurements): float16 Adam and
RMSProp give NaN on a zero gradient, underflow on 1e-4 and overflow on 300;
global-norm clipping of a float16 gradient of 300 returns zeros; bf16 params
with float32 gradients switch Adam's ``mu`` to float32 (a ``lax.scan`` carry
then fails). float64 leaves are covered by
``tests/test_mixed_trees.py::test_float64_and_mixed_precision_leaves_with_x64``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optimizers import OPTIMIZERS, make

import gradtx

# The Adam family and the other second-moment methods, where eps and squared
# gradients meet float16's range; plus momentum and sign methods.
FAMILY = [
    "adam",
    "adam_nesterov",
    "adamw",
    "nadamw",
    "amsgrad",
    "adamax",
    "adabelief",
    "yogi",
    "radam",
    "rmsprop",
    "rmsprop_centered_momentum",
    "adagrad",
    "sgd_momentum",
    "lion",
    "adafactor",
    "lamb",
]
GRADS = {"zero": 0.0, "tiny": 1e-4, "big": 300.0}


def _tree(dtype):
    """One leaf per gradient case, params 1.0."""
    return {k: jnp.ones((4,), dtype) for k in GRADS}


def _grads(dtype):
    return {k: jnp.full((4,), v, dtype) for k, v in GRADS.items()}


def _run(tx, dtype, steps=5):
    @jax.jit
    def run(params):
        def body(carry, _):
            params, state = carry
            updates, state = tx.update(_grads(dtype), state, params)
            return (gradtx.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), None, steps)
        return params, state

    return run(_tree(dtype))


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", FAMILY)
def test_low_precision_stays_finite_where_float32_does(name):
    _, factory, kwargs = next(e for e in OPTIMIZERS if e[0] == name)
    tx = make(factory, **kwargs)
    p32, _ = _run(tx, jnp.float32)
    assert _finite(p32)
    for dtype in (jnp.float16, jnp.bfloat16):
        params, state = _run(tx, dtype)
        assert _finite(params), (name, dtype, params)
        assert _finite(state), (name, dtype)
        # every leaf keeps its dtype, the state its init dtypes (scan carry)
        assert all(x.dtype == dtype for x in jax.tree.leaves(params))
        # and follows the float32 run to the dtype's precision
        for k in GRADS:
            np.testing.assert_allclose(
                np.asarray(params[k], np.float32),
                np.asarray(p32[k]),
                rtol=1e-2 if dtype == jnp.bfloat16 else 2e-3,
                atol=1e-3,
                err_msg=f"{name} {jnp.dtype(dtype).name} {k}",
            )


def test_clipping_a_float16_gradient_of_300_is_not_zero():
    grads = {"a": jnp.full((4,), 300.0, jnp.float16)}
    tx = gradtx.clip_by_global_norm(1.0)
    clipped, _ = tx.update(grads, tx.init(grads))
    assert clipped["a"].dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(clipped["a"], np.float32), 0.5, rtol=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mu_dtype": jnp.float32},
        {"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16},
    ],
    ids=["default", "mu_f32", "mu_nu_bf16"],
)
def test_state_dtypes_are_fixed_at_init(kwargs):
    # bf16 params, float32 gradients, a float16 and a complex leaf: the state
    # keeps init's dtypes through a scan (Optax's mu turns float32 after one step)
    params = {
        "b": jnp.ones((3,), jnp.bfloat16),
        "h": jnp.ones((2,), jnp.float16),
        "c": jnp.ones((2,), jnp.complex64),
        "w": jnp.ones((2, 2)),
    }
    grads = jax.tree.map(
        lambda x: jnp.full(x.shape, 0.1, jnp.result_type(x, jnp.float32)), params
    )
    tx = gradtx.adamw(1e-2, **kwargs)
    state = tx.init(params)
    dtypes = jax.tree.map(lambda x: x.dtype, state)

    def body(carry, _):
        params, state = carry
        updates, state = tx.update(grads, state, params)
        return (gradtx.apply_updates(params, updates), state), None

    (params2, state2), _ = jax.lax.scan(body, (params, state), None, 4)
    assert jax.tree.map(lambda x: x.dtype, state2) == dtypes
    assert jax.tree.map(lambda x: x.dtype, params2) == jax.tree.map(
        lambda x: x.dtype, params
    )
    adam = state2[0]
    want_mu = kwargs.get("mu_dtype")
    want_nu = kwargs.get("nu_dtype")
    assert adam.mu["b"].dtype == (want_mu or jnp.bfloat16)
    assert adam.nu["b"].dtype == (want_nu or jnp.bfloat16)
    assert adam.nu["c"].dtype == jnp.complex64  # a real state dtype widens to complex
    assert _finite(params2)


def test_bf16_moments_follow_the_float32_moments():
    # mu_dtype = nu_dtype = bfloat16 halves Adam's state; the arithmetic is in
    # float32 and only the stored moments are rounded
    params = {"w": jnp.linspace(-1.0, 1.0, 64)}
    grad_fn = jax.jit(jax.grad(lambda p: jnp.sum(jnp.sin(3 * p["w"]) + p["w"] ** 2)))

    def run(tx):
        @jax.jit
        def go(params):
            def body(carry, _):
                params, state = carry
                updates, state = tx.update(grad_fn(params), state, params)
                return (gradtx.apply_updates(params, updates), state), None

            return jax.lax.scan(body, (params, tx.init(params)), None, 200)[0][0]

        return go(params)

    full = run(gradtx.adam(1e-2))
    half = run(gradtx.adam(1e-2, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16))
    np.testing.assert_allclose(half["w"], full["w"], atol=2e-2)


ADAM_FAMILY = [
    "adam",
    "adamw",
    "nadam",
    "nadamw",
    "adam_l2",
    "amsgrad",
    "adamax",
    "adamaxw",
    "adabelief",
    "yogi",
    "radam",
    "lamb",
    "adopt",
]


@pytest.mark.parametrize("name", ADAM_FAMILY)
def test_every_adam_family_optimizer_takes_mu_and_nu_dtypes(name):
    kwargs = {"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16}
    tx = getattr(gradtx, name)(1e-2, **kwargs)
    params = {"w": jnp.linspace(-1.0, 1.0, 8), "h": jnp.ones((3,), jnp.float16)}
    state = tx.init(params)
    moments = [x for x in jax.tree.leaves(state) if x.ndim]  # counts are scalars
    assert moments and all(x.dtype == jnp.bfloat16 for x in moments), name
    updates, state2 = jax.jit(tx.update)(params, state, params)
    assert jax.tree.map(lambda x: x.dtype, state2) == jax.tree.map(
        lambda x: x.dtype, state
    )
    assert _finite(updates)
    with pytest.raises(ValueError, match="nu_dtype"):
        getattr(gradtx, name)(1e-2, nu_dtype=jnp.int8)
