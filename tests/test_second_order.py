"""gradtx.second_order: hvp, hessian_diag, fisher_diag.

Independently: a float64 NumPy reference for a logistic-regression loss,
whose gradient ``Xᵀ(σ(Xw) - y)`` and Hessian ``Xᵀ diag(σ(1-σ)) X`` are known in
closed form, with params split over a two-leaf pytree (so the flat order of
``ravel_pytree`` is exercised); and a central finite difference of the
gradient for ``hvp`` on a non-quadratic loss. Against Optax: the same numbers
(float32, 1e-6 relative) for the same calls.
"""

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx import second_order

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 5))
Y = (RNG.uniform(size=16) < 0.5).astype(np.float64)
W = RNG.normal(size=5) * 0.5


def split(w):
    return {"a": jnp.asarray(w[:2], jnp.float32), "b": jnp.asarray(w[2:], jnp.float32)}


def logistic(params, x, y):
    w = jnp.concatenate([params["a"], params["b"]])
    z = x @ w
    return jnp.sum(jnp.logaddexp(0.0, z) - y * z)


def np_grad_hessian(w, x, y):
    s = 1.0 / (1.0 + np.exp(-(x @ w)))
    return x.T @ (s - y), x.T @ (x * (s * (1 - s))[:, None])


def close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


def optax_call(name, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(optax.second_order, name)(*args)


X32, Y32 = jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32)


def test_hvp_matches_the_closed_form_hessian():
    v = RNG.normal(size=5)
    out = second_order.hvp(logistic, jnp.asarray(v, jnp.float32), split(W), X32, Y32)
    assert set(out) == {"a", "b"}  # shaped like params, as in Optax
    _, h = np_grad_hessian(W, X, Y)
    close(jnp.concatenate([out["a"], out["b"]]), h @ v, 1e-5)


def test_hvp_matches_a_finite_difference_of_the_gradient():
    def loss(p, x, y):
        return jnp.sum(jnp.sin(x @ p["w"]) * y) + jnp.sum(p["w"] ** 4)

    w = RNG.normal(size=5)
    v = RNG.normal(size=5)

    def np_grad(w):  # float64 NumPy gradient of the same loss
        return X.T @ (np.cos(X @ w) * Y) + 4 * w**3

    eps = 1e-5
    fd = (np_grad(w + eps * v) - np_grad(w - eps * v)) / (2 * eps)
    p = {"w": jnp.asarray(w, jnp.float32)}
    out = second_order.hvp(loss, jnp.asarray(v, jnp.float32), p, X32, Y32)
    close(out["w"], fd, 1e-4)


def test_hessian_diag_matches_the_closed_form():
    _, h = np_grad_hessian(W, X, Y)
    close(second_order.hessian_diag(logistic, split(W), X32, Y32), np.diag(h), 1e-5)


def test_fisher_diag_is_the_squared_gradient():
    g, _ = np_grad_hessian(W, X, Y)
    close(second_order.fisher_diag(logistic, split(W), X32, Y32), g**2, 1e-5)


@pytest.mark.parametrize("name", ["hvp", "hessian_diag", "fisher_diag"])
def test_same_numbers_and_signature_as_optax(name):
    params = split(W)
    v = jnp.asarray(RNG.normal(size=5), jnp.float32)
    args = (v, params, X32, Y32) if name == "hvp" else (params, X32, Y32)
    ours = getattr(second_order, name)(logistic, *args)
    theirs = optax_call(name, logistic, *args)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        close(a, b, 1e-6)
    ps = inspect.signature(getattr(second_order, name)).parameters
    po = inspect.signature(getattr(optax.second_order, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ps.values()] == [
        (p.name, p.kind, p.default) for p in po.values()
    ]


def test_jit_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jitted = jax.jit(second_order.hessian_diag, static_argnums=0)
        close(
            jitted(logistic, split(W), X32, Y32),
            second_order.hessian_diag(logistic, split(W), X32, Y32),
            1e-6,
        )
