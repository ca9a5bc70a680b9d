"""split_real_and_imaginary (:mod:`gradtx.contrib.complex_split`): Optax, reference.

Closed loop over 120 steps (as in :mod:`test_reference`, norm-wise relative
error below 1e-6 in float32, over the real and imaginary parts) on a tree of
complex leaves of rank 0, 1 and 2 and a real leaf, with the complex field
``g(z) = (z − 0.5) + 0.5·sin(3z)``; the inner optimizers are gradtx's (and
Optax's) Adam, sign-SGD (which rejects complex leaves unless split) and a
global-norm clip (whose norm then runs over the real pairs). The float64
reference of :mod:`reference_complex_split` runs :mod:`reference`'s
optimizers on the real pairs.

Not in the generic ``OPTIMIZERS`` table: a wrapper, not an optimizer.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_complex_split as RCS

import gradtx
from gradtx.contrib import SplitRealAndImaginaryState, split_real_and_imaginary
from gradtx.contrib.complex_split import SplitRealAndImaginaryArrays

STEPS = 120
RTOL = 1e-6


def _start():
    rng = np.random.default_rng(3)
    c = lambda *s: (2.0 + rng.uniform(size=s)) + 1j * (-1.5 - rng.uniform(size=s))
    return [
        c(3).astype(np.complex64),
        c(2, 2).astype(np.complex64),
        np.complex64(c()),
        (2.0 + rng.uniform(size=2)).astype(np.float32),
    ]


def _grad(params, sin):
    return [(p - 0.5) + 0.5 * sin(3.0 * p) for p in params]


def _run_jax(tx, apply_updates):
    def step(carry, _):
        p, s = carry
        u, s = tx.update(_grad(p, jnp.sin), s, p)
        p = apply_updates(p, u)
        return (p, s), p

    params = [jnp.asarray(p) for p in _start()]
    run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1])
    return [np.asarray(x) for x in run(params)]


def _run_numpy(ref):
    params, traj = [np.asarray(p) for p in _start()], []
    for _ in range(STEPS):
        u = ref.update(_grad(params, np.sin), params)
        params = [(p + v).astype(p.dtype) for p, v in zip(params, u, strict=True)]
        traj.append(params)
    return [np.stack([q[i] for q in traj]) for i in range(len(params))]


def _rel_err(a, b):
    parts = lambda xs: [f(x) for x in xs for f in (np.real, np.imag) if f(x).any()]
    return max(
        np.max(np.abs(x - y)) / np.max(np.abs(y))
        for x, y in zip(parts(a), parts(b), strict=True)
    )


INNER = {
    # b2 = 0.99: float32's 1 − 0.999^t is 1e-5 off (see test_reference)
    "adam": (lambda lib: lib.adam(0.02, b2=0.99), lambda: R.Adam(0.02, b2=0.99)),
    "sign_sgd": (lambda lib: lib.sign_sgd(0.01), None),
    "clip_sgd": (
        lambda lib: lib.chain(lib.clip_by_global_norm(1.0), lib.sgd(0.05, 0.9)),
        lambda: R.Chain(R.ClipByGlobalNorm(1.0), R.Sgd(0.05, 0.9)),
    ),
}


@pytest.mark.parametrize("name", INNER)
def test_matches_numpy_reference_and_optax(name):
    make, make_ref = INNER[name]
    traj = _run_jax(split_real_and_imaginary(make(gradtx)), gradtx.apply_updates)
    theirs = _run_jax(
        optax.contrib.split_real_and_imaginary(make(optax)), optax.apply_updates
    )
    assert _rel_err(traj, theirs) <= RTOL, f"vs Optax: {_rel_err(traj, theirs):.2e}"
    if make_ref is not None:  # sign-SGD: Optax only (no reference of its own)
        ref = _run_numpy(RCS.SplitRealAndImaginary(make_ref()))
        assert _rel_err(traj, ref) <= RTOL, f"vs reference: {_rel_err(traj, ref):.2e}"


def test_state_is_optaxs_and_real_leaves_pass_through():
    params = {"z": jnp.ones(2, jnp.complex64), "r": jnp.ones(3)}
    ours = split_real_and_imaginary(gradtx.adam(0.1)).init(params)
    theirs = optax.contrib.split_real_and_imaginary(optax.adam(0.1)).init(params)
    assert isinstance(ours, SplitRealAndImaginaryState)
    assert ours._fields == theirs._fields == ("inner_state",)
    mu = ours.inner_state[0].mu
    assert isinstance(mu["z"], SplitRealAndImaginaryArrays)
    assert mu["z"]._fields == theirs.inner_state[0].mu["z"]._fields
    assert mu["z"].real.dtype == jnp.float32 and mu["r"].shape == (3,)


def test_signature_matches_optax_and_bad_inner_raises():
    a = inspect.signature(split_real_and_imaginary).parameters
    b = inspect.signature(optax.contrib.split_real_and_imaginary).parameters
    assert list(a) == list(b)
    with pytest.raises(TypeError, match="inner"):
        split_real_and_imaginary(0.1)
    tx = split_real_and_imaginary(gradtx.adam(0.1))
    with pytest.raises(ValueError, match="SplitRealAndImaginaryState"):
        tx.update(jnp.ones(2), gradtx.adam(0.1).init(jnp.ones(2)))


def test_extra_args_reach_the_inner_optimizer():
    # polyak_sgd needs value=; Optax's wrapper drops extra arguments.
    tx = split_real_and_imaginary(gradtx.polyak_sgd(max_learning_rate=1.0))
    z = jnp.array([1.0 + 1.0j])
    u, _ = tx.update(2 * z, tx.init(z), z, value=2.0)  # f = |z|², |g|² = 8
    np.testing.assert_allclose(np.asarray(u), [-0.5 - 0.5j], rtol=1e-6)
