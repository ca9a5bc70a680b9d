"""SAM (:mod:`gradtx.contrib.sharpness_aware`): Optax, NumPy reference, bad input.

Closed loop over 120 calls as in :mod:`test_reference` (norm-wise relative
error below 1e-6 in float32), in transparent mode: the params the caller sees
alternate between adversarial points and true iterates, and are compared at
every call. gradtx's SAM wraps gradtx optimizers and Optax's wraps Optax's
(the adversarial optimizer normalises, then takes an SGD step of size ρ); the
float64 reference of :mod:`reference_sam` follows the paper. Opaque mode is
checked against Optax and against the transparent trajectory (the true
iterates of one equal every ``k``-th params of the other).

With ``sync_period=1`` gradtx's SAM is its outer optimizer (Optax's is not:
its cache is one call stale, see :func:`gradtx.contrib.sam`); that case is
checked against the outer optimizer and the reference, and its distance from
Optax is pinned.

Not in the generic ``OPTIMIZERS`` table: SAM is a wrapper of two optimizers,
not an alias with a learning rate (as ``MultiSteps`` and ``lookahead``).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_sam as RS
from test_reference import STEPS, X64, _jax_grad, _rel_err, _run_jax, _run_numpy, _start

import gradtx
from gradtx.contrib import SAMState, sam

RTOL = 1e-10 if X64 else 1e-6
DTYPE = np.float64 if X64 else np.float32


def _ours(lr, rho, momentum=None, **kwargs):
    adv = gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0), gradtx.sgd(rho))
    return sam(gradtx.sgd(lr, momentum), adv, **kwargs)


def _theirs(lr, rho, momentum=None, **kwargs):
    adv = optax.chain(optax.contrib.normalize(), optax.sgd(rho))
    return optax.contrib.sam(optax.sgd(lr, momentum), adv, **kwargs)


CASES = [
    dict(lr=0.05, rho=0.05),
    dict(lr=0.05, rho=0.1, momentum=0.9),
    dict(lr=0.02, rho=0.02, sync_period=3),
    dict(lr=0.02, rho=0.05, momentum=0.5, sync_period=1),
    dict(lr=0.05, rho=0.05, momentum=0.9, reset_state=False),
]


@pytest.mark.parametrize("kwargs", CASES, ids=[str(i) for i in range(len(CASES))])
def test_matches_numpy_reference_and_optax(kwargs):
    traj = _run_jax(_ours(**kwargs), gradtx.apply_updates)
    err_optax = _rel_err(traj, _run_jax(_theirs(**kwargs), optax.apply_updates))
    if kwargs.get("sync_period") == 1:  # Optax's stale cache (see sam's docstring)
        assert err_optax > 1e-2
        err_optax = _rel_err(
            traj, _run_jax(gradtx.sgd(kwargs["lr"], 0.5), gradtx.apply_updates)
        )
    outer = R.Sgd(kwargs["lr"], kwargs.get("momentum"))
    ref = RS.Sam(outer, kwargs["rho"], kwargs.get("sync_period", 2))
    err_ref = _rel_err(traj, _run_numpy(ref))
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= RTOL, f"vs NumPy reference: {err_ref:.2e}"


@pytest.mark.parametrize("k", [2, 3])
def test_opaque_mode_matches_optax_and_the_transparent_iterates(k):
    def run(tx, apply_updates, calls):
        p = [jnp.asarray(x, DTYPE) for x in _start()]
        s, out = tx.init(p), []
        grad_fn = lambda q, i: _jax_grad(q)
        step = jax.jit(lambda g, s, p: tx.update(g, s, p, grad_fn=grad_fn))
        for _ in range(calls):
            u, s = step(_jax_grad(p), s, p)
            p = apply_updates(p, u)
            out.append(p)
        return [np.stack([q[i] for q in out]).astype(np.float64) for i in range(4)]

    n = STEPS // k
    ours = run(
        _ours(0.05, 0.05, 0.9, sync_period=k, opaque_mode=True), gradtx.apply_updates, n
    )
    theirs = run(
        _theirs(0.05, 0.05, 0.9, sync_period=k, opaque_mode=True),
        optax.apply_updates,
        n,
    )
    assert _rel_err(ours, theirs) <= RTOL
    transparent = _run_jax(_ours(0.05, 0.05, 0.9, sync_period=k), gradtx.apply_updates)
    every_kth = [x[k - 1 :: k][:n] for x in transparent]
    assert _rel_err(ours, every_kth) <= 10 * RTOL


def test_signature_and_state_fields_match_optax():
    a = inspect.signature(sam).parameters
    b = inspect.signature(optax.contrib.sam).parameters
    assert list(a) == list(b)
    for k in b:
        assert (a[k].default, a[k].kind) == (b[k].default, b[k].kind), k
    assert SAMState._fields == optax.contrib.SAMState._fields
    p = [jnp.ones(3), jnp.zeros(())]
    s, t = _ours(0.1, 0.1, 0.9).init(p), _theirs(0.1, 0.1, 0.9).init(p)
    assert jax.tree.structure(s.cache) == jax.tree.structure(t.cache)
    assert int(s.steps_since_sync) == 0 and s.steps_since_sync.dtype == jnp.int32
    assert _ours(0.1, 0.1, opaque_mode=True).init(p).cache is None


@pytest.mark.parametrize(
    "kwargs,arg,error",
    [
        (dict(sync_period=0), "sync_period", ValueError),
        (dict(sync_period=-2), "sync_period", ValueError),
        (dict(sync_period=1.5), "sync_period", TypeError),
        (dict(reset_state="yes"), "reset_state", TypeError),
        (dict(opaque_mode=1), "opaque_mode", TypeError),
        (dict(batch_axis_name=3), "batch_axis_name", TypeError),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, arg, error):
    with pytest.raises(error, match=arg) as info:
        _ours(0.1, 0.1, **kwargs)
    assert "sam" in str(info.value)


def test_opaque_mode_without_grad_fn_and_a_foreign_state_raise():
    tx, p = _ours(0.1, 0.1, opaque_mode=True), jnp.ones(2)
    with pytest.raises(ValueError, match="grad_fn"):
        tx.update(p, tx.init(p), p)
    with pytest.raises(ValueError, match="SAMState"):
        _ours(0.1, 0.1).update(p, gradtx.sgd(0.1).init(p), p)


def test_scan_carry_and_vmap():
    tx = _ours(0.05, 0.05, 0.9)
    p = [jnp.asarray(x, jnp.float32) for x in _start()[:3]]

    def body(c, _):
        q, s = c
        u, s = tx.update(_jax_grad(q), s, q)
        return (gradtx.apply_updates(q, u), s), None

    run = jax.jit(lambda q: jax.lax.scan(body, (q, tx.init(q)), None, length=4)[0])
    _, s4 = run(p)
    sig = lambda t: [(x.shape, x.dtype) for x in jax.tree.leaves(t)]
    assert sig(s4) == sig(tx.init(p))
    batch = [jnp.stack([x, x + 0.5]) for x in p]
    vq, _ = jax.jit(jax.vmap(run))(batch)
    for a, b in zip(vq, run([x + 0.5 for x in p])[0], strict=True):
        np.testing.assert_allclose(a[1], b, rtol=1e-6)
