"""D-Adapted AdamW (gradtx.contrib.dadapt_adamw): Optax, NumPy reference, bad input.

The trajectory test follows :mod:`test_reference`: closed loop over 120 steps
from the same start, parameters compared at every step, norm-wise relative
error below 1e-6 in float32 against Optax, and against the float64 reference
of :mod:`reference_dadapt` (params stored in float32 between steps).

Measured exceptions, against the float64 reference only (gradtx equals Optax
to 1e-6 in every case), caused by the float32 format itself: float32 rounds
``β2^t ≈ 1`` to ~6e-8, so the bias correction ``1 − β2^t`` of the first steps
is ~6e-8 / (t·(1 − β2)) relative off (as for Adam in :mod:`test_reference`).
In Adam that error leaves with the step it was made in; here it enters
``δ_t``, hence the numerator ``n_t`` and the estimate ``d_t``, which only
grows and scales every later step, so the error of the first ten steps stays
in the trajectory (``d`` measured 6e-5 relative off at step 30, where it stops
growing, and 2.3e-6 after):

* ``β2 = 0.999``: measured 3.4e-5, bound ``B2_0999_TOLERANCE`` = 5e-5;
* ``β2 = 0.99``: measured 1.9e-6, bound ``B2_099_TOLERANCE`` = 3e-6.

In float64 (``JAX_ENABLE_X64=1``) every case matches the reference to 1e-10.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_dadapt as RD
from test_reference import X64, _rel_err, _run_jax, _run_numpy

import gradtx
from gradtx.contrib import DAdaptAdamWState, dadapt_adamw

RTOL = 1e-10 if X64 else 1e-6
B2_0999_TOLERANCE = 5e-5
B2_099_TOLERANCE = 3e-6


def _sched(t):
    return 0.5 + 0.5 * 0.98**t


CASES = [
    dict(),
    dict(betas=(0.8, 0.99), eps=1e-6, estim_lr0=1e-3),
    dict(learning_rate=_sched, betas=(0.9, 0.99), weight_decay=0.1),
    dict(learning_rate=0.5, estim_lr0=1e-2, weight_decay=1e-2),
]


@pytest.mark.parametrize("kwargs", CASES, ids=[str(i) for i in range(len(CASES))])
def test_matches_numpy_reference_and_optax(kwargs):
    traj = _run_jax(dadapt_adamw(**kwargs), gradtx.apply_updates)
    theirs = _run_jax(optax.contrib.dadapt_adamw(**kwargs), optax.apply_updates)
    err_optax = _rel_err(traj, theirs)
    err_ref = _rel_err(traj, _run_numpy(RD.DadaptAdamw(**kwargs)))
    b2 = kwargs.get("betas", (0.9, 0.999))[1]
    tol = RTOL if X64 else (B2_0999_TOLERANCE if b2 == 0.999 else B2_099_TOLERANCE)
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= tol, f"vs NumPy reference: {err_ref:.2e}"


def test_signature_matches_optax():
    ours = inspect.signature(dadapt_adamw).parameters
    theirs = inspect.signature(optax.contrib.dadapt_adamw).parameters
    assert list(ours) == list(theirs)
    for k in theirs:
        assert ours[k].default == theirs[k].default, k
        assert ours[k].kind == theirs[k].kind, k


def test_state_fields_match_optax():
    p = [jnp.ones(3), jnp.zeros(()), jnp.ones((2, 2)), jnp.zeros(0)]
    ours, theirs = dadapt_adamw().init(p), optax.contrib.dadapt_adamw().init(p)
    assert type(ours).__name__ == type(theirs).__name__ == "DAdaptAdamWState"
    assert ours._fields == theirs._fields
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(betas=(1.0, 0.999)), "betas"),
        (dict(betas=(0.9, -0.1)), "betas"),
        (dict(betas=(0.9,)), "betas"),
        (dict(eps=-1e-8), "eps"),
        (dict(estim_lr0=0.0), "estim_lr0"),
        (dict(weight_decay=-0.1), "weight_decay"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=arg) as info:
        dadapt_adamw(**kwargs)
    assert "dadapt_adamw" in str(info.value)


def test_update_without_params_and_bad_state_raise():
    tx, p = dadapt_adamw(), jnp.ones(3)
    with pytest.raises(ValueError, match="params"):
        tx.update(p, tx.init(p))
    with pytest.raises(ValueError, match="DAdaptAdamWState"):
        tx.update(p, gradtx.adam(0.1).init(p), p)
    with pytest.raises(ValueError, match="shape"):
        tx.update(jnp.ones(4), tx.init(p), jnp.ones(4))


def test_low_precision_params_keep_a_float32_estimate():
    p = {"w": jnp.ones((2, 2), jnp.bfloat16)}
    tx = dadapt_adamw()
    s = tx.init(p)
    assert isinstance(s, DAdaptAdamWState) and s.estim_lr.dtype == jnp.float32
    u, s1 = jax.jit(tx.update)(jax.tree.map(lambda x: x * 0.5, p), s, p)
    assert u["w"].dtype == jnp.bfloat16 and s1.exp_avg["w"].dtype == jnp.bfloat16
    dtypes = lambda t: [x.dtype for x in jax.tree.leaves(t)]
    assert dtypes(s1) == dtypes(s)


def test_zero_gradients_keep_the_estimate_finite():
    # Optax gives d = NaN (0 / 0) here; gradtx keeps d.
    tx, p = dadapt_adamw(), jnp.ones(3)
    u, s = tx.update(jnp.zeros(3), tx.init(p), p)
    assert float(s.estim_lr) == pytest.approx(1e-6)
    assert np.all(np.asarray(u) == 0)
