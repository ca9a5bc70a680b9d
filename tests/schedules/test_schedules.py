"""Tests for gradtx.schedules.

Every schedule is checked over steps 0..300 against Optax (same arguments,
float32, rtol 1e-6) and against a float64 closed form written here from the
definition; under jit, vmap and scan; built with traced hyperparameters; and on
bad input, which must raise naming the argument.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx import schedules as S

STEPS = np.arange(0, 301)
NAMES = [
    "constant_schedule",
    "linear_schedule",
    "polynomial_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "piecewise_constant_schedule",
    "warmup_cosine_decay_schedule",
    "join_schedules",
]


# --- float64 references, written from the definitions ----------------------


def ref_constant(t, value):
    return value


def ref_polynomial(
    t, init_value, end_value, power, transition_steps, transition_begin=0
):
    if transition_steps == 0:
        return init_value
    elapsed = min(max(t - transition_begin, 0), transition_steps)
    progress = elapsed / transition_steps
    return end_value + (init_value - end_value) * (1.0 - progress) ** power


def ref_linear(t, init_value, end_value, transition_steps, transition_begin=0):
    if transition_steps == 0 or t <= transition_begin:
        return init_value
    if t >= transition_begin + transition_steps:
        return end_value
    slope = (end_value - init_value) / transition_steps
    return init_value + slope * (t - transition_begin)


def ref_exponential(
    t,
    init_value,
    transition_steps,
    decay_rate,
    transition_begin=0,
    staircase=False,
    end_value=None,
):
    if transition_steps == 0:
        return init_value
    periods = max(t - transition_begin, 0) / transition_steps
    if staircase:
        periods = math.floor(periods)
    value = init_value * math.exp(periods * math.log(decay_rate))
    if end_value is None:
        return value
    return max(value, end_value) if decay_rate < 1 else min(value, end_value)


def ref_cosine(t, init_value, decay_steps, alpha=0.0, exponent=1.0):
    angle = math.pi * min(t, decay_steps) / decay_steps
    factor = ((1.0 + math.cos(angle)) / 2.0) ** exponent
    return init_value * (alpha + (1.0 - alpha) * factor)


def ref_piecewise(t, init_value, boundaries_and_scales=None):
    value = init_value
    for boundary, scale in (boundaries_and_scales or {}).items():
        if t >= boundary:
            value *= scale
    return value


def ref_warmup_cosine(
    t, init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0
):
    if t < warmup_steps:
        return init_value + (peak_value - init_value) * t / warmup_steps
    if peak_value == 0:
        return 0.0
    span = decay_steps - warmup_steps
    angle = math.pi * min(t - warmup_steps, span) / span
    factor = ((1.0 + math.cos(angle)) / 2.0) ** exponent
    return end_value + (peak_value - end_value) * factor


def ref_join(t, schedules, boundaries):
    starts = [0, *boundaries]
    i = max(k for k, start in enumerate(starts) if t >= start)
    name, kwargs = schedules[i]
    return REFS[name](t - starts[i], **kwargs)


REFS = {
    "constant_schedule": ref_constant,
    "linear_schedule": ref_linear,
    "polynomial_schedule": ref_polynomial,
    "exponential_decay": ref_exponential,
    "cosine_decay_schedule": ref_cosine,
    "piecewise_constant_schedule": ref_piecewise,
    "warmup_cosine_decay_schedule": ref_warmup_cosine,
    "join_schedules": ref_join,
}


def ref_values(name, kwargs):
    return np.array([REFS[name](int(t), **kwargs) for t in STEPS], np.float64)


def build(lib, name, kwargs):
    """The schedule ``name(**kwargs)`` from ``lib`` (gradtx.schedules or optax)."""
    if name == "join_schedules":
        parts = [build(lib, n, kw) for n, kw in kwargs["schedules"]]
        return lib.join_schedules(parts, kwargs["boundaries"])
    return getattr(lib, name)(**kwargs)


# --- the table of cases -----------------------------------------------------


def case(name, *args, **kwargs):
    """A case given positionally, bound by name through Optax's own signature."""
    bound = inspect.signature(getattr(optax, name)).bind(*args, **kwargs)
    return pytest.param(name, dict(bound.arguments), id=name)


def part(name, *args, **kwargs):
    """A member of a joined schedule, as (name, kwargs)."""
    return case(name, *args, **kwargs).values


CASES = [
    case("constant_schedule", 0.3),
    case("constant_schedule", -2.0),
    case("linear_schedule", 1.0, 0.0, 100),
    case("linear_schedule", 0.0, 0.5, 37, 50),
    case("linear_schedule", 1e-3, 1e-5, 300, 1),
    case("linear_schedule", 0.7, 0.1, 0),  # transition_steps=0: constant
    case("polynomial_schedule", 1.0, 0.01, 2.0, 100, 5),
    case("polynomial_schedule", 0.2, 1.5, 0.5, 250),
    case("polynomial_schedule", 3.0, 1.0, 3, 64, 100),
    case("polynomial_schedule", 0.4, 0.0, 1.5, 0, 7),
    case("exponential_decay", 1.0, 10, 0.5),
    case("exponential_decay", 0.1, 7, 0.9, 20, True, 0.03),
    case("exponential_decay", 0.01, 25, 1.3, end_value=0.05),  # growth, ceiling
    case("exponential_decay", 2.0, 50, 0.7, 100, True),
    case("exponential_decay", 1.0, 13, 1.0, end_value=0.5),
    case("exponential_decay", 0.5, 0, 0.1),  # transition_steps=0: constant
    case("cosine_decay_schedule", 1.0, 100),
    case("cosine_decay_schedule", 0.5, 250, 0.1),
    case("cosine_decay_schedule", 2.0, 1, 0.3, 2.0),
    case("cosine_decay_schedule", 0.1, 301, exponent=0.5),
    case("piecewise_constant_schedule", 1.0, {100: 0.1, 200: 0.01}),
    case("piecewise_constant_schedule", 0.3, {250: 2.0, 0: 0.5, 17: 0.9, 18: 1.0}),
    case("piecewise_constant_schedule", 0.2, {50: 0.0}),
    case("piecewise_constant_schedule", 0.2),
    case("piecewise_constant_schedule", 0.2, {}),
    case("warmup_cosine_decay_schedule", 0.0, 1.0, 10, 200),
    case("warmup_cosine_decay_schedule", 1e-4, 3e-3, 50, 251, 1e-4, 1.5),
    case("warmup_cosine_decay_schedule", 0.1, 1.0, 0, 100, 0.2),  # no warmup
    case("warmup_cosine_decay_schedule", 0.5, 0.0, 20, 40, 0.1),  # peak_value=0
    case(
        "join_schedules",
        [
            part("constant_schedule", 0.1),
            part("linear_schedule", 0.1, 1.0, 30),
            part("cosine_decay_schedule", 1.0, 100),
        ],
        [20, 60],
    ),
    case(
        "join_schedules",
        [part("exponential_decay", 1.0, 10, 0.8), part("constant_schedule", 0.25)],
        [0],
    ),
    case("join_schedules", [part("polynomial_schedule", 2.0, 1.0, 2.0, 50)], []),
]
CASE_PARAMS = pytest.mark.parametrize(("name", "kwargs"), CASES)
FLOAT_CASES = [
    c for c in CASES if any(isinstance(v, float) for v in c.values[1].values())
]


def _scale(values):
    return max(float(np.max(np.abs(values))), 1e-30)


# --- (a) Optax, (b) closed form, (c) jit / vmap / scan / Python ints --------


@CASE_PARAMS
def test_matches_optax(name, kwargs):
    steps = jnp.asarray(STEPS, jnp.int32)
    got = np.asarray(build(S, name, kwargs)(steps))
    want = np.broadcast_to(np.asarray(build(optax, name, kwargs)(steps)), got.shape)
    assert got.shape == STEPS.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@CASE_PARAMS
def test_matches_closed_form(name, kwargs):
    steps = jnp.asarray(STEPS, jnp.int32)
    got = np.asarray(build(S, name, kwargs)(steps), np.float64)
    want = ref_values(name, kwargs)
    # float32 arithmetic: relative 1e-6, and absolute 1e-6 of the schedule's
    # scale where a value crosses zero (e.g. the end of a decay to 0).
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * _scale(want))


@CASE_PARAMS
def test_jit_vmap_scan_and_python_ints_agree(name, kwargs):
    sched = build(S, name, kwargs)
    steps = jnp.asarray(STEPS, jnp.int32)
    eager = np.asarray(sched(steps))

    def close(got, want=eager):
        # XLA may reassociate float32 arithmetic under jit: last-bit differences.
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * _scale(eager))

    close(np.asarray(jax.jit(sched)(steps)))
    close(np.asarray(jax.vmap(sched)(steps)))
    _, scanned = jax.lax.scan(lambda c, _: (c + 1, sched(c)), jnp.int32(0), length=301)
    close(np.asarray(scanned))
    for t in (0, 50, 300):
        close(float(sched(t)), eager[t])  # a plain Python int
    close(float(sched(np.int32(20))), eager[20])


# --- (d) hyperparameters traced inside jit / vmap --------------------------


@pytest.mark.parametrize(("name", "kwargs"), FLOAT_CASES)
def test_traced_float_hyperparameters(name, kwargs):
    floats = {k: v for k, v in kwargs.items() if isinstance(v, float)}
    steps = jnp.asarray(STEPS, jnp.int32)

    @jax.jit
    def run(hparams):
        return build(S, name, {**kwargs, **hparams})(steps)

    got = np.asarray(run({k: jnp.float32(v) for k, v in floats.items()}))
    want = ref_values(name, kwargs)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * _scale(want))


def test_traced_learning_rate_example():
    got = jax.jit(lambda lr: S.linear_schedule(lr, 0.0, 10)(3))(0.5)
    np.testing.assert_allclose(float(got), 0.35, rtol=1e-6)


def test_vmap_over_hyperparameters():
    peaks = jnp.array([0.5, 1.0, 2.0])
    at_60 = jax.vmap(lambda p: S.warmup_cosine_decay_schedule(0.0, p, 10, 110)(60))
    got = jax.jit(at_60)(peaks)
    np.testing.assert_allclose(np.asarray(got), np.asarray(peaks) / 2, rtol=1e-6)


def test_traced_scales_and_join_parts():
    @jax.jit
    def run(scale, rate, peak):
        pw = S.piecewise_constant_schedule(1.0, {10: scale, 20: scale})
        joined = S.join_schedules(
            [S.exponential_decay(1.0, 10, rate, end_value=0.3), pw], [100]
        )
        warm = S.warmup_cosine_decay_schedule(0.0, peak, 0, 10, end_value=0.0)
        return pw(25), joined(20), joined(115), warm(5)

    got = [float(v) for v in run(0.5, 0.5, 0.0)]
    np.testing.assert_allclose(got, [0.25, 0.3, 0.5, 0.0], rtol=1e-6)


def test_ramp_end_is_exact_under_jit():
    # XLA rewrites x / T as x * (1 / T), so 1 - T / T can come out as -5e-8;
    # a fractional power of that is NaN (Optax 0.2.8 returns NaN here).
    sched = S.polynomial_schedule(0.2, 1.5, power=0.5, transition_steps=250)
    got = np.asarray(jax.jit(sched)(jnp.arange(301, dtype=jnp.int32)))
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(got[250:], np.float32(1.5))
    linear = jax.jit(S.linear_schedule(1.0, 0.0, 300))
    assert float(linear(300)) == 0.0


def test_concrete_jax_scalars_are_accepted():
    sched = S.exponential_decay(jnp.float32(1.0), 10, jnp.float32(0.5))
    np.testing.assert_allclose(float(sched(20)), 0.25, rtol=1e-6)
    sched = S.warmup_cosine_decay_schedule(0.0, jnp.array(2.0), 10, 20, np.float32(1))
    np.testing.assert_allclose(float(sched(30)), 1.0, rtol=1e-6)


# --- API surface ------------------------------------------------------------


def test_all_lists_these_names():
    assert set(NAMES) <= set(S.__all__)


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_optax(name):
    ours = inspect.signature(getattr(S, name)).parameters
    theirs = inspect.signature(getattr(optax, name)).parameters
    assert list(ours) == list(theirs)
    for p in ours:
        assert ours[p].default == theirs[p].default, p
        assert ours[p].kind == theirs[p].kind, p


@pytest.mark.parametrize("name", NAMES)
def test_has_docstring_with_example(name):
    doc = getattr(S, name).__doc__
    for section in ("Args:", "Returns:", ">>> "):
        assert section in doc, (name, section)


def test_schedules_accept_batched_steps_of_any_shape():
    steps = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
    for sched in (S.constant_schedule(1.0), S.piecewise_constant_schedule(2.0)):
        assert sched(steps).shape == (3, 4)
    assert S.cosine_decay_schedule(1.0, 5)(steps).shape == (3, 4)


# --- bad inputs: each raises, naming the factory and the argument -----------


def bad(error, arg, factory, *args, **kwargs):
    """A call ``factory(*args, **kwargs)`` that must raise ``error`` naming arg."""
    return pytest.param(
        factory, args, kwargs, error, arg, id=f"{factory.__name__}-{arg}"
    )


NAN, INF = float("nan"), float("inf")
ONE = S.constant_schedule(1.0)
PW, WC = S.piecewise_constant_schedule, S.warmup_cosine_decay_schedule
BS = "boundaries_and_scales"
BAD = [
    bad(TypeError, "value", S.constant_schedule, "0.1"),
    bad(ValueError, "value", S.constant_schedule, NAN),
    bad(ValueError, "value", S.constant_schedule, jnp.ones(3)),
    bad(ValueError, "transition_steps", S.linear_schedule, 1.0, 0.0, -1),
    bad(ValueError, "transition_begin", S.linear_schedule, 1.0, 0.0, 10, -5),
    bad(TypeError, "transition_steps", S.linear_schedule, 1.0, 0.0, 10.5),
    bad(TypeError, "init_value", S.linear_schedule, None, 0.0, 10),
    bad(ValueError, "end_value", S.linear_schedule, 1.0, NAN, 10),
    bad(ValueError, "end_value", S.linear_schedule, 1.0, NAN, 0),  # even if constant
    bad(TypeError, "power", S.polynomial_schedule, 1.0, 0.0, "2", 10),
    bad(TypeError, "power", S.polynomial_schedule, 1.0, 0.0, True, 10),
    bad(ValueError, "power", S.polynomial_schedule, 1.0, 0.0, -1.0, 10),
    bad(ValueError, "transition_steps", S.polynomial_schedule, 1.0, 0.0, 2.0, -3),
    bad(ValueError, "transition_begin", S.polynomial_schedule, 1.0, 0.0, 2.0, 3, -1),
    bad(ValueError, "decay_rate", S.exponential_decay, 1.0, 10, 0.0),
    bad(ValueError, "decay_rate", S.exponential_decay, 1.0, 10, -0.5),
    bad(ValueError, "decay_rate", S.exponential_decay, 1.0, 10, NAN),
    bad(ValueError, "decay_rate", S.exponential_decay, 1.0, 10, INF),
    bad(ValueError, "decay_rate", S.exponential_decay, 1.0, 10, jnp.float32(-1)),
    bad(ValueError, "decay_rate", S.exponential_decay, 1.0, 0, 0.0),  # even if constant
    bad(ValueError, "transition_steps", S.exponential_decay, 1.0, -10, 0.5),
    bad(ValueError, "transition_begin", S.exponential_decay, 1.0, 10, 0.5, -1),
    bad(TypeError, "staircase", S.exponential_decay, 1.0, 10, 0.5, staircase="yes"),
    bad(TypeError, "end_value", S.exponential_decay, 1.0, 10, 0.5, end_value="0.1"),
    bad(ValueError, "decay_steps", S.cosine_decay_schedule, 1.0, 0),
    bad(ValueError, "decay_steps", S.cosine_decay_schedule, 1.0, -100),
    bad(TypeError, "decay_steps", S.cosine_decay_schedule, 1.0, 100.5),
    bad(ValueError, "exponent", S.cosine_decay_schedule, 1.0, 100, exponent=-1.0),
    bad(ValueError, "alpha", S.cosine_decay_schedule, 1.0, 100, alpha=NAN),
    bad(ValueError, BS, PW, 1.0, {10: -0.1}),
    bad(TypeError, BS, PW, 1.0, {10.5: 0.1}),
    bad(ValueError, BS, PW, 1.0, {-10: 0.1}),
    bad(TypeError, BS, PW, 1.0, [(10, 0.1)]),
    bad(TypeError, BS, PW, 1.0, {10: None}),
    bad(ValueError, "boundaries", S.join_schedules, [ONE, ONE], [5, 10]),
    bad(ValueError, "boundaries", S.join_schedules, [ONE, ONE, ONE], [5]),
    bad(ValueError, "boundaries", S.join_schedules, [ONE, ONE, ONE], [10, 5]),
    bad(ValueError, "boundaries", S.join_schedules, [ONE, ONE, ONE], [5, 5]),
    bad(TypeError, "boundaries", S.join_schedules, [ONE, ONE], [5.5]),
    bad(ValueError, "boundaries", S.join_schedules, [ONE, ONE], [-1]),
    bad(TypeError, "boundaries", S.join_schedules, [ONE, ONE], 5),
    bad(TypeError, "schedules", S.join_schedules, [ONE, 0.1], [5]),
    bad(TypeError, "schedules", S.join_schedules, ONE, []),
    bad(ValueError, "schedules", S.join_schedules, [], []),
    bad(ValueError, "decay_steps", WC, 0.0, 1.0, 100, 50),
    bad(ValueError, "decay_steps", WC, 0.0, 1.0, 100, 100),
    bad(ValueError, "warmup_steps", WC, 0.0, 1.0, -1, 100),
    bad(TypeError, "warmup_steps", WC, 0.0, 1.0, 10.25, 100),
    bad(ValueError, "exponent", WC, 0.0, 1.0, 10, 100, exponent=-2.0),
    bad(TypeError, "peak_value", WC, 0.0, "1", 10, 100),
]


@pytest.mark.parametrize(("factory", "args", "kwargs", "error", "arg"), BAD)
def test_bad_input_raises_naming_the_argument(factory, args, kwargs, error, arg):
    with pytest.raises(error, match=f"{factory.__name__}: `{arg}"):
        factory(*args, **kwargs)


def test_error_message_shows_value_and_range():
    with pytest.raises(ValueError) as info:
        S.linear_schedule(1.0, 0.0, transition_steps=-7)
    assert "-7" in str(info.value) and ">= 0" in str(info.value)
    with pytest.raises(ValueError) as info:
        S.exponential_decay(1.0, 10, decay_rate=-0.5)
    assert "-0.5" in str(info.value) and "(0, inf)" in str(info.value)
    with pytest.raises(ValueError, match=r"got \[10, 5\]"):
        S.join_schedules([S.constant_schedule(1.0)] * 3, [10, 5])


def test_join_accepts_tuples_numpy_boundaries_and_optax_parts():
    parts = (optax.constant_schedule(0.5), S.linear_schedule(0.5, 0.0, 10))
    sched = S.join_schedules(parts, np.array([5]))
    got = [float(sched(t)) for t in (0, 5, 10, 15)]
    np.testing.assert_allclose(got, [0.5, 0.5, 0.25, 0.0], rtol=1e-6)
    sched = S.piecewise_constant_schedule(1.0, {np.int64(3): 0.5})
    assert float(sched(3)) == 0.5


def test_traced_step_counts_are_rejected_loudly():
    with pytest.raises(TypeError, match="transition_steps"):
        jax.jit(lambda n: S.linear_schedule(1.0, 0.0, n)(0))(10)


def test_integral_float_step_counts_are_accepted_like_optax():
    ours = S.cosine_decay_schedule(1.0, decay_steps=1e3)
    theirs = optax.cosine_decay_schedule(1.0, decay_steps=1e3)
    for step in (0, 10, 500, 999, 1000, 2000):
        np.testing.assert_allclose(ours(step), theirs(step), rtol=1e-6)
    S.linear_schedule(1.0, 0.0, transition_steps=100.0, transition_begin=np.float32(5))
