"""Integrations: gradtx inside the frameworks people already use.

Flax Linen (``TrainState``) and Flax NNX (``nnx.Optimizer``) train with a
gradtx optimizer; Equinox trains with ``eqx.filter``; gradtx and Optax
transforms chain in both directions with the same numbers; a Linen
``TrainState`` saved through flax msgpack and Orbax resumes bit-identically;
Optimistix's ``OptaxMinimiser`` minimises with a gradtx optimizer. Each
framework's tests are skipped when it is not installed (the ``integrations``
extra installs them all).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

STEPS = 40


def _data(n=64, d=4):
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, d))
    y = jnp.sin(x @ jax.random.normal(kw, (d, 1)))
    return x, y


X, Y = _data()


def _assert_same_bits(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --------------------------------------------------------------- Flax Linen

LINEN_TX = gradtx.adamw(1e-2, weight_decay=1e-4)  # one tx: one compiled step
TRACES = {"linen": 0}


@functools.cache
def _linen_state():
    nn = pytest.importorskip("flax.linen")
    train_state = pytest.importorskip("flax.training.train_state")

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(1)(nn.tanh(nn.Dense(16)(x)))

    model = MLP()
    params = model.init(jax.random.key(1), X)["params"]
    return train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=LINEN_TX
    )


def _linen_loss(params, state):
    pred = state.apply_fn({"params": params}, X)
    return jnp.mean((pred - Y) ** 2)


@jax.jit
def _linen_train(state):
    """Five jitted steps; returns the new state and the losses before each."""
    TRACES["linen"] += 1

    def step(state, _):
        loss, grads = jax.value_and_grad(_linen_loss)(state.params, state)
        return state.apply_gradients(grads=grads), loss

    return jax.lax.scan(step, state, length=5)


def test_flax_linen_train_state_trains_an_mlp():
    state = _linen_state()
    losses = []
    for _ in range(STEPS // 5):
        state, loss = _linen_train(state)
        losses.extend(loss.tolist())
    assert int(state.step) == STEPS
    assert losses[-1] < 0.5 * losses[0], losses
    # The state kept its classes through TrainState: it is exactly init's.
    gradtx.validate_state(LINEN_TX, state.params, state.opt_state)


# ----------------------------------------------------------------- Flax NNX


def test_flax_nnx_optimizer_trains_a_model():
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(4, 16, rngs=rngs)
            self.out = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    model = MLP(nnx.Rngs(1))
    # flax 0.12: `update(model, grads)`; the tx is not type-checked.
    optimizer = nnx.Optimizer(model, gradtx.adamw(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss_fn = lambda m: jnp.mean((m(X) - Y) ** 2)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(STEPS)]
    assert int(optimizer.step[...]) == STEPS
    assert losses[-1] < 0.5 * losses[0], losses


# ----------------------------------------------------------------- Equinox


def _eqx_model():
    eqx = pytest.importorskip("equinox")
    return eqx, eqx.nn.MLP(4, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(1))


def test_equinox_mlp_trains_with_filtered_params():
    eqx, model = _eqx_model()
    tx = gradtx.adamw(3e-2, weight_decay=1e-4)
    # Non-array leaves (the activation function) are filtered out to None.
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state):
        loss_fn = lambda m: jnp.mean((jax.vmap(m)(X) - Y) ** 2)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        params = eqx.filter(model, eqx.is_array)
        updates, opt_state = tx.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    for _ in range(STEPS):
        model, opt_state, loss = step(model, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses


def test_equinox_unfiltered_model_as_update_params_is_rejected_by_path():
    # Optax accepts this silently; gradtx names the transform and the leaf.
    eqx, model = _eqx_model()
    tx = gradtx.adamw(1e-2)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))
    grads = jax.tree.map(jnp.ones_like, eqx.filter(model, eqx.is_array))
    with pytest.raises(ValueError, match=r"add_decayed_weights: .*\.activation"):
        tx.update(grads, opt_state, model)


def test_equinox_unfiltered_model_at_init_is_rejected_by_path():
    # Optax fails with JAX's bare "zeros_like requires ndarray"; gradtx names
    # the leaf and says what to pass.
    _, model = _eqx_model()
    with pytest.raises(
        TypeError, match=r"init: params leaf .*\.activation.*eqx\.filter"
    ):
        gradtx.adam(1e-2).init(model)


# ------------------------------------------------------------ Optax interop

P = {"w": jnp.linspace(-2.0, 2.0, 6).reshape(3, 2), "b": jnp.array([3.0, -1.0])}


def _grad(p):
    return jax.tree.map(lambda x: 2.0 * x + jnp.sin(3 * x), p)


def _run(tx, steps=6):
    @jax.jit
    def train(params):
        def step(carry, _):
            params, state = carry
            updates, state = tx.update(_grad(params), state, params)
            return (gradtx.apply_updates(params, updates), state), updates

        return jax.lax.scan(step, (params, tx.init(params)), length=steps)

    (params, _), updates = train(P)
    return params, updates


def test_gradtx_and_optax_chain_in_both_directions_with_the_same_numbers():
    optax = pytest.importorskip("optax")
    clip_g, clip_o = gradtx.clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)
    adam_g, adam_o = gradtx.adam(0.1), optax.adam(0.1)
    all_gradtx = _run(gradtx.chain(clip_g, adam_g))
    all_optax = _run(optax.chain(clip_o, adam_o))
    # A chain is transparent: a mixed chain gives exactly the numbers of the
    # single-library chain whose clip it uses (adam is bit-identical to
    # Optax's; clip_by_global_norm scales by one factor max_norm / n where
    # Optax divides by n then multiplies, so they differ by ~1 ulp).
    _assert_same_bits(_run(gradtx.chain(clip_o, adam_g)), all_optax)
    _assert_same_bits(_run(optax.chain(clip_g, adam_o)), all_gradtx)
    _assert_same_bits(_run(gradtx.chain(clip_o, adam_o)), all_optax)
    _assert_same_bits(_run(optax.chain(clip_g, adam_g)), all_gradtx)
    for a, b in zip(
        jax.tree.leaves(all_gradtx), jax.tree.leaves(all_optax), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(all_optax[0]["w"], P["w"])  # it moved


# ---------------------------------------------------------------- Checkpoint


def _resume_check(save_and_restore):
    """Train 5, save, restore, train 5 more; compare with 10 uninterrupted."""
    state5, _ = _linen_train(_linen_state())
    state10, _ = _linen_train(state5)
    saved = {
        "step": state5.step,
        "params": state5.params,
        "opt_state": state5.opt_state,
    }
    restored = save_and_restore(saved, gradtx.state_signature(state5.opt_state))
    params = jax.tree.map(jnp.asarray, restored["params"])
    opt_state = gradtx.restore_state(
        LINEN_TX, params, restored["opt_state"], signature=restored["signature"]
    )
    gradtx.validate_state(LINEN_TX, params, opt_state)
    # A Python int, as TrainState.create makes it: the same (weak) type.
    step = int(restored["step"])
    resumed = state5.replace(step=step, params=params, opt_state=opt_state)
    traces = TRACES["linen"]
    again10, _ = _linen_train(resumed)
    assert TRACES["linen"] == traces  # the restored state does not retrace
    _assert_same_bits(again10.params, state10.params)
    _assert_same_bits(again10.opt_state, state10.opt_state)
    assert int(again10.step) == 10


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


# --------------------------------------------------------------- Optimistix


def _rosenbrock(y, args):
    return (1.0 - y[0]) ** 2 + 100.0 * (y[1] - y[0] ** 2) ** 2


def test_optimistix_minimises_rosenbrock_with_a_gradtx_optimizer():
    optx = pytest.importorskip("optimistix")
    optax = pytest.importorskip("optax")

    def solve(tx):
        solver = optx.OptaxMinimiser(tx, rtol=1e-6, atol=1e-6)
        y0 = jnp.array([-1.0, 1.0])
        return optx.minimise(_rosenbrock, solver, y0, max_steps=5000, throw=False)

    ours, theirs = solve(gradtx.adam(1e-2)), solve(optax.adam(1e-2))
    assert ours.result == optx.RESULTS.successful
    np.testing.assert_allclose(ours.value, [1.0, 1.0], atol=1e-3)
    # The same numbers as Optax's adam, step for step.
    assert int(ours.stats["num_steps"]) == int(theirs.stats["num_steps"])
    np.testing.assert_array_equal(ours.value, theirs.value)
