"""DP-SGD (:mod:`gradtx.contrib.privacy`): Optax (same keys), NumPy reference.

Closed loop over 120 steps as in :mod:`test_reference`, with per-example
gradients: a batch of four examples whose gradient field is
:mod:`test_reference`'s shifted by ``a_n``. The noise comes from the key, so
the comparison with Optax checks the key scheme as well as the arithmetic
(1e-6 norm-wise relative, float32); the float64 reference of
:mod:`reference_privacy` is given the same noise draws (made here by the same
split of the key) and checks the arithmetic from the paper. The state's key
after every step equals Optax's.

Not in the generic ``OPTIMIZERS`` table (``tests/optimizers.py``): ``update``
takes per-example gradients (a batch axis on every leaf) and returns updates
without it, which the table's property tests (gradients shaped like the
params) cannot feed. jit = eager, a stable state under ``scan``, vmap over
parameter trees and bfloat16 params are tested here instead.
"""

from __future__ import annotations

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_privacy as RP
from test_reference import STEPS, X64, _rel_err, _start

import gradtx
from gradtx.contrib import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
    dpsgd,
)

RTOL = 1e-10 if X64 else 1e-6
DTYPE = np.float64 if X64 else np.float32
SHIFTS = (-0.45, -0.15, 0.15, 0.45)


def _per_example(params, sin=jnp.sin, stack=jnp.stack):
    return [stack([(p - 0.5 - a) + 0.5 * sin(3.0 * p) for a in SHIFTS]) for p in params]


def _run_jax(tx, apply_updates):
    params = [jnp.asarray(p, DTYPE) for p in _start()]

    def step(carry, _):
        p, s = carry
        u, s = tx.update(_per_example(p), s, p)
        p = apply_updates(p, u)
        return (p, s), (p, jax.random.key_data(jax.tree.leaves(s)[0]))

    scan = lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1]
    traj, keys = jax.jit(scan)(params)
    return [np.asarray(x, np.float64) for x in traj], np.asarray(keys)


def _noise(seed):
    """Optax's draws: per step, split the key into 1 + leaves; one draw per leaf."""
    key, out = jax.random.key(seed), []
    shapes = [np.shape(p) for p in _start()]
    for _ in range(STEPS):
        key, *keys = jax.random.split(key, len(shapes) + 1)
        out.append(
            [
                np.asarray(jax.random.normal(k, s, DTYPE))
                for k, s in zip(keys, shapes, strict=True)
            ]
        )
    return out


def _run_numpy(ref, seed):
    params, traj = [p.astype(DTYPE) for p in _start()], []
    for noise in _noise(seed):
        grads = _per_example(params, np.sin, np.stack)
        updates = ref.update(grads, noise, params)
        params = [(p + u).astype(DTYPE) for p, u in zip(params, updates, strict=True)]
        traj.append(params)
    return [np.stack([p[i] for p in traj]).astype(np.float64) for i in range(4)]


CASES = [
    dict(learning_rate=0.05, l2_norm_clip=1.0, noise_multiplier=0.1, seed=0),
    dict(
        learning_rate=0.02, l2_norm_clip=2.0, noise_multiplier=0.5, seed=3, momentum=0.9
    ),
    dict(
        learning_rate=0.02,
        l2_norm_clip=4.0,
        noise_multiplier=0.3,
        seed=7,
        momentum=0.8,
        nesterov=True,
    ),
    dict(
        learning_rate=lambda t: 0.05 * 0.99**t,
        l2_norm_clip=1e3,
        noise_multiplier=1e-3,
        seed=11,
    ),  # nothing clipped
]


@pytest.mark.filterwarnings("ignore:.*seed.*:DeprecationWarning")  # Optax's seed=
@pytest.mark.parametrize("kwargs", CASES, ids=[str(i) for i in range(len(CASES))])
def test_matches_numpy_reference_and_optax_with_the_same_keys(kwargs):
    traj, keys = _run_jax(dpsgd(**kwargs), gradtx.apply_updates)
    theirs, their_keys = _run_jax(optax.contrib.dpsgd(**kwargs), optax.apply_updates)
    np.testing.assert_array_equal(keys, their_keys)
    err_optax = _rel_err(traj, theirs)
    err_ref = _rel_err(traj, _run_numpy(RP.Dpsgd(**kwargs), kwargs["seed"]))
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= RTOL, f"vs NumPy reference: {err_ref:.2e}"


def test_aggregate_equals_optax_for_typed_raw_and_integer_keys():
    grads = {"a": jnp.arange(12.0).reshape(4, 3) - 5, "b": jnp.ones((4, 2, 2))}
    for key in (jax.random.key(5), 5):
        ours = differentially_private_aggregate(1.5, 0.7, key)
        theirs = optax.contrib.differentially_private_aggregate(1.5, 0.7, key)
        s, t = ours.init(None), theirs.init(None)
        for _ in range(3):
            u, s = ours.update(grads, s)
            v, t = theirs.update(grads, t)
            for x, y in zip(jax.tree.leaves(u), jax.tree.leaves(v), strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        assert isinstance(s, DifferentiallyPrivateAggregateState)
        np.testing.assert_array_equal(
            jax.random.key_data(s.rng_key), jax.random.key_data(t.rng_key)
        )
    raw = differentially_private_aggregate(1.5, 0.7, jax.random.PRNGKey(5))
    np.testing.assert_array_equal(
        jax.random.key_data(raw.init(None).rng_key),
        jax.random.key_data(jax.random.key(5)),
    )


def test_signatures_and_state_fields_match_optax():
    for ours, theirs in [
        (dpsgd, optax.contrib.dpsgd),
        (
            differentially_private_aggregate,
            optax.contrib.differentially_private_aggregate,
        ),
    ]:
        a, b = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
        assert list(a) == list(b)
        for k in b:
            assert (a[k].default, a[k].kind) == (b[k].default, b[k].kind), k
    assert DifferentiallyPrivateAggregateState._fields == ("rng_key",)
    assert optax.contrib.DifferentiallyPrivateAggregateState._fields == ("rng_key",)


_AGG = dict(l2_norm_clip=1.0, noise_multiplier=1.0, key=0)
_DP = dict(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0)
BAD = [
    (differentially_private_aggregate, {**_AGG, "l2_norm_clip": -1.0}, "l2_norm_clip"),
    (differentially_private_aggregate, {**_AGG, "noise_multiplier": -1.0}, "noise"),
    (differentially_private_aggregate, {**_AGG, "seed": 0}, "seed"),
    (dpsgd, {**_DP, "learning_rate": -0.1}, "learning_rate"),
    (dpsgd, {**_DP, "l2_norm_clip": -1.0}, "l2_norm_clip"),
    (dpsgd, {**_DP, "noise_multiplier": -1.0}, "noise_multiplier"),
    (dpsgd, {**_DP, "momentum": 1.5}, "momentum"),
]


@pytest.mark.parametrize("factory,kwargs,arg", BAD)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # seed=, deprecated
        with pytest.raises(ValueError, match=arg) as info:
            factory(**kwargs)
    assert factory.__name__ in str(info.value)


def test_bad_updates_and_keys_raise():
    tx = dpsgd(0.1, 1.0, 0.5, seed=0)
    with pytest.raises(ValueError, match="batch"):  # leaves of different batch sizes
        tx.update({"a": jnp.ones((4, 2)), "b": jnp.ones((3,))}, tx.init(None))
    with pytest.raises(TypeError, match="key"):
        dpsgd(0.1, 1.0, 0.5, seed="zero")
    with pytest.warns(UserWarning, match="key"):
        differentially_private_aggregate(1.0, 1.0)


def test_jit_scan_vmap_and_bfloat16():
    tx = dpsgd(0.05, 1.0, 0.1, seed=0, momentum=0.9)
    params = [jnp.asarray(p, jnp.float32) for p in _start()]

    def run(p, n=3):
        s = tx.init(p)
        for _ in range(n):
            u, s = tx.update(_per_example(p), s, p)
            p = gradtx.apply_updates(p, u)
        return p, s

    eager = run(params)
    body = lambda c, _: (run_step(*c), None)

    def run_step(p, s):
        u, s = tx.update(_per_example(p), s, p)
        return gradtx.apply_updates(p, u), s

    scanned = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=3)[0])(
        params
    )
    for a, b in zip(
        jax.tree.leaves(eager[0]), jax.tree.leaves(scanned[0]), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    sig = lambda s: [(x.shape, x.dtype) for x in jax.tree.leaves(s)]
    assert sig(scanned[1]) == sig(tx.init(params))
    batch = [
        p[None].repeat(2, 0) + jnp.arange(2.0).reshape((2,) + (1,) * p.ndim)
        for p in params
    ]
    vm = jax.jit(jax.vmap(lambda p: run(p)[0]))(batch)
    for i in range(2):
        one = jax.jit(lambda p: run(p)[0])([b[i] for b in batch])
        for a, b in zip(vm, one, strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-6, atol=1e-7)
    low = [p.astype(jnp.bfloat16) for p in params]
    u, _ = jax.jit(tx.update)(_per_example(low), tx.init(low), low)
    assert all(x.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(x))) for x in u)
