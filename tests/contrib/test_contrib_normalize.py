"""normalize against Optax and the global-norm rule (reference_contrib_normalize).

Chained with a constant step (as in SAM's ascent step) over 120 closed-loop
steps of tests/test_reference.py's problem: 1e-6 norm-wise relative error in
float32, against Optax and the float64 NumPy reference.
"""

import jax.numpy as jnp
import numpy as np
import optax
import reference_contrib_normalize as RN
from contrib_checks import (
    assert_close_to_optax_and_reference,
    assert_same_signature,
    complex_error,
    complex_start,
    complex_trajectory,
    reference_complex_trajectory,
)
from reference_contrib_common import Chain, ScaleByLearningRate

import gradtx
from gradtx.contrib import NormalizeState, normalize


def test_trajectory_matches_optax_and_reference():
    assert_close_to_optax_and_reference(
        gradtx.chain(normalize(), gradtx.scale(-0.05)),
        optax.chain(optax.contrib.normalize(), optax.scale(-0.05)),
        Chain(RN.Normalize(), ScaleByLearningRate(0.05)),
    )


def test_signature_and_state_match_optax():
    assert_same_signature(normalize, optax.contrib.normalize)
    assert NormalizeState is gradtx.EmptyState
    assert normalize().init({"w": jnp.ones(2)}) == NormalizeState()


def test_zero_gradient_stays_zero():
    # Optax returns NaN here (0 / 0).
    u, _ = normalize().update(
        {"a": jnp.zeros(2), "b": jnp.zeros((0,))}, NormalizeState()
    )
    np.testing.assert_array_equal(u["a"], 0.0)
    assert u["b"].shape == (0,)


def test_unit_norm_in_low_precision():
    g = {"a": jnp.full((4,), 300.0, jnp.float16), "b": jnp.ones(3, jnp.bfloat16)}
    u, _ = normalize().update(g, NormalizeState())
    assert u["a"].dtype == jnp.float16 and u["b"].dtype == jnp.bfloat16
    total = sum(float(jnp.sum(x.astype(jnp.float32) ** 2)) for x in u.values())
    np.testing.assert_allclose(total, 1.0, rtol=1e-2)


def test_complex_leaves_match_the_reference():
    start = complex_start()
    ours = complex_trajectory(gradtx.chain(normalize(), gradtx.scale(-0.05)), start)
    ref = reference_complex_trajectory(
        Chain(RN.Normalize(), ScaleByLearningRate(0.05)), start
    )
    assert complex_error(ours, ref, start) < 5e-5
