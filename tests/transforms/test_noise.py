"""Gradient noise: noisy SGD and add_noise against Optax, the annealed variance,
key handling (Neelakantan et al., 2015). Split from test_layerwise.py, where
the other members of the old alias module are tested.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_layerwise import RTOL, _rel_err, _run_jax

import gradtx
from gradtx.optimizers.noise import noisy_sgd
from gradtx.transforms.noise import add_noise

# ----------------------------------------------------- noise: Optax and stats


@pytest.mark.parametrize(
    "key",
    [jax.random.key(5), jax.random.PRNGKey(5)],
    ids=["typed", "raw"],
)
def test_noisy_sgd_matches_optax(key):
    kwargs = dict(learning_rate=0.01, eta=0.3, key=key)
    ours = _run_jax(noisy_sgd(**kwargs), gradtx.apply_updates)
    okey = jax.random.key(5)  # Optax takes typed keys and ints only
    theirs = _run_jax(optax.noisy_sgd(**{**kwargs, "key": okey}), optax.apply_updates)
    assert _rel_err(ours, theirs) <= RTOL


def test_add_noise_matches_optax_and_is_deterministic():
    ours = gradtx.chain(add_noise(0.5, 0.3, key=11), gradtx.scale(-0.01))
    theirs = optax.chain(optax.add_noise(0.5, 0.3, key=11), optax.scale(-0.01))
    a = _run_jax(ours, gradtx.apply_updates)
    assert _rel_err(a, _run_jax(theirs, optax.apply_updates)) <= RTOL
    one_step = lambda key: add_noise(0.5, 0.3, key=key).update(
        jnp.zeros(4), *[add_noise(0.5, 0.3, key=key).init(None)]
    )[0]
    np.testing.assert_array_equal(one_step(11), one_step(11))
    assert float(jnp.max(jnp.abs(one_step(11) - one_step(12)))) > 1e-3


def test_noise_has_the_annealed_variance():
    eta, gamma, n = 0.5, 0.55, 20000
    tx = add_noise(eta, gamma, key=jax.random.key(1))

    def body(s, _):
        u, s = tx.update({"a": jnp.zeros(n), "b": jnp.zeros((2, 3))}, s)
        return s, u["a"]

    _, noise = jax.jit(lambda s: jax.lax.scan(body, s, None, length=4))(tx.init(None))
    for t, x in enumerate(np.asarray(noise, np.float64), start=1):
        std = np.sqrt(eta / t**gamma)
        assert abs(x.mean()) < 4 * std / np.sqrt(n)
        assert abs(x.std() / std - 1) < 0.03
    assert np.abs(np.corrcoef(noise[0], noise[1])[0, 1]) < 0.05  # fresh each step


def test_add_noise_key_handling():
    with pytest.warns(UserWarning, match="key"):
        tx = add_noise(0.1, 0.5)
    assert tx.init(None).rng_key.dtype == jax.random.key(0).dtype
    with pytest.warns(DeprecationWarning, match="seed"):
        noisy_sgd(0.1, seed=3)
    with pytest.raises(ValueError, match="key"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        add_noise(0.1, 0.5, key=1, seed=2)
    with pytest.raises(TypeError, match="key"):
        add_noise(0.1, 0.5, key="abc")
