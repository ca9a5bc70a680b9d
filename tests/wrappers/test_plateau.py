"""Tests for gradtx.wrappers.plateau.reduce_on_plateau.

The trajectory (updates and every state field) must equal Optax's
(``optax.contrib.reduce_on_plateau``) exactly for scripted loss sequences with
improvements, plateaus, cooldowns, noise, NaN and accumulation; and each bad
input must raise naming the argument.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax import contrib

from gradtx.combinators.chain import chain
from gradtx.transforms.scaling import scale
from gradtx.wrappers import plateau as P

_rng = np.random.default_rng(0)
LOSSES = np.concatenate(
    [
        np.linspace(5.0, 1.0, 12),  # steady improvement
        np.full(15, 1.0),  # a plateau: a reduction, then cooldown
        [0.9999, 0.99995, 0.5],  # improvements within / beyond rtol
        np.full(25, 0.5),  # another plateau
        0.5 + 0.01 * _rng.standard_normal(30),  # noise around the plateau
        [np.nan, np.nan, 0.2],  # NaN never improves
        np.full(15, 0.2),
    ]
).astype(np.float32)

KWARGS = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(factor=0.5, patience=3, cooldown=4), id="cooldown"),
    pytest.param(
        dict(
            factor=0.3,
            patience=2,
            rtol=0.0,
            atol=1e-3,
            accumulation_size=3,
            min_scale=0.05,
        ),
        id="accumulate-atol-min_scale",
    ),
    pytest.param(dict(factor=0.9, patience=1, cooldown=2, rtol=0.1), id="eager"),
]


def _trajectory(tx, losses, params):
    """(updates, states) after each loss, the whole loop jitted as one scan."""

    def step(state, value):
        updates, state = tx.update(params, state, params, value=value)
        return state, (updates, state)

    run = jax.jit(lambda s, v: jax.lax.scan(step, s, v)[1])
    return run(tx.init(params), jnp.asarray(losses))


@pytest.mark.parametrize("kwargs", KWARGS)
def test_trajectory_matches_optax(kwargs):
    params = {"w": jnp.linspace(-1.0, 1.0, 5), "b": jnp.float32(0.5)}
    ours = _trajectory(P.reduce_on_plateau(**kwargs), LOSSES, params)
    theirs = _trajectory(contrib.reduce_on_plateau(**kwargs), LOSSES, params)
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert type(ours[1]).__name__ == "ReduceLROnPlateauState"
    assert ours[1]._fields == theirs[1]._fields
    scales = np.unique(np.asarray(ours[1].scale))
    assert len(scales) >= 2  # the script does reduce the scale


def test_scripted_sequence_by_hand():
    tx = P.reduce_on_plateau(factor=0.5, patience=2, cooldown=1)
    _, states = _trajectory(tx, np.array([3, 2, 2, 2, 2, 2, 2, 1], np.float32), 0.0)
    np.testing.assert_array_equal(states.scale, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_array_equal(states.plateau_count, [0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(states.cooldown_count, [0, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(states.best_value, [3, 2, 2, 2, 2, 2, 2, 1])


def test_eager_equals_jit_and_chain_forwards_value():
    params = jnp.ones(3)
    tx = chain(scale(-0.1), P.reduce_on_plateau(factor=0.5, patience=1))
    ref = optax.chain(optax.scale(-0.1), contrib.reduce_on_plateau(0.5, 1))
    jitted = _trajectory(tx, LOSSES[:20], params)
    state, ref_state = tx.init(params), ref.init(params)
    for t, loss in enumerate(LOSSES[:20]):
        u, state = tx.update(params, state, params, value=loss)
        v, ref_state = ref.update(params, ref_state, params, value=loss)
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
        np.testing.assert_array_equal(np.asarray(u), np.asarray(jitted[0][t]))


def test_state_dtypes_and_update_dtype():
    params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(3, jnp.float32)}
    tx = P.reduce_on_plateau()
    state = tx.init(params)
    assert state.scale.dtype == jnp.bfloat16  # the lowest params dtype, as Optax
    assert state.best_value.dtype == state.avg_value.dtype == jnp.float32
    for field in ("plateau_count", "cooldown_count", "count"):
        assert getattr(state, field).dtype == jnp.int32
    grads = {"a": jnp.ones(2, jnp.float32), "b": jnp.ones(3, jnp.bfloat16)}
    updates, new = tx.update(grads, state, value=jnp.float32(1.0))
    # The update keeps the gradient's dtype (Optax returns float32 for "b").
    assert updates["a"].dtype == jnp.float32 and updates["b"].dtype == jnp.bfloat16
    same = jax.tree.map(
        lambda x, y: (x.shape, x.dtype) == (y.shape, y.dtype), state, new
    )
    assert all(jax.tree.leaves(same))


def test_integer_or_empty_params_give_float_state():
    for params in (jnp.arange(3), None, {}):
        state = P.reduce_on_plateau().init(params)
        assert state.scale.dtype == state.best_value.dtype == jnp.float32


def test_traced_hyperparameters():
    losses = jnp.asarray(LOSSES)

    @jax.jit
    def scales(factor, min_scale):
        tx = P.reduce_on_plateau(factor=factor, patience=3, min_scale=min_scale)
        return _trajectory(tx, losses, jnp.ones(2))[1].scale

    want = _trajectory(
        contrib.reduce_on_plateau(0.5, 3, min_scale=0.2), LOSSES, jnp.ones(2)
    )[1].scale
    np.testing.assert_array_equal(np.asarray(scales(0.5, 0.2)), np.asarray(want))


def test_signature_matches_optax():
    ours = inspect.signature(P.reduce_on_plateau).parameters
    theirs = inspect.signature(contrib.reduce_on_plateau).parameters
    assert list(ours) == list(theirs)
    for name in ours:
        assert ours[name].default == theirs[name].default, name


def test_missing_or_non_scalar_value_is_loud():
    tx = P.reduce_on_plateau()
    state = tx.init(jnp.ones(2))
    with pytest.raises(TypeError, match="`value`"):
        tx.update(jnp.ones(2), state)
    with pytest.raises(ValueError, match="`value` must be a scalar"):
        tx.update(jnp.ones(2), state, value=jnp.ones(2))


BAD = [
    ("factor", dict(factor=0.0)),
    ("factor", dict(factor=1.0)),
    ("factor", dict(factor=float("nan"))),
    ("patience", dict(patience=0)),  # Optax: cuts the scale on improvement
    ("patience", dict(patience=2.5)),
    ("rtol", dict(rtol=-1e-4)),
    ("rtol", dict(rtol=1.5)),
    ("atol", dict(atol=-1.0)),
    ("rtol", dict(rtol=0.0, atol=0.0)),
    ("cooldown", dict(cooldown=-1)),
    ("accumulation_size", dict(accumulation_size=0)),
    ("min_scale", dict(min_scale=-0.1)),
    ("min_scale", dict(min_scale=2.0)),
]


@pytest.mark.parametrize(("arg", "kwargs"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_naming_the_argument(arg, kwargs):
    with pytest.raises((ValueError, TypeError), match=f"reduce_on_plateau: .*`{arg}`"):
        P.reduce_on_plateau(**kwargs)


def test_optax_patience_zero_is_silently_wrong():
    # Why patience=0 is rejected: Optax then reduces on every improvement.
    _, states = _trajectory(contrib.reduce_on_plateau(patience=0), [3.0, 2.0], 0.0)
    np.testing.assert_allclose(np.asarray(states.scale), [0.1, 0.01], rtol=1e-6)
