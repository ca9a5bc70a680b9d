"""Bad input raises early, with a message naming the argument or leaf path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

nan = float("nan")

# (factory, kwargs, exception, words the message must contain)
BAD_HYPERPARAMETERS = [
    (gradtx.sgd, dict(learning_rate=-0.1), ValueError, "learning_rate"),
    (gradtx.sgd, dict(learning_rate=nan), ValueError, "learning_rate"),
    (gradtx.sgd, dict(learning_rate="0.1"), TypeError, "learning_rate"),
    (gradtx.sgd, dict(learning_rate=None), ValueError, "learning_rate"),
    (gradtx.sgd, dict(learning_rate=jnp.ones(3)), ValueError, "learning_rate"),
    (gradtx.sgd, dict(learning_rate=0.1, momentum=1.5), ValueError, "sgd: `momentum`"),
    (gradtx.sgd, dict(learning_rate=0.1, momentum=-0.1), ValueError, "sgd: `momentum`"),
    (
        gradtx.sgd,
        dict(learning_rate=0.1, momentum=0.9, nesterov="yes"),
        TypeError,
        "nesterov",
    ),
    (
        gradtx.sgd,
        dict(learning_rate=0.1, momentum=0.9, accumulator_dtype=jnp.int32),
        ValueError,
        "accumulator_dtype",
    ),
    (gradtx.adam, dict(learning_rate=1e-3, b1=1.0), ValueError, "b1"),
    (gradtx.adam, dict(learning_rate=1e-3, b2=1.0), ValueError, "b2"),
    (gradtx.adam, dict(learning_rate=1e-3, b2=-0.5), ValueError, "b2"),
    (gradtx.adam, dict(learning_rate=1e-3, eps=-1e-8), ValueError, "eps"),
    (gradtx.adam, dict(learning_rate=1e-3, eps_root=-1.0), ValueError, "eps_root"),
    (gradtx.adam, dict(learning_rate=1e-3, mu_dtype="int8"), ValueError, "mu_dtype"),
    (gradtx.adam, dict(learning_rate=1e-3, mu_dtype="nonsense"), TypeError, "mu_dtype"),
    (
        gradtx.adamw,
        dict(learning_rate=1e-3, weight_decay=-0.1),
        ValueError,
        "weight_decay",
    ),
    (
        gradtx.adam_l2,
        dict(learning_rate=1e-3, weight_decay=nan),
        ValueError,
        "weight_decay",
    ),
    (
        gradtx.adagrad,
        dict(learning_rate=0.1, initial_accumulator_value=-1.0),
        ValueError,
        "initial_accumulator_value",
    ),
    (gradtx.adagrad, dict(learning_rate=0.1, eps=-1.0), ValueError, "eps"),
    (
        gradtx.rmsprop,
        dict(learning_rate=0.1, decay=1.0, bias_correction=True),
        ValueError,
        "decay",
    ),
    (
        gradtx.rmsprop,
        dict(learning_rate=0.1, initial_scale=-1.0),
        ValueError,
        "initial_scale",
    ),
    (
        gradtx.rmsprop,
        dict(learning_rate=0.1, centered=True, eps_in_sqrt=1),
        TypeError,
        "eps_in_sqrt",
    ),
    (
        gradtx.amsgrad,
        dict(learning_rate=0.1, bias_correction_nu=None),
        TypeError,
        "bias_correction_nu",
    ),
    (gradtx.adamax, dict(learning_rate=0.1, b1=2.0), ValueError, "b1"),
    (
        gradtx.adamaxw,
        dict(learning_rate=0.1, weight_decay=-1.0),
        ValueError,
        "weight_decay",
    ),
    (gradtx.nadam, dict(learning_rate=-1.0), ValueError, "learning_rate"),
    (gradtx.nadamw, dict(learning_rate=1.0, b1=1.0), ValueError, "b1"),
    (gradtx.ema, dict(decay=1.0), ValueError, "decay"),
    (gradtx.ema, dict(decay=0.9, debias=0), TypeError, "debias"),
    (gradtx.trace, dict(decay=nan), ValueError, "decay"),
    (gradtx.clip, dict(max_delta=-1.0), ValueError, "max_delta"),
    (gradtx.clip_by_global_norm, dict(max_norm=0.0), ValueError, "max_norm"),
    (gradtx.scale, dict(step_size="x"), TypeError, "step_size"),
    (gradtx.scale_by_schedule, dict(step_size_fn=0.1), TypeError, "step_size_fn"),
    (
        gradtx.scale_by_learning_rate,
        dict(learning_rate=0.1, flip_sign="no"),
        TypeError,
        "flip_sign",
    ),
    (gradtx.add_decayed_weights, dict(weight_decay=-1.0), ValueError, "weight_decay"),
]


@pytest.mark.parametrize(
    "factory,kwargs,exc,words",
    BAD_HYPERPARAMETERS,
    ids=[f"{f.__name__}-{'-'.join(k)}" for f, k, _, _ in BAD_HYPERPARAMETERS],
)
def test_bad_hyperparameter_is_rejected_at_construction(factory, kwargs, exc, words):
    with pytest.raises(exc, match=words) as info:
        factory(**kwargs)
    # The message also shows the offending value or the valid range.
    msg = str(info.value)
    assert "got" in msg or "required" in msg, msg


def test_edge_values_that_are_valid_are_accepted():
    gradtx.sgd(0.0, momentum=0.0)
    gradtx.sgd(0.1, momentum=1.0)
    gradtx.adam(0.1, b1=0.0, b2=0.0, eps=0.0)
    gradtx.rmsprop(0.1, decay=1.0)  # no bias correction: a frozen average
    gradtx.ema(1.0, debias=False)
    gradtx.scale(-3.0)
    gradtx.adam(np.float32(0.1), b1=np.float64(0.8))
    gradtx.adamw(gradtx.constant_schedule(0.1), weight_decay=lambda t: 0.1)


def test_traced_hyperparameters_are_accepted():
    # Inside jit a hyperparameter is a tracer: it cannot be checked, only used.
    def step(lr, b1):
        opt = gradtx.adam(lr, b1=b1)
        p = jnp.ones(2)
        return opt.update(p, opt.init(p), p)[0]

    out = jax.jit(step)(0.1, 0.9)
    assert out.shape == (2,)


def test_state_from_other_params_names_the_tree():
    opt = gradtx.adam(1e-3)
    state = opt.init({"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="`mu` does not have the tree structure"):
        opt.update({"a": jnp.ones(2)}, state)


def test_shape_mismatch_names_the_leaf_path():
    opt = gradtx.sgd(0.1, momentum=0.9)
    state = opt.init({"layer": {"w": jnp.ones((3, 2))}})
    with pytest.raises(ValueError, match=r"\['layer'\]\['w'\].*\(2, 3\).*\(3, 2\)"):
        opt.update({"layer": {"w": jnp.ones((2, 3))}}, state)
    # No silent broadcast of a (1,)-shaped gradient onto a (3,) state either.
    state = opt.init([jnp.ones(3)])
    with pytest.raises(ValueError, match=r"\[0\]"):
        opt.update([jnp.ones(1)], state)


def test_params_shape_mismatch_in_weight_decay_names_the_leaf():
    opt = gradtx.adamw(0.1)
    p = {"w": jnp.ones(4)}
    with pytest.raises(ValueError, match=r"\['w'\].*params"):
        opt.update({"w": jnp.ones(4)}, opt.init(p), {"w": jnp.ones(5)})
