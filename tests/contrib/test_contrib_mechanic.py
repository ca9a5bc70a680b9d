"""Mechanic against Optax and the paper's rule (reference_contrib_mechanic).

Closed loop over 120 steps (tests/test_reference.py's problem and error): the
norm-wise relative error must stay below 1e-6 in float32, against Optax
(wrapping Optax's own base optimizer) and against the float64 NumPy reference
(wrapping the reference base optimizer). ``mechanize`` is a wrapper with no
learning rate, so it is not in the optimizer table (tests/optimizers.py); the
table's generic properties are run here on two wrapped optimizers.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import optax
import pytest
import reference as R
import reference_contrib_mechanic as RM
import test_properties as props
from contrib_checks import (
    RTOL,
    assert_close_to_optax_and_reference,
    assert_raises_naming,
    assert_same_signature,
    complex_error,
    complex_start,
    complex_trajectory,
    reference_complex_trajectory,
)
from reference_contrib_common import ScaleByLearningRate

import gradtx
from gradtx.contrib import MechanicState, mechanize

X64 = bool(jax.config.jax_enable_x64)
CASES = [
    ("sgd", dict(learning_rate=0.1), dict(s_init=0.1)),
    ("sgd", dict(learning_rate=0.1), dict(weight_decay=0.0, num_betas=4, s_init=0.1)),
    ("adam", dict(learning_rate=0.1, b2=0.99), dict(weight_decay=0.1, s_init=1e-2)),
]
# Against the float64 reference in float32, 1e-6 is out of reach: Mechanic
# recomputes Δ = (θ_0 − θ_t)/S from the params, so their float32 rounding
# enters every step, and the bets amplify it: the reference itself moves by
# 2.8e-5 to 6e-4 on these cases (up to 0.35 with fewer betas) when its params
# are stored in float32 rather than float64 between steps (5e-1 with the
# default s_init = 1e-6, whose first steps are below float32 resolution).
# gradtx equals Optax bit for bit in float32; the float64 run (next test)
# matches the reference to 1e-10.
F32_REFERENCE_RTOL = 1e-3


@pytest.mark.parametrize("base,base_kwargs,kwargs", CASES, ids=["sgd", "sgd_4", "adam"])
def test_trajectory_matches_optax_and_reference(base, base_kwargs, kwargs):
    ours = mechanize(getattr(gradtx, base)(**base_kwargs), **kwargs)
    theirs = optax.contrib.mechanize(getattr(optax, base)(**base_kwargs), **kwargs)
    ref = RM.Mechanize(R.REFERENCES[base](**base_kwargs), **kwargs)
    rtol = RTOL if X64 else F32_REFERENCE_RTOL
    assert_close_to_optax_and_reference(ours, theirs, ref, rtol_ref=rtol)


@pytest.mark.skipif(X64, reason="this is the float64 run")
def test_trajectories_in_float64():
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "trajectory_matches"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_signature_and_state_match_optax():
    assert_same_signature(mechanize, optax.contrib.mechanize)
    assert MechanicState._fields == optax.contrib.MechanicState._fields
    params = {"w": jnp.ones(3)}
    ours, theirs = mechanize(gradtx.adam(1.0)), optax.contrib.mechanize(optax.adam(1.0))
    a, b = ours.init(params), theirs.init(params)
    assert a.r.shape == b.r.shape == (6,) and a.s.dtype == b.s.dtype
    assert isinstance(a.base_optimizer_state[0], gradtx.ScaleByAdamState)


def test_extra_arguments_reach_the_base_optimizer():
    seen = {}

    def update(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    tx = mechanize(gradtx.GradientTransformation(lambda p: (), update))
    p = jnp.ones(2)
    tx.update(p, tx.init(p), p, value=3.0)
    assert seen == {"value": 3.0}


@pytest.mark.parametrize(
    "factory,argument,error",
    [
        (
            lambda: mechanize(gradtx.sgd(1.0), weight_decay=-1.0),
            "weight_decay",
            ValueError,
        ),
        (lambda: mechanize(gradtx.sgd(1.0), eps=0.0), "eps", ValueError),
        (lambda: mechanize(gradtx.sgd(1.0), s_init=0.0), "s_init", ValueError),
        (lambda: mechanize(gradtx.sgd(1.0), num_betas=0), "num_betas", ValueError),
        (lambda: mechanize(gradtx.sgd(1.0), num_betas=2.5), "num_betas", TypeError),
        (lambda: mechanize(0.1), "base_optimizer", TypeError),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, argument, error):
    assert_raises_naming(factory, argument, error)


def test_bad_trees_and_missing_params_raise():
    tx = mechanize(gradtx.sgd(1.0))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state)
    with pytest.raises(ValueError, match=r"\['w'\]"):
        tx.update({"w": jnp.ones(4)}, state, {"w": jnp.ones(4)})


def test_complex_leaves_match_the_reference():
    start = complex_start()
    # s_init = 0.1: see F32_REFERENCE_RTOL (4.7e-2 with the default 1e-6).
    ours = complex_trajectory(mechanize(gradtx.sgd(0.1), s_init=0.1), start)
    ref_tx = RM.Mechanize(ScaleByLearningRate(0.1), s_init=0.1)
    ref = reference_complex_trajectory(ref_tx, start)
    assert complex_error(ours, ref, start) < 5e-5


# The optimizer table's properties (tests/test_properties.py), on two bases.
TABLE = [
    ("mechanize_sgd", "mechanize", dict(base_optimizer=gradtx.sgd(1.0))),
    (
        "mechanize_adam",
        "mechanize",
        dict(base_optimizer=gradtx.adam(1.0), weight_decay=0.0),
    ),
]
PROPERTIES = [
    props.test_jitted_scan_matches_eager_and_state_is_a_stable_carry,
    props.test_update_dtype_follows_a_bfloat16_gradient_and_edge_leaves_pass,
    props.test_vmap_over_parameter_trees,
]


@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.__name__[5:40] for p in PROPERTIES])
@pytest.mark.parametrize("id_,name,kwargs", TABLE, ids=[t[0] for t in TABLE])
def test_table_properties(prop, id_, name, kwargs):
    prop(id_, name, kwargs)


@pytest.mark.parametrize("id_,name,kwargs", TABLE, ids=[t[0] for t in TABLE])
def test_converges_on_quadratic_and_tenfold_on_rosenbrock(id_, name, kwargs):
    # As the table's SLOW_ON_ROSENBROCK entries: Mechanic reaches the valley
    # but crawls along it (0.21 to 0.29 left of 24.2 after 5000 steps).
    opt = mechanize(**kwargs)
    q0 = {"w": jnp.ones(8), "b": jnp.full((3,), -2.0)}
    q = jax.jit(lambda p: props._minimise(opt, props._quadratic, p, 2000))(q0)
    assert float(q) < 1e-2 * float(props._quadratic(q0))
    start = {"xy": jnp.array([-1.2, 1.0])}
    r = jax.jit(lambda p: props._minimise(opt, props._rosenbrock, p, 5000))(start)
    assert float(r) < 2.42
