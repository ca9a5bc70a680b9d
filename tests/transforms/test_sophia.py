"""Sophia and Hutchinson's estimator: Optax, NumPy reference, bad input.

Sophia's default estimator draws random Rademacher probes, so the comparison
with Optax uses the same key (``PRNGKey(0)`` by default, or one given to both
estimators): both libraries split it the same way and draw the same probes,
and the trajectories agree to 1e-6 (in practice bit for bit) on a
non-separable objective, closed loop over 120 steps as in
:mod:`test_reference`. The float64 reference of :mod:`reference_sophia` needs
no random numbers: on a separable objective ``v ⊙ (H v) = diag(H)`` exactly
for every ±1 probe, so it is given the exact Hessian diagonal. The objective's
curvature ``1 + 1.5 cos(3θ)`` changes sign, so the ``max(γh, ε)`` floor and
the clip are both exercised.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_sophia as RSo
from test_reference import STEPS, X64, _rel_err, _run_numpy, _start

import gradtx
from gradtx.optimizers.sophia import sophia
from gradtx.transforms.sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
)

RTOL = 1e-10 if X64 else 1e-6
DTYPE = jnp.float64 if X64 else jnp.float32


def _separable(params):
    return sum(jnp.sum(0.5 * (p - 0.5) ** 2 - jnp.cos(3.0 * p) / 6.0) for p in params)


def _coupled(params):
    v = jnp.concatenate([p.ravel() for p in params])
    return _separable(params) + 0.3 * jnp.sum(jnp.sin(v[:-1] * v[1:]))


def _np_hessian_diag(params):
    return [1.0 + 1.5 * np.cos(3.0 * p) for p in params]


def _run(tx, apply_updates, f):
    params = [jnp.asarray(p, DTYPE) for p in _start()]

    def step(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(f)(p), s, p, obj_fn=f)
        p = apply_updates(p, u)
        return (p, s), p

    scan = lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1]
    return [np.asarray(x, np.float64) for x in jax.jit(scan)(params)]


def _sched(t):
    return 0.02 * 0.99**t


CASES = [
    dict(learning_rate=0.01),
    dict(learning_rate=_sched, b1=0.9, b2=0.95, weight_decay=0.01, gamma=0.05,
         update_interval=3),
    dict(learning_rate=0.005, gamma=1.0, eps=1.0, clip_threshold=None,
         update_interval=1, weight_decay=0.0),
]  # fmt: skip


@pytest.mark.parametrize("kwargs", CASES, ids=range(len(CASES)))
def test_matches_numpy_reference_on_a_separable_objective(kwargs):
    traj = _run(sophia(**kwargs), gradtx.apply_updates, _separable)
    ref = RSo.Sophia(**kwargs, hessian_diag=_np_hessian_diag)
    err = _rel_err(traj, _run_numpy(ref))
    assert err <= RTOL, f"vs NumPy reference: {err:.2e}"


def test_matches_optax_with_the_same_default_key():
    kwargs = CASES[1]
    ours = _run(sophia(**kwargs), gradtx.apply_updates, _coupled)
    theirs = _run(optax.contrib.sophia(**kwargs), optax.apply_updates, _coupled)
    assert _rel_err(ours, theirs) <= RTOL


def test_matches_optax_with_a_given_key_and_mask():
    key = jax.random.PRNGKey(42)
    mask = [True, False, True, False]
    kw = dict(learning_rate=0.01, weight_decay=0.1, weight_decay_mask=mask,
              update_interval=2)  # fmt: skip
    ours = sophia(**kw, hessian_diagonal_fn=hutchinson_estimator_diag_hessian(key))
    est = optax.contrib.hutchinson_estimator_diag_hessian(key)
    theirs = optax.contrib.sophia(**kw, hessian_diagonal_fn=est)
    a = _run(ours, gradtx.apply_updates, _coupled)
    b = _run(theirs, optax.apply_updates, _coupled)
    assert _rel_err(a, b) <= RTOL


def test_inject_hyperparams_takes_update_interval_traced_or_changed():
    # inject_hyperparams passes `update_interval` (and the win-rate interval)
    # as JAX arrays, traced under jit; Optax accepts them.
    kwargs = dict(CASES[1], learning_rate=0.02)
    plain = _run(sophia(**kwargs), gradtx.apply_updates, _coupled)
    injected = gradtx.inject_hyperparams(sophia)(**kwargs)
    ours = _run(injected, gradtx.apply_updates, _coupled)
    theirs = _run(
        optax.inject_hyperparams(optax.contrib.sophia)(**kwargs),
        optax.apply_updates,
        _coupled,
    )
    assert _rel_err(ours, plain) <= RTOL
    assert _rel_err(ours, theirs) <= RTOL
    # Changed between steps without rebuilding: every step refreshes now.
    p = [jnp.ones(3, DTYPE)]
    state = injected.init(p)
    state.hyperparams["update_interval"] = jnp.asarray(1)
    step = jax.jit(lambda s: injected.update(p, s, p, obj_fn=_coupled)[1])
    for _ in range(3):
        before = state.inner_state[0].hessian_fn_state
        state = step(state)
        assert not np.array_equal(before.key, state.inner_state[0].hessian_fn_state.key)


def test_an_array_update_interval_is_still_checked():
    with pytest.raises(ValueError, match="update_interval"):
        scale_by_sophia(update_interval=jnp.asarray(0))
    with pytest.raises(TypeError, match="update_interval"):
        scale_by_sophia(update_interval=jnp.ones(2, jnp.int32))


# ---------------------------------------------------------- the estimator


def test_estimator_equals_optax_and_advances_the_key():
    params = {"a": jnp.linspace(-1.0, 1.0, 5), "b": jnp.ones((2, 2))}
    f = lambda p: _coupled([p["a"], p["b"]])
    ours, theirs = (
        hutchinson_estimator_diag_hessian(),
        (optax.contrib.hutchinson_estimator_diag_hessian()),
    )
    so, st = ours.init(params), theirs.init(params)
    up_o = jax.jit(lambda s: ours.update(None, s, params, obj_fn=f))
    up_t = jax.jit(lambda s: theirs.update(None, s, params, obj_fn=f))
    for _ in range(3):
        (ho, so), (ht, st) = up_o(so), up_t(st)
        for x, y in zip(jax.tree.leaves(ho), jax.tree.leaves(ht), strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(so.key, st.key)
    assert not np.array_equal(so.key, ours.init(params).key)


def test_estimator_is_unbiased():
    """Mean of 4000 probes vs diag(A) for a dense A: stderr ~ 0.4/sqrt(4000)."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(6, 6)))
    a = a + a.T
    f = lambda x: 0.5 * x @ a @ x
    est = hutchinson_estimator_diag_hessian()

    def one(key):
        return est.update(None, HutchinsonState(key), jnp.zeros(6), obj_fn=f)[0]

    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    mean = jnp.mean(jax.jit(jax.vmap(one))(keys), 0)
    np.testing.assert_allclose(mean, jnp.diag(a), atol=0.15)


def test_estimator_handles_mixed_dtypes():
    """Optax casts every probe to the lowest dtype, which jvp rejects here."""
    params = [jnp.ones(3, jnp.float32), jnp.ones(2, jnp.bfloat16)]
    f = lambda p: jnp.sum(p[0] ** 2) + jnp.sum(p[1].astype(jnp.float32) ** 2)
    est = hutchinson_estimator_diag_hessian()
    h, _ = jax.jit(lambda p: est.update(None, est.init(p), p, obj_fn=f))(params)
    assert [x.dtype for x in h] == [jnp.float32, jnp.bfloat16]
    np.testing.assert_array_equal(h[0], 2.0)


def test_estimator_needs_params_and_obj_fn():
    est = hutchinson_estimator_diag_hessian()
    s = est.init(jnp.ones(2))
    with pytest.raises(ValueError, match="obj_fn"):
        est.update(jnp.ones(2), s, jnp.ones(2))
    with pytest.raises(ValueError, match="params"):
        est.update(jnp.ones(2), s, obj_fn=jnp.sum)
    with pytest.raises(ValueError, match="obj_fn"):
        sophia(0.1).update(jnp.ones(2), sophia(0.1).init(jnp.ones(2)), jnp.ones(2))


# ------------------------------------------------------- sophia's schedule


def test_hessian_is_refreshed_every_update_interval_steps():
    tx = scale_by_sophia(update_interval=3)
    p = jnp.array([0.3, -0.2])
    f = lambda x: jnp.sum(x**4 + x**2)
    s, changed = tx.init(p), []
    step = jax.jit(lambda s, p: tx.update(jax.grad(f)(p), s, p, obj_fn=f)[1])
    for _ in range(7):
        nu = s.nu
        s = step(s, p)
        changed.append(not np.array_equal(nu, s.nu))
        p = p * 0.9
    assert changed == [True, False, False, True, False, False, True]


def test_first_step_is_the_clipped_sign():
    tx = scale_by_sophia(clip_threshold=0.5)
    p = jnp.array([1.0, -2.0, 0.0])
    u, _ = tx.update(jnp.array([3.0, -1e-6, 0.0]), tx.init(p), p, obj_fn=jnp.sum)
    np.testing.assert_array_equal(u, [0.5, -0.5, 0.0])


def test_verbose_prints_the_win_rate(capfd):
    tx = scale_by_sophia(verbose=True, print_win_rate_every_n_steps=1)
    p = jnp.ones(4)
    jax.block_until_ready(tx.update(p, tx.init(p), p, obj_fn=jnp.sum))
    assert "win rate" in capfd.readouterr().out
    off = scale_by_sophia(verbose=True)  # every 0 steps: off, not `count % 0`
    u, _ = off.update(p, off.init(p), p, obj_fn=jnp.sum)
    assert bool(jnp.all(jnp.isfinite(u)))


# ------------------------------------------------------ signatures and state


@pytest.mark.parametrize(
    "ours", [sophia, scale_by_sophia, hutchinson_estimator_diag_hessian],
    ids=lambda f: f.__name__,
)  # fmt: skip
def test_signature_matches_optax(ours):
    a = inspect.signature(ours).parameters
    b = inspect.signature(getattr(optax.contrib._sophia, ours.__name__)).parameters
    assert list(a) == list(b)
    for k in a:
        assert a[k].kind == b[k].kind, k
        if k != "hessian_diagonal_fn":  # an estimator instance: equal, not ==
            assert a[k].default == b[k].default, k


def test_state_fields_shapes_and_dtypes_match_optax():
    p = [jnp.ones(3), jnp.zeros(()), jnp.ones((2, 2)), jnp.zeros(0)]
    ours = sophia(0.1, mu_dtype=jnp.bfloat16).init(p)
    theirs = optax.contrib.sophia(0.1, mu_dtype=jnp.bfloat16).init(p)
    assert type(ours[0]).__name__ == "SophiaState"
    assert ours[0]._fields == optax.contrib.SophiaState._fields
    assert ours[0].hessian_fn_state._fields == HutchinsonState._fields
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)
    assert SophiaState._fields == optax.contrib.SophiaState._fields


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_state_is_stable_and_update_dtype_follows_gradient(dtype):
    tx = sophia(0.1, update_interval=2)
    w = jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)
    params = [w, jnp.full((), 0.5, dtype), jnp.zeros((0,), dtype)]
    f = lambda p: sum(jnp.sum(x.astype(jnp.float32) ** 4) for x in p)
    grads = jax.grad(f)(params)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=f))
    s0 = tx.init(params)
    u, s1 = step(grads, s0, params)
    assert _signature(s0) == _signature(s1)
    for x, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads), strict=True):
        assert x.dtype == g.dtype
        assert bool(jnp.all(jnp.isfinite(x)))
    _, s2 = step(grads, s1, params)
    assert _signature(s2) == _signature(s0)


def test_mu_dtype_is_kept():
    tx = sophia(1e-3, mu_dtype=jnp.bfloat16)
    p = jnp.ones(3)
    _, s = tx.update(jnp.ones(3), tx.init(p), p, obj_fn=jnp.sum)
    assert s[0].mu.dtype == jnp.bfloat16


# ------------------------------------------------------------------ bad input

BAD = [
    (sophia, dict(learning_rate=-0.1), "learning_rate"),
    (sophia, dict(learning_rate=None), "learning_rate"),
    (sophia, dict(learning_rate=0.1, b1=1.0), "b1"),
    (sophia, dict(learning_rate=0.1, b2=-0.1), "b2"),
    (sophia, dict(learning_rate=0.1, eps=0.0), "eps"),
    (sophia, dict(learning_rate=0.1, weight_decay=-1.0), "weight_decay"),
    (sophia, dict(learning_rate=0.1, gamma=-0.01), "gamma"),
    (sophia, dict(learning_rate=0.1, clip_threshold=0.0), "clip_threshold"),
    (sophia, dict(learning_rate=0.1, update_interval=0), "update_interval"),
    (sophia, dict(learning_rate=0.1, mu_dtype=jnp.int32), "mu_dtype"),
    (scale_by_sophia, dict(print_win_rate_every_n_steps=-1), "print_win_rate"),
    (scale_by_sophia, dict(gamma=float("nan")), "gamma"),
]


@pytest.mark.parametrize(
    "factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


def test_bad_types_raise_naming_the_argument():
    with pytest.raises(TypeError, match="hessian_diagonal_fn"):
        scale_by_sophia(hessian_diagonal_fn=jnp.sum)
    with pytest.raises(TypeError, match="verbose"):
        scale_by_sophia(verbose="yes")
    with pytest.raises(TypeError, match="update_interval"):
        scale_by_sophia(update_interval=2.5)


def test_update_needs_params():
    tx = scale_by_sophia()
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), obj_fn=jnp.sum)
