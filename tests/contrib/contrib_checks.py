"""Shared checks for the tests of :mod:`gradtx.contrib` (not a test module).

Closed-loop trajectories use the problem, the step count (120) and the
norm-wise relative error of ``tests/test_reference.py``; complex leaves are
checked on the problem of ``tests/test_complex.py``.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_reference import X64, _rel_err, _run_jax, _run_numpy

import gradtx

RTOL = 1e-10 if X64 else 1e-6
# Against the float64 NumPy references: float32 trajectories stay within 1e-6
# at XLA:CPU's default LLVM level, within 3e-6 at the -O0 the suite compiles
# at (tests/conftest.py: no fused multiply-adds, so other roundings).
RTOL_REF = 1e-10 if X64 else 3e-6


def errors(ours, theirs, ref):
    """(error vs Optax, error vs the NumPy reference) of ``ours``' trajectory."""
    traj = _run_jax(ours, gradtx.apply_updates)
    err_optax = _rel_err(traj, _run_jax(theirs, optax.apply_updates))
    err_ref = _rel_err(traj, _run_numpy(ref))
    return err_optax, err_ref


def assert_close_to_optax_and_reference(ours, theirs, ref, rtol_ref=RTOL_REF):
    err_optax, err_ref = errors(ours, theirs, ref)
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= rtol_ref, f"vs NumPy reference: {err_ref:.2e}"


def assert_same_signature(ours, theirs):
    """Same parameter names, order, kinds and defaults as Optax's function."""

    def params(f):
        return [
            (p.name, p.kind, p.default)
            for p in inspect.signature(f).parameters.values()
        ]

    assert params(ours) == params(theirs)


def assert_raises_naming(fn, argument, error=ValueError):
    with pytest.raises(error) as info:
        fn()
    assert f"`{argument}`" in str(info.value), str(info.value)


# ------------------------------------------------------------- complex leaves


def complex_start():
    rng = np.random.default_rng(11)
    u = lambda *s: rng.uniform(0.0, 1.0, size=s)
    c = lambda *s: (2.0 + u(*s)) + 1j * (-1.5 - u(*s))
    return {
        "r": jnp.asarray(2.0 + u(2), jnp.float32),
        "s": jnp.asarray(c(), jnp.complex64),
        "w": jnp.asarray(c(3, 2), jnp.complex64),
    }


def _complex_grad(z):
    if not jnp.iscomplexobj(z):
        return (z - 0.5) + 0.5 * jnp.sin(3.0 * z)
    return (z - 0.5) + 0.5 * jnp.sin(3.0 * z.real) + 0.25j * z.imag


def complex_trajectory(tx, params, steps=25):
    """``tx`` in a closed loop on complex (and real) leaves; the params at
    every step, one jitted scan."""

    def body(carry, _):
        p, s = carry
        g = jax.tree.map(_complex_grad, p)
        u, s = tx.update(g, s, p)
        p = gradtx.apply_updates(p, u)
        return (p, s), p

    run = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps))
    return jax.tree.map(np.asarray, run(params)[1])


def reference_complex_trajectory(ref, params, steps=25):
    """The reference (complex128 NumPy leaves) on the same problem."""
    leaves, treedef = jax.tree.flatten(params)
    p = [np.asarray(x).astype(np.complex128 if np.iscomplexobj(x) else np.float64)
         for x in leaves]  # fmt: skip
    traj = []
    for _ in range(steps):
        g = [(x - 0.5) + 0.5 * np.sin(3.0 * x.real) + 0.25j * x.imag for x in p]
        g = [gi if np.iscomplexobj(x) else gi.real for gi, x in zip(g, p, strict=True)]
        u = ref.update(g, p)
        p = [x + ui for x, ui in zip(p, u, strict=True)]
        traj.append(p)
    return jax.tree.unflatten(treedef, [np.stack(c) for c in zip(*traj, strict=True)])


def complex_error(ours, ref, start):
    """Max over leaves of max_t |Δ − Δ_ref| / max_t |Δ_ref|, Δ = θ(t) − θ(0)."""
    errs = []
    for a, b, x0 in zip(*map(jax.tree.leaves, (ours, ref, start)), strict=True):
        da, db = a - np.asarray(x0), b - np.asarray(x0)
        errs.append(np.max(np.abs(da - db)) / np.max(np.abs(db)))
    return max(errs)
