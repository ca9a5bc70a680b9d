"""unitwise_norm and unitwise_clip (gradtx.transforms), the two steps of AGC.

Independently: a float64 NumPy reference of the unit norms with Brock et al.'s
axis conventions (ranks 0 to 5, and explicit ``axis``) and of the clipping
rule. Against Optax (``optax.transforms``): the same numbers, float32, 1e-6
relative. Bad input: a shape mismatch names the argument.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.transforms import adaptive_grad_clip, unitwise_clip, unitwise_norm

RNG = np.random.default_rng(0)
SHAPES = [(), (4,), (1, 4), (3, 4), (2, 3, 4), (2, 2, 3, 4), (2, 2, 2, 3, 4)]


def np_unitwise_norm(x, axis=None):
    x = np.asarray(x, np.float64)
    if axis is None:
        if np.squeeze(x).ndim <= 1:
            axis = None
        elif x.ndim in (2, 3):
            axis = 0
        else:
            axis = tuple(range(x.ndim - 1))
    n = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return np.broadcast_to(n, x.shape)


def close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_unitwise_norm_reference_and_optax(shape):
    x = RNG.normal(size=shape).astype(np.float32)
    ours = unitwise_norm(x)
    close(ours, np_unitwise_norm(x), 1e-6)
    close(ours, optax.transforms.unitwise_norm(x), 1e-6)


@pytest.mark.parametrize("axis", [0, 1, (0, 2), -1])
def test_unitwise_norm_explicit_axis(axis):
    x = RNG.normal(size=(3, 4, 5)).astype(np.float32)
    close(unitwise_norm(x, axis=axis), np_unitwise_norm(x, axis), 1e-6)
    close(unitwise_norm(x, axis=axis), optax.transforms.unitwise_norm(x, axis), 1e-6)


def test_unitwise_norm_unknown_rank_asks_for_axis():
    with pytest.raises(ValueError, match=r"unitwise_norm.*axis"):
        unitwise_norm(jnp.ones((2,) * 6))


def test_unitwise_norm_gradient_at_zero_is_finite():
    g = jax.grad(lambda x: jnp.sum(unitwise_norm(x)))(jnp.zeros((3, 2)))
    assert np.all(np.isfinite(g))


def np_unitwise_clip(g_norm, max_norm, grad, div_eps=1e-6):
    g_norm, max_norm, grad = (
        np.asarray(a, np.float64) for a in (g_norm, max_norm, grad)
    )
    clipped = grad * (max_norm / np.maximum(g_norm, div_eps))
    return np.where(g_norm < max_norm, grad, clipped)


@pytest.mark.parametrize("div_eps", [1e-6, 0.5])
def test_unitwise_clip_reference_and_optax(div_eps):
    grad = RNG.normal(size=(4, 3)).astype(np.float32)
    grad[:, 0] = 0.0  # an all-zero unit: the div_eps floor
    g_norm = np.asarray(unitwise_norm(grad))
    max_norm = RNG.uniform(0.1, 3.0, size=(1, 3)).repeat(4, 0).astype(np.float32)
    ours = unitwise_clip(g_norm, max_norm, grad, div_eps)
    close(ours, np_unitwise_clip(g_norm, max_norm, grad, div_eps), 1e-6)
    close(ours, optax.transforms.unitwise_clip(g_norm, max_norm, grad, div_eps), 1e-6)
    assert np.all(np.asarray(ours)[:, 0] == 0)


@pytest.mark.parametrize("bad", ["g_norm", "max_norm"])
def test_unitwise_clip_shape_mismatch_names_the_argument(bad):
    args = {"g_norm": jnp.ones(3), "max_norm": jnp.ones(3), "grad": jnp.ones(3)}
    args[bad] = jnp.ones(2)
    with pytest.raises(ValueError, match=f"`{bad}` has shape"):
        unitwise_clip(**args)


def test_adaptive_grad_clip_still_matches_optax():
    p = {"w": RNG.normal(size=(3, 4)).astype(np.float32), "b": np.zeros(4, np.float32)}
    g = jax.tree.map(lambda x: 10 * RNG.normal(size=x.shape).astype(np.float32), p)
    ours = adaptive_grad_clip(0.05).update(g, None, p)[0]
    theirs = optax.adaptive_grad_clip(0.05).update(g, None, p)[0]
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        close(a, b, 1e-6)
