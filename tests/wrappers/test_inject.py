"""inject_hyperparams: same trajectory as the plain optimizer, no recompiles.

Bit-equality is checked against the plain optimizer given the same arguments,
Python floats included (``b2 = 0.999``: the state holds the float32
0.99900001287, whose float32 complement is 1.3e-5 relative off the
``f32(1 − 0.999)`` the plain optimizer uses; gradtx reproduces the latter, Optax
does not — optax#1532), for every optimizer of the table, and against the
plain optimizer given the float32 values once those are written into the state.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optimizers import OPTIMIZERS, factory

import gradtx
from gradtx.wrappers.inject import (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    WrappedSchedule,
    _complemented,
    _exact_complements,
    inject_hyperparams,
    inject_stateful_hyperparams,
)

STEPS = 100
F32 = jnp.float32


def _sched(t):
    return 0.05 * 0.98**t


def _wd(t):
    return 1e-2 / (1.0 + 0.1 * t)


def _start(dtype=jnp.float32):
    return {
        "a": jnp.linspace(-2.0, 3.0, 7, dtype=dtype),
        "b": jnp.full((2, 3), 1.5, dtype),
    }


def _grad(p):
    return jax.tree.map(lambda x: x - 0.5 + 0.5 * jnp.sin(3 * x), p)


def _run(tx, dtype=jnp.float32, steps=STEPS):
    def step(carry, _):
        p, s = carry
        u, s = tx.update(_grad(p), s, p)
        p = apply(p, u)
        return (p, s), p

    apply = (
        optax.apply_updates
        if isinstance(tx, optax.GradientTransformation)
        else (gradtx.apply_updates)
    )
    run = lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
    (_, state), traj = jax.jit(run)(_start(dtype))
    return traj, state


def _bits_equal(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _rel(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


ADAM32 = dict(b1=F32(0.9), b2=F32(0.999), eps=F32(1e-8), eps_root=F32(0.0))


@pytest.mark.parametrize(
    "factory,kwargs",
    [
        (gradtx.adam, dict(learning_rate=_sched)),
        (gradtx.adamw, dict(learning_rate=_sched, weight_decay=_wd)),
        (gradtx.adamw, dict(learning_rate=0.01, weight_decay=0.1, nesterov=True)),
        (gradtx.sgd, dict(learning_rate=_sched, momentum=0.9)),
    ],
    ids=["adam", "adamw-schedules", "adamw-nesterov", "sgd"],
)
def test_bit_equal_to_plain_optimizer_with_same_float32_values(factory, kwargs):
    f32 = {k: F32(v) if isinstance(v, float) else v for k, v in kwargs.items()}
    if factory is not gradtx.sgd:
        f32 = {**ADAM32, **f32}
    injected, state = _run(inject_hyperparams(factory)(**f32))
    plain, _ = _run(factory(**f32))
    assert _bits_equal(injected, plain)
    assert int(state.count) == STEPS
    if callable(kwargs["learning_rate"]):
        lr = state.hyperparams["learning_rate"]
        assert lr.dtype == jnp.float32
        np.testing.assert_allclose(lr, _sched(STEPS - 1), rtol=1e-5)


def test_bit_equal_to_python_floats_when_exact_in_float32():
    kw = dict(learning_rate=_sched, b1=0.875, b2=0.9990234375, eps=2.0**-20)
    injected, _ = _run(inject_hyperparams(gradtx.adam)(**kw))
    assert _bits_equal(injected, _run(gradtx.adam(**kw))[0])


def test_bit_equal_to_python_float_defaults_unlike_optax():
    injected, _ = _run(inject_hyperparams(gradtx.adamw)(_sched, weight_decay=_wd))
    plain, _ = _run(gradtx.adamw(_sched, weight_decay=_wd))
    assert _bits_equal(injected, plain)
    # Optax's injected AdamW drifts from its plain AdamW (optax#1532):
    theirs, _ = _run(optax.inject_hyperparams(optax.adamw)(_sched, weight_decay=_wd))
    their_plain, _ = _run(optax.adamw(_sched, weight_decay=_wd))
    assert _rel(theirs, their_plain) > 1e-7


# Where XLA folds a Python constant that the injected optimizer holds as an
# array, it may compile the same arithmetic differently (a fused multiply-add,
# another dot algorithm): muon skips ``add_decayed_weights(0.0)`` only when the
# zero is a Python number; sm3's momentum 0.5 is folded into the average; lars'
# scheduled learning rate meets its trust ratio (norms under ``lax.cond``) as a
# runtime scalar (measured 8e-8). The values agree to float32 rounding there,
# bit for bit everywhere else.
# shampoo: the (2, 3) leaf's gradients are exactly rank one (equal entries), so
# its factors are ridge-dominated (condition 1e6) and a 1-ulp difference (b2 as
# an array: 1 - b2 in float32) is amplified step after step (8% after 20).
CODEGEN_ONLY = {"muon": 1e-6, "sm3": 1e-6, "lars": 1e-6, "shampoo": 0.1,
                "shampoo_adagrad": 0.1}  # fmt: skip
STATIC = (
    "mask",
    "key",
    "ns_steps",
    "min_dim_size_to_factor",
    "clip_value_fn",
    "block_size",
    "min_size",
    "rank",  # galore: shapes of the projection
    "update_proj_gap",
    "precondition_frequency",  # soap: a Python modulus and shapes
    "max_precond_dim",
    "dim",  # adam_mini: the head size dim·dim/n_heads shapes its state
    "n_heads",
    "neuron_axis",
    "max_size_triangular",  # psgd_kron: which factors are triangular
    "min_ndim_triangular",
    # shampoo: shapes of the factors, Python branches on step counts
    "start_preconditioning_step",
    "preconditioning_compute_steps",
    "statistics_compute_steps",
    "graft_type",
    "nesterov",
    "exponent_override",
    "skip_preconditioning_rank_lt",
    "skip_preconditioning_dim_size_gt",
    "merge_small_dims_block_size",
)


# inject_hyperparams builds the deprecated optimistic_adam (it warns).
@pytest.mark.filterwarnings("ignore:optimistic_adam is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    "factory_name,kwargs", [c[1:] for c in OPTIMIZERS], ids=[c[0] for c in OPTIMIZERS]
)
def test_every_optimizer_bit_equal_to_plain_with_python_floats(factory_name, kwargs):
    tx_factory = factory(factory_name)
    params = inspect.signature(tx_factory).parameters
    static = [k for k in STATIC if k in params]
    injected, _ = _run(inject_hyperparams(tx_factory, static)(**kwargs), steps=20)
    plain, _ = _run(tx_factory(**kwargs), steps=20)
    case = next(c[0] for c in OPTIMIZERS if c[1:] == (factory_name, kwargs))
    if case in CODEGEN_ONLY:
        assert _rel(injected, plain) < CODEGEN_ONLY[case]
    else:
        assert _bits_equal(injected, plain)


def test_written_value_uses_its_float32_complement():
    opt = inject_hyperparams(gradtx.adam)(learning_rate=0.01)
    params = _start()
    state = opt.init(params)
    state.hyperparams["b2"] = jnp.asarray(0.995, F32)
    step = jax.jit(opt.update)
    plain = gradtx.adam(0.01, b2=F32(0.995))
    plain_state, plain_step = plain.init(params), jax.jit(plain.update)
    for _ in range(5):
        g = _grad(params)
        u, state = step(g, state, params)
        v, plain_state = plain_step(g, plain_state, params)
        assert _bits_equal(u, v)
        params = gradtx.apply_updates(params, u)


def test_complement_follows_a_written_value_and_comes_back():
    """b2 = 0.999 (Python), then f32(0.995) written into the state, then f32(0.999)
    written back: each segment is bit-equal to the plain optimizer given that
    value (Python 0.999, whose complement is f32(1 − 0.999), or the float32
    0.995, whose complement is 1 − f32(0.995)), continuing from the same state."""
    params = _start()
    opt = inject_hyperparams(gradtx.adam)(learning_rate=0.01)
    state, step = opt.init(params), jax.jit(opt.update)
    plain_state = state.inner_state
    segments = [(None, 0.999), (F32(0.995), F32(0.995)), (F32(0.999), 0.999)]
    for written, b2 in segments:
        if written is not None:
            state.hyperparams["b2"] = jnp.asarray(written)
        plain = jax.jit(gradtx.adam(0.01, b2=b2).update)
        for _ in range(4):
            g = _grad(params)
            u, state = step(g, state, params)
            v, plain_state = plain(g, plain_state, params)
            assert _bits_equal(u, v)
            assert _bits_equal(state.inner_state, plain_state)
            params = gradtx.apply_updates(params, u)
        assert state.hyperparams["b2"] == F32(b2)
    assert set(state.hyperparams_states) == set()  # the state is Optax's


def test_foreign_factories_get_plain_arrays():
    seen = []

    def mine(learning_rate=0.01, b2=0.999):
        seen.append(type(b2))
        root = jnp.sqrt(b2)  # any jnp function: plain arrays only
        return gradtx.chain(gradtx.scale_by_rms(decay=b2), gradtx.scale(-root))

    tx = inject_hyperparams(mine)()
    p = _start()
    tx.update(_grad(p), tx.init(p), p)
    assert all(t is not gradtx._core.maths.Complemented for t in seen)
    ours, _ = _run(inject_hyperparams(optax.adam)(0.01), steps=5)
    theirs, _ = _run(optax.inject_hyperparams(optax.adam)(0.01), steps=5)
    assert _bits_equal(ours, theirs)


def test_no_context_variable_in_the_maths():
    import pathlib

    # The warning-only flag of low_precision_stall never reaches a value
    # (tests/architecture/test_no_hidden_state.py).
    root = pathlib.Path(gradtx.__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "low_precision_stall.py":
            continue
        text = path.read_text()
        assert "contextvars" not in text and "ContextVar" not in text, path


def test_complement_keeps_the_gradient_of_one_minus_h():
    h = jnp.asarray(0.999, F32)
    ((h0, c0),) = _exact_complements({"b2": 0.999, "eps": 1e-8}).values()
    x = _complemented(h, h0, c0)
    assert isinstance(x, gradtx._core.maths.Complemented) and x.value is h
    c = gradtx._core.maths.one_minus(x)
    assert c == F32(1 - 0.999) and c != 1 - h
    assert 1 - x == 1 - h  # spelt out, 1 - x is 1 - value: only one_minus differs

    def complement(h):
        return gradtx._core.maths.one_minus(_complemented(h, h0, c0))

    assert jax.grad(complement)(h) == -1.0
    # another value: its own float32 complement
    assert complement(jnp.asarray(0.99, F32)) == 1 - F32(0.99)
    assert _exact_complements({"b2": 0.875, "b1": 0, "lr": F32(0.1)}) == {}


def test_matches_optax_inject_hyperparams():
    ours, ours_state = _run(inject_hyperparams(gradtx.adamw)(_sched, weight_decay=_wd))
    theirs, their_state = _run(
        optax.inject_hyperparams(optax.adamw)(_sched, weight_decay=_wd)
    )
    their_plain, _ = _run(optax.adamw(_sched, weight_decay=_wd))
    assert _rel(ours, their_plain) < 1e-6
    assert _rel(ours, theirs) < 1e-5  # Optax's injected AdamW drifts (optax#1532)
    assert type(ours_state).__name__ == type(their_state).__name__
    assert ours_state._fields == their_state._fields
    assert set(ours_state.hyperparams) == set(their_state.hyperparams)
    for k in ours_state.hyperparams:
        np.testing.assert_allclose(
            ours_state.hyperparams[k], their_state.hyperparams[k], rtol=1e-6
        )


def test_bfloat16_params_keep_float32_hyperparams_and_stay_finite():
    injected, state = _run(inject_hyperparams(gradtx.adam)(_sched), jnp.bfloat16, 30)
    plain, _ = _run(gradtx.adam(_sched, **ADAM32), jnp.bfloat16, 30)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(injected))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(injected))
    assert state.hyperparams["b2"].dtype == jnp.float32
    assert _bits_equal(injected, plain)


def test_update_dtype_follows_gradient():
    tx = inject_hyperparams(gradtx.adam)(0.1)
    p = jnp.ones(3, jnp.bfloat16)
    u, state = tx.update(p, tx.init(p), p)
    assert u.dtype == jnp.bfloat16
    assert all(v.dtype == jnp.float32 for v in state.hyperparams.values())


def test_changing_a_hyperparameter_does_not_recompile():
    traces = []
    tx = inject_hyperparams(gradtx.adam)(learning_rate=0.1)

    @jax.jit
    def step(p, s):
        traces.append(1)
        u, s = tx.update(_grad(p), s, p)
        return gradtx.apply_updates(p, u), s

    p = _start()
    state = tx.init(p)
    p, state = step(p, state)
    for lr in (0.05, 0.0, 0.2):
        state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        before = p
        p, state = step(p, state)
        if lr == 0.0:
            assert _bits_equal(p, before)
    state.hyperparams["b1"] = jnp.asarray(0.5, jnp.float32)
    p, state = step(p, state)
    assert len(traces) == 1 and step._cache_size() == 1
    assert float(state.hyperparams["b1"]) == 0.5


def test_changed_value_is_used_and_kept():
    tx = inject_hyperparams(gradtx.sgd)(learning_rate=0.1)
    state = tx.init(jnp.zeros(2))
    state.hyperparams["learning_rate"] = 0.5  # a Python float is accepted too
    u, state = jax.jit(tx.update)(jnp.ones(2), state)
    np.testing.assert_array_equal(u, -0.5 * jnp.ones(2))
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    assert not state.hyperparams["learning_rate"].weak_type


def test_invalid_concrete_hyperparameters_raise_at_construction():
    with pytest.raises(ValueError, match="b2"):
        inject_hyperparams(gradtx.adam)(0.1, b2=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        inject_hyperparams(gradtx.adam)(-0.1)
    with pytest.raises(ValueError, match="b1"):  # a schedule, checked at step 0
        inject_hyperparams(gradtx.scale_by_adam)(b1=lambda t: 1.0 + 0 * t)
    with pytest.raises(ValueError, match="b2"):  # 0.999 rounds to 1 in bfloat16
        inject_hyperparams(gradtx.adam, hyperparam_dtype=jnp.bfloat16)(0.1)
    with pytest.raises(ValueError, match="static_args"):
        inject_hyperparams(gradtx.adam, static_args="nope")
    with pytest.raises(ValueError, match="hyperparam_dtype"):
        inject_hyperparams(gradtx.adam, hyperparam_dtype=jnp.int32)
    with pytest.raises(TypeError, match="inner_factory"):
        inject_hyperparams(gradtx.adam(0.1))
    with pytest.raises(TypeError):
        inject_hyperparams(gradtx.adam)(0.1, bad_kwarg=1)


def test_invalid_value_written_to_state_raises_eagerly_only():
    tx = inject_hyperparams(gradtx.adam)(0.1)
    state = tx.init(jnp.zeros(2))
    state.hyperparams["b2"] = jnp.asarray(1.5, jnp.float32)
    with pytest.raises(ValueError, match="b2"):
        tx.update(jnp.ones(2), state)
    jax.jit(tx.update)(jnp.ones(2), state)  # traced: cannot be checked


def test_state_from_another_optimizer_is_rejected():
    state = inject_hyperparams(gradtx.sgd)(0.1).init(jnp.zeros(2))
    with pytest.raises(ValueError, match="b1"):
        inject_hyperparams(gradtx.adam)(0.1).update(jnp.ones(2), state)


def test_static_args_like_optax():
    mask = lambda p: {"a": True, "b": False}
    ours = inject_hyperparams(gradtx.adamw, static_args="mask")(
        0.01, weight_decay=0.5, mask=mask
    )
    theirs = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
        0.01, weight_decay=0.5, mask=mask
    )
    assert _rel(_run(ours, steps=20)[0], _run(theirs, steps=20)[0]) < 1e-5
    assert "mask" not in theirs.init(_start()).hyperparams
    assert "mask" not in ours.init(_start()).hyperparams
    plain = gradtx.adamw(0.01, weight_decay=0.5, mask=mask)
    assert _bits_equal(_run(ours, steps=20)[0], _run(plain, steps=20)[0])
    # Without static_args the mask function is taken for a schedule, as in Optax.
    with pytest.raises(TypeError, match="static_args='mask'"):
        inject_hyperparams(gradtx.adamw)(0.01, weight_decay=0.5, mask=mask)


def test_flags_and_dtypes_are_static():
    tx = inject_hyperparams(gradtx.adam)(0.1, mu_dtype=jnp.bfloat16, nesterov=True)
    state = tx.init(jnp.zeros(2))
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    assert state.inner_state[0].mu.dtype == jnp.bfloat16


KEYS = [
    pytest.param(lambda: jax.random.key(17), id="typed-key"),
    pytest.param(lambda: jax.random.PRNGKey(17), id="raw-uint32-key"),
]


def _same_key(a, b):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.extended):
        a, b = jax.random.key_data(a), jax.random.key_data(b)
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("make_key", KEYS)
def test_prng_key_is_kept_intact_and_noisy_sgd_is_bit_equal(make_key):
    key = make_key()
    injected = inject_hyperparams(gradtx.noisy_sgd)(learning_rate=0.1, key=key)
    state = jax.jit(injected.init)(_start())
    held = state.hyperparams["key"]
    assert held.dtype == key.dtype and _same_key(held, key)  # not cast to float
    traj, state = _run(injected, steps=20)
    plain, _ = _run(gradtx.noisy_sgd(learning_rate=0.1, key=key), steps=20)
    assert _bits_equal(traj, plain)
    assert state.hyperparams["key"].dtype == key.dtype
    assert _same_key(state.hyperparams["key"], key)


def _noise_factory(key, scale):
    """A user's factory that takes a PRNG key (as in Optax's own test)."""

    def init_fn(params):
        del params
        return (key, scale)

    def update_fn(updates, state, params=None):
        del params
        k, s = state
        k, sub = jax.random.split(k)
        return jax.tree.map(lambda u: s * jax.random.normal(sub, u.shape), updates), (
            k,
            s,
        )

    return gradtx.GradientTransformation(init_fn, update_fn)


@pytest.mark.parametrize("hyperparam_dtype", [None, jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("make_key", KEYS)
def test_user_factory_taking_a_key_matches_optax(make_key, hyperparam_dtype):
    key = make_key()
    params = [jnp.ones((1, 2)), jnp.ones(2), jnp.ones((1, 1, 1))]
    out = []
    for lib in (gradtx, optax):
        tx = lib.inject_hyperparams(_noise_factory, hyperparam_dtype=hyperparam_dtype)
        tx = tx(key=key, scale=1e-3)
        state = jax.jit(tx.init)(params)
        for _ in range(2):
            updates, state = jax.jit(tx.update)(params, state)
        out.append((updates, state))
    (ours, ours_state), (theirs, theirs_state) = out
    assert _bits_equal(ours, theirs)
    assert _same_key(ours_state.hyperparams["key"], key)
    assert ours_state.hyperparams["key"].dtype == key.dtype
    assert ours_state.inner_state[0].dtype == theirs_state.inner_state[0].dtype


def test_stateful_schedule_sees_extra_args():
    class LossScaled:
        def init(self):
            return jnp.zeros([], jnp.float32)

        def update(self, state, loss=0.0, **extra):
            return state + loss

        def __call__(self, state, **extra):
            return 0.1 / (1.0 + state)

    tx = inject_hyperparams(gradtx.sgd)(learning_rate=LossScaled())
    state = tx.init(jnp.zeros(1))
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    _, state = tx.update(jnp.ones(1), state, loss=jnp.asarray(1.0))
    u, state = tx.update(jnp.ones(1), state, loss=jnp.asarray(1.0))
    assert float(u[0]) == pytest.approx(-0.05)
    assert float(state.hyperparams_states["learning_rate"]) == 2.0


class _AddendumSchedule:
    """A stateful schedule whose int32 state grows by a float extra arg."""

    def init(self):
        return jnp.zeros([], jnp.int32)

    def update(self, state, addendum=0, **extra):
        return state + addendum

    def __call__(self, state, **extra):
        return state


@pytest.mark.parametrize("wrapper", ["inject_hyperparams", "deprecated_alias"])
def test_int32_stateful_schedule_keeps_a_float_increment_like_optax(wrapper):
    grads = (jnp.ones(3, F32), jnp.ones(2, F32))
    extra = {"addendum": 0.3 * jnp.ones((), F32)}
    out = []
    for lib in (gradtx, optax):
        if wrapper == "inject_hyperparams":
            injected = lib.inject_hyperparams(lib.scale)
        else:
            with pytest.warns(DeprecationWarning):
                injected = lib.inject_stateful_hyperparams(lib.scale)
        tx = injected(step_size=_AddendumSchedule())
        state = jax.jit(tx.init)(grads)
        assert state.hyperparams["step_size"].dtype == jnp.int32
        for _ in range(2):
            updates, state = jax.jit(tx.update)(grads, state, grads, **extra)
        out.append((updates, state))
    (ours, state), (theirs, optax_state) = out
    lr = state.hyperparams["step_size"]
    assert jnp.issubdtype(lr.dtype, jnp.floating)  # not truncated to int32 0
    np.testing.assert_array_equal(lr, extra["addendum"])
    total = state.hyperparams_states["step_size"]
    np.testing.assert_array_equal(total, 2 * extra["addendum"])
    assert lr.dtype == optax_state.hyperparams["step_size"].dtype
    np.testing.assert_array_equal(lr, optax_state.hyperparams["step_size"])
    assert _bits_equal(ours, theirs)
    np.testing.assert_array_equal(ours[0], extra["addendum"] * grads[0])


def test_wrapped_schedule_and_deprecated_alias():
    ws = WrappedSchedule(lambda t: 2 * t)
    s = ws.update(ws.update(ws.init()))
    assert int(ws(s)) == 4
    with pytest.warns(DeprecationWarning):
        tx = inject_stateful_hyperparams(gradtx.sgd)(learning_rate=_sched)
    assert isinstance(tx.init(jnp.zeros(1)), InjectStatefulHyperparamsState)
    assert InjectHyperparamsState._fields == optax.InjectHyperparamsState._fields


def test_optax_like_names_and_signature():
    import inspect

    for ours, theirs in [
        (inject_hyperparams, optax.inject_hyperparams),
        (inject_stateful_hyperparams, optax.inject_stateful_hyperparams),
    ]:
        a, b = inspect.signature(ours), inspect.signature(theirs)
        assert list(a.parameters) == list(b.parameters)
        assert [p.default for p in a.parameters.values()] == [
            p.default for p in b.parameters.values()
        ]
    wrapped = inject_hyperparams(gradtx.adam)
    assert wrapped.__name__ == "adam"
    assert next(iter(inspect.signature(wrapped).parameters)) == "learning_rate"
