"""The warning at ``init`` that bfloat16/float16 params may never move.

``gradtx.adam(1e-3)`` on bfloat16 params near 1 rounds every update away (the
case of docs/precision.md, "Updates that round away"): every optimizer warns
once at ``init`` on such params, never inside a compiled step; not inside
``kahan_summation`` or ``stochastic_rounding``; silenced for one optimizer by
``silence_stall_warning`` and everywhere by a warnings filter.
"""

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_callers_words import REQUIRED, RUN_TIME_ALIASES

import gradtx

BF16 = jnp.bfloat16
TARGET = jnp.array([1.05, 1.1, 1.2])


def _recorded(thunk):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thunk()
    return [w for w in caught if issubclass(w.category, gradtx.PrecisionStallWarning)]


def _alias(name):
    factory = getattr(gradtx, name)
    arguments = inspect.signature(factory).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations, noisy_sgd's default key
        return factory(**{k: v for k, v in REQUIRED.items() if k in arguments})


LOW = {"w": jax.ShapeDtypeStruct((4, 4), BF16)}


@pytest.mark.parametrize("name", RUN_TIME_ALIASES)
def test_every_optimizer_warns_on_bf16_params_and_not_inside_kahan(name):
    tx = _alias(name)
    caught = _recorded(lambda: jax.eval_shape(tx.init, LOW))
    assert len(caught) == 1, name
    assert str(caught[0].message).startswith(f"{name}: 1 of the 1 param leaves")
    assert caught[0].filename == __file__  # the caller's line, through jax
    assert not _recorded(lambda: jax.eval_shape(gradtx.kahan_summation(tx).init, LOW))


def test_adam_on_bf16_params_warns_with_the_cause_and_the_fix():
    params = {"w": jnp.ones((2, 2), BF16), "b": jnp.ones(2, jnp.float16)}
    params["frozen"] = jnp.ones(2)  # float32: not named
    tx = gradtx.adam(1e-3)
    (warning,) = _recorded(lambda: tx.init(params))
    message = str(warning.message)
    assert message.startswith(
        "adam: 2 of the 3 param leaves are bfloat16 and float16 (['b'], ['w'])."
    ), message
    for fix in ("kahan_summation(tx)", "stochastic_rounding(tx, key)"):
        assert fix in message
    assert "silence_stall_warning(tx)" in message
    assert "category=gradtx.PrecisionStallWarning" in message


def test_more_than_three_leaves_are_counted_not_listed():
    params = [jnp.ones(2, BF16) for _ in range(5)]
    (warning,) = _recorded(lambda: gradtx.sgd(0.1).init(params))
    assert "sgd: 5 of the 5 param leaves are bfloat16 ([0], [1], [2], …)" in str(
        warning.message
    )


def test_float32_and_integer_params_do_not_warn():
    params = {"w": jnp.ones(3), "n": jnp.ones(3, jnp.int8), "none": None}
    assert not _recorded(lambda: gradtx.adam(1e-3).init(params))


def test_warns_once_per_optimizer_at_trace_time_never_in_the_step():
    p = jnp.ones(3, BF16)
    tx = gradtx.adamw(1e-3)
    assert len(_recorded(lambda: jax.jit(tx.init)(p))) == 1  # traced: warns
    state = tx.init(p)
    assert not _recorded(lambda: tx.init(p))  # the same optimizer: once
    assert not _recorded(lambda: jax.jit(tx.update)(p, state, p))
    jaxpr = str(jax.make_jaxpr(tx.init)(p))
    assert "callback" not in jaxpr
    assert len(_recorded(lambda: gradtx.adamw(1e-3).init(p))) == 1  # another one


def test_a_chain_of_optimizers_warns_for_each_alias_once():
    p = jnp.ones(3, BF16)
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3))
    (warning,) = _recorded(lambda: tx.init(p))
    assert str(warning.message).startswith("adamw: ")
    outer = gradtx.MultiSteps(gradtx.lamb(1e-3), every_k_schedule=2)
    (warning,) = _recorded(lambda: outer.init(p))
    assert str(warning.message).startswith("lamb: ")


@pytest.mark.parametrize(
    "wrap",
    [
        gradtx.kahan_summation,
        lambda tx: gradtx.stochastic_rounding(tx, jax.random.key(0)),
        gradtx.silence_stall_warning,
        lambda tx: gradtx.silence_stall_warning(gradtx.chain(gradtx.clip(1.0), tx)),
        lambda tx: gradtx.kahan_summation(gradtx.chain(gradtx.clip(1.0), tx)),
    ],
    ids=["kahan", "stochastic_rounding", "silenced", "silenced_chain", "kahan_chain"],
)
def test_compensated_or_silenced_optimizers_do_not_warn(wrap):
    p = jnp.ones(3, BF16)
    assert not _recorded(lambda: wrap(gradtx.adam(1e-3)).init(p))


def test_a_warnings_filter_silences_it_everywhere():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=gradtx.PrecisionStallWarning)
        gradtx.adam(1e-3).init(jnp.ones(3, BF16))
    assert not caught


def test_silenced_optimizer_keeps_its_state_and_numbers():
    p = jnp.ones(3, BF16)
    tx = gradtx.adam(0.1)
    quiet = gradtx.silence_stall_warning(tx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gradtx.PrecisionStallWarning)
        a = tx.init(p)
    b = quiet.init(p)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    np.testing.assert_array_equal(quiet.update(p, b)[0], tx.update(p, a)[0])


def test_silence_needs_a_transformation():
    with pytest.raises(TypeError, match=r"silence_stall_warning: `tx` must be"):
        gradtx.silence_stall_warning(gradtx.adam)


def _train(tx, dtype, steps=300):
    def step(carry, _):
        p, s = carry
        g = p.astype(jnp.float32) - TARGET  # of 0.5 * |p - target|^2
        u, s = tx.update(g, s, p)
        return (gradtx.apply_updates(p, u), s), None

    p = jnp.ones(3, dtype)
    (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, steps)
    return np.asarray(p, np.float32)


def test_the_documented_stall_and_its_fixes():
    # docs/precision.md, "Updates that round away": 300 steps of adam(1e-3)
    # from [1, 1, 1] towards [1.05, 1.1, 1.2].
    adam = lambda: gradtx.silence_stall_warning(gradtx.adam(1e-3))
    f32 = _train(adam(), jnp.float32)
    np.testing.assert_allclose(f32, [1.05, 1.09998, 1.18210], atol=1e-4)
    np.testing.assert_array_equal(_train(adam(), BF16), [1.0, 1.0, 1.0])
    kahan = _train(gradtx.kahan_summation(gradtx.adam(1e-3)), BF16)
    np.testing.assert_array_equal(kahan, [1.0546875, 1.1015625, 1.1796875])
    assert np.all(np.abs(kahan - f32) <= 2.0**-7)  # within a bf16 ulp near 1
