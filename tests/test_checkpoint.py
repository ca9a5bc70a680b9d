"""Checkpoints: states through pickle, flax and Orbax resume bit-identically;
states for another optimizer or other parameters are rejected by path."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.checkpoint import restore_state, state_signature, validate_state
from gradtx.wrappers.lookahead import LookaheadParams

P = {
    "enc": {
        "w": jnp.linspace(-1.0, 2.0, 6).reshape(3, 2),
        "b": jnp.ones(2, jnp.bfloat16),
    },
    "head": jnp.array([0.5, -1.5]),
}


def _grad(p):
    return jax.tree.map(lambda x: x - 0.5 + 0.5 * jnp.sin(3 * x), p)


def _matrices(p):
    return jax.tree.map(lambda x: x.ndim > 1, p)


OPTIMIZERS = {
    "adam": lambda: gradtx.adam(1e-2),
    "adamw_masked": lambda: gradtx.adamw(1e-2, weight_decay=0.1, mask=_matrices),
    "clip_adamw_schedule": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(1.0),
        gradtx.adamw(gradtx.linear_schedule(1e-2, 1e-3, 10), weight_decay=0.1),
    ),
    "multi_steps": lambda: gradtx.MultiSteps(gradtx.adam(1e-2), 2),
    "inject_hyperparams": lambda: gradtx.inject_hyperparams(gradtx.adam)(1e-2),
    "apply_if_finite": lambda: gradtx.apply_if_finite(gradtx.adam(1e-2), 3),
    "lookahead": lambda: gradtx.lookahead(gradtx.adam(1e-2), 3, 0.5),
    "partition_int_labels": lambda: gradtx.partition(
        {0: gradtx.adam(1e-2), 1: gradtx.sgd(1e-2, momentum=0.9)},
        {"enc": 0, "head": 1},
    ),
    "schedule_free_adamw": lambda: gradtx.schedule_free_adamw(1e-2),
    "noisy_sgd": lambda: gradtx.noisy_sgd(1e-2, key=jax.random.key(3)),
}


class Run:
    """Five steps, then five more: the state at step 5 is what gets saved."""

    def __init__(self, name):
        self.tx = OPTIMIZERS[name]()
        wrap = name == "lookahead"
        self.params = LookaheadParams.init_synced(P) if wrap else P
        self.traces = 0

        @jax.jit
        def step(params, state):
            self.traces += 1
            u, state = self.tx.update(
                _grad(params.fast if wrap else params), state, params
            )
            return gradtx.apply_updates(params, u), state

        self.step = step
        self.p5, self.s5 = self.run(self.params, self.tx.init(self.params))
        self.p10, self.s10 = self.run(self.p5, self.s5)

    def run(self, params, state):
        for _ in range(5):
            params, state = self.step(params, state)
        return params, state

    def assert_resumes(self, restored):
        """Five more steps from ``restored``: bit-identical, and no retrace."""
        assert jax.tree.structure(restored) == jax.tree.structure(self.s5)
        traces = self.traces
        _assert_bits_equal(self.run(self.p5, restored), (self.p10, self.s10))
        assert self.traces == traces, "the restored state made the step retrace"


def _bits(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    x = np.asarray(x)
    return x.dtype, x.shape, x.tobytes()


def _assert_bits_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert _bits(x) == _bits(y)


def _key_data(tree):
    """Typed keys as ``uint32`` key data (flax's msgpack cannot store keys)."""
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


@pytest.fixture(scope="module")
def runs():
    return {name: Run(name) for name in OPTIMIZERS}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_pickle_round_trip_resumes_bit_identically(runs, name):
    run = runs[name]
    loaded = pickle.loads(pickle.dumps(run.s5))  # JAX arrays and typed keys
    run.assert_resumes(restore_state(run.tx, run.params, loaded))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_flax_round_trip_resumes_bit_identically(runs, name):
    serialization = pytest.importorskip("flax.serialization")
    run = runs[name]
    raw = serialization.msgpack_serialize(
        serialization.to_state_dict(_key_data(run.s5))
    )
    loaded = serialization.msgpack_restore(raw)  # no target: dicts all the way
    with pytest.raises(ValueError):
        run.tx.update(_grad(P), loaded, run.params)  # unusable as it is
    run.assert_resumes(restore_state(run.tx, run.params, loaded))


def test_orbax_round_trip_resumes_bit_identically(runs, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", {n: r.s5 for n, r in runs.items()})
        checkpointer.wait_until_finished()
        loaded = checkpointer.restore(tmp_path / "ckpt")  # no target
    assert isinstance(loaded["adam"], list)  # tuples come back as lists
    # Orbax's arrays are committed to their device, ours are not: the step
    # would compile once more for them (not retrace). On the host, they match.
    loaded = jax.device_get(loaded)
    for name, run in runs.items():
        run.assert_resumes(restore_state(run.tx, run.params, loaded[name]))


def test_restore_keeps_jax_arrays_as_they_are():
    state = jax.device_put(ADAM.init(P), jax.devices()[0])  # committed
    restored = restore_state(ADAM, P, state)
    pairs = zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True)
    assert all(a is b for a, b in pairs)


def test_optax_state_restores_into_the_gradtx_optimizer_of_the_same_name():
    theirs = optax.adam(1e-2).init(P)
    ours = restore_state(gradtx.adam(1e-2), P, pickle.loads(pickle.dumps(theirs)))
    assert type(ours[0]) is gradtx.ScaleByAdamState
    _assert_bits_equal(ours, gradtx.adam(1e-2).init(P))
    with pytest.raises(ValueError, match=r"ScaleByAdamState.* from module optax"):
        validate_state(gradtx.adam(1e-2), P, theirs)


# --------------------------------------------------------------------------
# Bad inputs.

ADAM = gradtx.adam(1e-2)


def _orbax_like(state):
    """The form Orbax restores without a target: lists, dicts, NumPy, None."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        fields = {f: _orbax_like(getattr(state, f)) for f in state._fields}
        return fields or None
    if isinstance(state, (tuple, list)):
        return [_orbax_like(x) for x in state]
    if isinstance(state, dict):
        return {str(k): _orbax_like(v) for k, v in state.items()}
    return np.asarray(state)


def test_adam_state_into_adabelief_is_rejected():
    with pytest.raises(
        ValueError,
        match=r"restore_state: at state\[0\]: expected ScaleByBeliefState\(count, "
        r"mu, nu\), got ScaleByAdamState\(count, mu, nu\)",
    ):
        restore_state(gradtx.adabelief(1e-2), P, ADAM.init(P))


def test_adam_state_into_adabelief_through_dicts_is_caught_by_the_signature():
    saved, signature = _orbax_like(ADAM.init(P)), state_signature(ADAM.init(P))
    assert signature == "state[0]: ScaleByAdamState(count, mu, nu)"
    # The dicts carry no class: same fields, shapes and dtypes, so it restores.
    restore_state(gradtx.adabelief(1e-2), P, saved)
    with pytest.raises(
        ValueError,
        match=r"at state\[0\]: expected ScaleByBeliefState\(count, mu, nu\), "
        r"the checkpoint has ScaleByAdamState\(count, mu, nu\)",
    ):
        restore_state(gradtx.adabelief(1e-2), P, saved, signature=signature)
    with pytest.raises(ValueError, match=r"signature.*differs.*nothing more"):
        restore_state(gradtx.sgd(1e-2), P, [None, None], signature=signature)


def _with(tree, path, value):
    tree = jax.tree.map(lambda x: x, tree)
    node = tree
    for k in path[:-1]:
        node = node[k]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


OTHER_PARAMS = {
    "missing_leaf": (
        _with(P, ["bias"], jnp.zeros(2)),
        r"at state\[0\]\.mu: missing key 'bias' \(expected keys \['bias', 'enc', "
        r"'head'\], got \['enc', 'head'\]\)",
    ),
    "extra_leaf": (
        _with(P, ["head"], None),
        r"at state\[0\]\.mu: unexpected key 'head' \(expected keys \['enc'\]",
    ),
    "renamed_key": (
        _with(_with(P, ["head"], None), ["out"], jnp.zeros(2)),
        r"at state\[0\]\.mu: missing key 'out'",
    ),
    "other_shape": (
        _with(P, ["enc", "w"], jnp.zeros((4, 2))),
        r"at state\[0\]\.mu\['enc'\]\['w'\]: expected shape \(4, 2\) float32, got "
        r"shape \(3, 2\) float32",
    ),
    "other_dtype": (
        _with(P, ["head"], jnp.zeros(2, jnp.bfloat16)),
        r"at state\[0\]\.mu\['head'\]: expected shape \(2,\) bfloat16, got shape "
        r"\(2,\) float32",
    ),
}


@pytest.mark.parametrize("form", ["state", "orbax_like"])
@pytest.mark.parametrize("case", list(OTHER_PARAMS))
def test_state_for_other_params_is_rejected_at_the_first_difference(case, form):
    params, message = OTHER_PARAMS[case]
    saved = ADAM.init(P)
    saved = _orbax_like(saved) if form == "orbax_like" else saved
    with pytest.raises(ValueError, match=message):
        restore_state(ADAM, params, saved)
    with pytest.raises(ValueError, match=message):
        validate_state(ADAM, params, ADAM.init(P))


def test_lists_for_tuples_break_update_and_restore_state_rebuilds_them():
    state = ADAM.init(P)
    lossy = _orbax_like(state)
    with pytest.raises(ValueError, match="chain"):
        ADAM.update(_grad(P), lossy, P)
    with pytest.raises(
        ValueError,
        match=r"validate_state: at state: expected a tuple of length 2, got a list "
        r"of length 2",
    ):
        validate_state(ADAM, P, lossy)
    restored = restore_state(ADAM, P, lossy)
    validate_state(ADAM, P, restored)
    _assert_bits_equal(
        ADAM.update(_grad(P), restored, P), ADAM.update(_grad(P), state, P)
    )


def test_validate_state_runs_under_jit():
    state = ADAM.init(P)
    out = jax.jit(lambda s: (validate_state(ADAM, P, s), s)[1])(state)
    _assert_bits_equal(out, state)


BAD_STATES = {
    "truncated_chain": (
        lambda s: s[:1],
        r"at state: expected a tuple of length 2, got a tuple of length 1",
    ),
    "truncated_chain_as_dict": (
        lambda s: {"0": _orbax_like(s[0])},
        r"at state: missing key '1' \(expected keys \['0', '1'\], got \['0'\]\)",
    ),
    "none": (lambda s: None, r"at state: expected a tuple of length 2, got None"),
    "none_counter": (
        lambda s: (s[0]._replace(count=None), s[1]),
        r"at state\[0\]\.count: expected an array of shape \(\) int32, got None",
    ),
    "int64_counter": (
        lambda s: (s[0]._replace(count=np.int64(5)), s[1]),
        r"at state\[0\]\.count: expected shape \(\) int32, got shape \(\) int64",
    ),
    "float_counter": (
        lambda s: [{**_orbax_like(s[0]), "count": np.float32(5)}, None],
        r"at state\[0\]\.count: expected shape \(\) int32, got shape \(\) float32",
    ),
    "python_int_counter": (
        lambda s: (s[0]._replace(count=5), s[1]),
        r"at state\[0\]\.count: expected an array of shape \(\) int32, got int 5",
    ),
    "bf16_moment": (
        lambda s: (
            s[0]._replace(nu=jax.tree.map(lambda x: x.astype(jnp.bfloat16), s[0].nu)),
            s[1],
        ),
        r"at state\[0\]\.nu\['enc'\]\['w'\]: expected shape \(3, 2\) float32, got "
        r"shape \(3, 2\) bfloat16",
    ),
    "array_for_a_state": (
        lambda s: (jnp.zeros(3), s[1]),
        r"at state\[0\]: expected ScaleByAdamState\(count, mu, nu\), got an array "
        r"of shape \(3,\) float32",
    ),
    "dict_for_a_tuple": (
        lambda s: (s[0], {"a": 1}),
        r"at state\[1\]: unexpected key 'a' \(expected keys \[\], got \['a'\]\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_bad_state_is_rejected_naming_the_path(case):
    corrupt, message = BAD_STATES[case]
    with pytest.raises(ValueError, match=rf"restore_state: {message}"):
        restore_state(ADAM, P, corrupt(ADAM.init(P)))


def test_prng_key_restores_from_its_key_data_and_nothing_else():
    tx = gradtx.noisy_sgd(1e-2, key=jax.random.key(7))
    state = tx.init(P)
    restored = restore_state(tx, P, _orbax_like(_key_data(state)))
    _assert_bits_equal(restored, state)
    wrong = (state[0]._replace(rng_key=np.zeros(3, np.uint32)), state[1])
    with pytest.raises(
        ValueError,
        match=r"at state\[0\]\.rng_key: expected a PRNG key of shape \(\) key<fry> "
        r"\(or its key data, shape \(2,\) uint32\), got shape \(3,\) uint32",
    ):
        restore_state(tx, P, wrong)
    with pytest.raises(ValueError, match=r"validate_state: at state\[0\]\.rng_key"):
        validate_state(tx, P, _key_data(state))


def test_not_a_transformation_is_rejected():
    with pytest.raises(TypeError, match=r"restore_state: `tx` must be a gradient"):
        restore_state(gradtx.adam, P, ADAM.init(P))
