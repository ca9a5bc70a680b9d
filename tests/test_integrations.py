"""Integrations: what the framework recipes on the docs page do not show.

The training recipes (Flax Linen ``TrainState``, Flax NNX ``nnx.Optimizer``,
Equinox with filtering and frozen layers, Optimistix's ``OptaxMinimiser``,
gradtx and Optax transforms chained both ways with Optax's numbers) live in
``docs/frameworks.md`` and run in ``tests/test_frameworks_page.py``. Here:
an unfiltered Equinox model is rejected naming the offending leaf, and the
page's Linen ``TrainState`` (its recipe's namespace, reused) saved through
flax msgpack and Orbax resumes bit-identically. Each framework's tests are
skipped when it is not installed (the ``integrations`` extra installs them
all).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_frameworks_page import run_block

import gradtx


def _assert_same_bits(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------- Equinox


def _eqx_model():
    eqx = pytest.importorskip("equinox")
    return eqx, eqx.nn.MLP(4, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(1))


def test_equinox_unfiltered_model_as_update_params_is_rejected_by_path():
    # Optax accepts this silently; gradtx names the transform and the leaf.
    eqx, model = _eqx_model()
    tx = gradtx.adamw(1e-2)
    grads = eqx.filter(model, eqx.is_array)
    opt_state = jax.eval_shape(tx.init, grads)  # traced only: nothing compiles
    with pytest.raises(ValueError, match=r"\.activation") as info:
        jax.eval_shape(lambda g, s: tx.update(g, s, model), grads, opt_state)
    assert "add_decayed_weights" in str(info.value)  # the part that needs params


def test_equinox_unfiltered_model_at_init_is_rejected_by_path():
    # Optax fails with JAX's bare "zeros_like requires ndarray"; gradtx names
    # the leaf and says what to pass.
    _, model = _eqx_model()
    with pytest.raises(TypeError, match=r"params leaf .*\.activation.*eqx\.filter"):
        gradtx.adam(1e-2).init(model)


def test_equinox_unfiltered_model_in_apply_updates_is_rejected_by_path():
    # Optax fails with a bare "unsupported operand type(s) for +"; gradtx
    # names the leaf and says what to call instead.
    eqx, model = _eqx_model()
    updates = eqx.filter(model, eqx.is_inexact_array)
    with pytest.raises(TypeError, match=r"\.activation.*eqx\.apply_updates"):
        jax.eval_shape(lambda u: gradtx.apply_updates(model, u), updates)


# ---------------------------------------------------------------- Checkpoint


def _linen_recipe():
    """The namespace of the page's Flax Linen recipe (docs/frameworks.md),
    run once per session: its ``state`` after 40 steps, its jitted
    ``train_step``, its ``tx`` and data."""
    pytest.importorskip("flax")
    return run_block("flax-linen-trainstate")


def _train5(recipe, state):
    for _ in range(5):
        state, _ = recipe["train_step"](state, recipe["x"], recipe["y"])
    return state


def _abstract(tree):
    """What jit keys its cache on: the tree structure and each leaf's type."""
    return jax.tree.structure(tree), [jax.typeof(x) for x in jax.tree.leaves(tree)]


def _resume_check(save_and_restore):
    """Train 5, save, restore, train 5 more; compare with 10 uninterrupted."""
    recipe = _linen_recipe()
    tx = recipe["tx"]
    state5 = _train5(recipe, recipe["state"])
    state10 = _train5(recipe, state5)
    saved = {
        "step": state5.step,
        "params": state5.params,
        "opt_state": state5.opt_state,
    }
    restored = save_and_restore(saved, gradtx.state_signature(state5.opt_state))
    params = jax.tree.map(jnp.asarray, restored["params"])
    opt_state = gradtx.restore_state(
        tx, params, restored["opt_state"], signature=restored["signature"]
    )
    gradtx.validate_state(tx, params, opt_state)
    # A Python int, as TrainState.create makes it: the same (weak) type.
    step = int(restored["step"])
    resumed = state5.replace(step=step, params=params, opt_state=opt_state)
    assert _abstract(resumed) == _abstract(state5)  # the step does not retrace
    again10 = _train5(recipe, resumed)
    _assert_same_bits(again10.params, state10.params)
    _assert_same_bits(again10.opt_state, state10.opt_state)
    assert int(again10.step) == int(recipe["state"].step) + 10


def test_linen_train_state_through_flax_msgpack_resumes_bit_identically():
    serialization = pytest.importorskip("flax.serialization")

    def save_and_restore(saved, signature):
        blob = serialization.msgpack_serialize(
            {**serialization.to_state_dict(saved), "signature": signature}
        )
        restored = serialization.msgpack_restore(blob)
        # Tuples and NamedTuples come back as dicts keyed '0', '1', … / fields.
        assert isinstance(restored["opt_state"], dict)
        return restored

    _resume_check(save_and_restore)


def test_linen_train_state_through_orbax_resumes_bit_identically(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")

    def save_and_restore(saved, signature):
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(tmp_path / "ckpt", saved)
            checkpointer.wait_until_finished()
            restored = checkpointer.restore(tmp_path / "ckpt")
        # Without a target, tuples come back as lists.
        assert isinstance(restored["opt_state"], list)
        return {**restored, "signature": signature}

    _resume_check(save_and_restore)
