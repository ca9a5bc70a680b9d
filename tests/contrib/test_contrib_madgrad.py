"""MADGRAD against Optax and the paper's rule (reference_contrib_madgrad).

Closed loop over 120 steps (tests/test_reference.py's problem and error): the
norm-wise relative error must stay below 1e-6 in float32, against Optax and
against the float64 NumPy reference; complex leaves (|g|² in the sum of
squares) against the reference on complex128 arrays.
"""

import jax.numpy as jnp
import optax
import pytest
import reference_contrib_madgrad as RM
from contrib_checks import (
    assert_close_to_optax_and_reference,
    assert_raises_naming,
    assert_same_signature,
    complex_error,
    complex_start,
    complex_trajectory,
    reference_complex_trajectory,
)

from gradtx.contrib import MadgradState, madgrad, scale_by_madgrad


def _sched(t):
    return 0.05 * 0.99**t


CASES = [
    ("scale_by_madgrad", dict(learning_rate=0.05)),
    ("madgrad", dict(learning_rate=0.05)),
    ("madgrad", dict(learning_rate=_sched, momentum=0.5, weight_decay=0.1)),
    ("madgrad", dict(learning_rate=0.02, momentum=0.0, eps=1e-3)),
]
OURS = {"madgrad": madgrad, "scale_by_madgrad": scale_by_madgrad}
THEIRS = {
    "madgrad": optax.contrib.madgrad,
    "scale_by_madgrad": optax.contrib.scale_by_madgrad,
}


def _ref(name, kwargs):
    return RM.madgrad(**kwargs) if name == "madgrad" else RM.ScaleByMadgrad(**kwargs)


@pytest.mark.parametrize(
    "name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_trajectory_matches_optax_and_reference(name, kwargs):
    assert_close_to_optax_and_reference(
        OURS[name](**kwargs), THEIRS[name](**kwargs), _ref(name, kwargs)
    )


@pytest.mark.parametrize("name", list(OURS))
def test_signature_matches_optax(name):
    assert_same_signature(OURS[name], THEIRS[name])


def test_state_fields_match_optax():
    assert MadgradState._fields == optax.contrib.MadgradState._fields
    assert isinstance(madgrad(0.1).init({"w": jnp.ones(2)})[1], MadgradState)


@pytest.mark.parametrize(
    "factory,argument",
    [
        (lambda: madgrad(-0.1), "learning_rate"),
        (lambda: madgrad(0.1, momentum=1.0), "momentum"),
        (lambda: madgrad(0.1, momentum=-0.1), "momentum"),
        (lambda: madgrad(0.1, eps=0.0), "eps"),
        (lambda: madgrad(0.1, weight_decay=-1.0), "weight_decay"),
        (lambda: scale_by_madgrad(0.1, momentum=2.0), "momentum"),
        (lambda: scale_by_madgrad(-1.0), "learning_rate"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, argument):
    assert_raises_naming(factory, argument)


def test_bad_trees_and_missing_params_raise():
    tx = scale_by_madgrad(0.1)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state)
    with pytest.raises(ValueError, match=r"\['w'\]"):
        tx.update({"w": jnp.ones(4)}, state, {"w": jnp.ones(4)})


def test_complex_leaves_match_the_reference():
    start = complex_start()
    ours = complex_trajectory(madgrad(0.05), start)
    ref = reference_complex_trajectory(RM.madgrad(0.05), start)
    assert complex_error(ours, ref, start) < 5e-5
