"""Tests for gradtx.schedules (warmups, one-cycle, SGDR, interpolation).

As in test_schedules.py: every case is checked over steps 0..400 against Optax
(same arguments, float32, rtol 1e-6) and against a float64 closed form written
here from the definition; under jit, vmap and scan; built with traced float
hyperparameters; and each bad input must raise naming the argument.
"""

import inspect
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_schedules import ref_exponential, ref_warmup_cosine

from gradtx import schedules as S

STEPS = np.arange(0, 401)
NAMES = [
    "cosine_onecycle_schedule",
    "linear_onecycle_schedule",
    "piecewise_interpolate_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_exponential_decay_schedule",
]


# --- float64 references, written from the definitions ----------------------


def _lerp(a, b, f):
    return a + (b - a) * f


def _cos_interp(a, b, f):
    return b + (a - b) * (1.0 + math.cos(math.pi * f)) / 2.0


def ref_piecewise_interpolate(
    t, interpolate_type, init_value, boundaries_and_scales=None
):
    knots, value = [(0, init_value)], init_value
    for boundary, scale in sorted((boundaries_and_scales or {}).items()):
        value *= scale
        knots.append((boundary, value))
    for (b0, v0), (b1, v1) in itertools.pairwise(knots):
        if b0 <= t < b1:
            mix = _lerp if interpolate_type == "linear" else _cos_interp
            return mix(v0, v1, (t - b0) / (b1 - b0))
    return knots[-1][1]


def ref_linear_onecycle(
    t,
    transition_steps,
    peak_value,
    pct_start=0.3,
    pct_final=0.85,
    div_factor=25.0,
    final_div_factor=1e4,
):
    low, end = peak_value / div_factor, transition_steps
    t1, t2 = int(pct_start * end), int(pct_final * end)
    if t < t1:
        return _lerp(low, peak_value, t / t1)
    if t < t2:
        return _lerp(peak_value, low, (t - t1) / (t2 - t1))
    if t < end:
        return _lerp(low, low / final_div_factor, (t - t2) / (end - t2))
    return low / final_div_factor


def ref_cosine_onecycle(
    t,
    transition_steps,
    peak_value,
    pct_start=0.3,
    div_factor=25.0,
    final_div_factor=1e4,
):
    low, t1 = peak_value / div_factor, int(pct_start * transition_steps)
    final = low / final_div_factor
    if t < t1:
        return _cos_interp(low, peak_value, t / t1)
    if t < transition_steps:
        return _cos_interp(peak_value, final, (t - t1) / (transition_steps - t1))
    return final


def ref_warmup_constant(t, init_value, peak_value, warmup_steps):
    if warmup_steps == 0:
        return init_value
    return _lerp(init_value, peak_value, min(t, warmup_steps) / warmup_steps)


def ref_warmup_exponential(
    t,
    init_value,
    peak_value,
    warmup_steps,
    transition_steps,
    decay_rate,
    transition_begin=0,
    staircase=False,
    end_value=None,
):
    if t < warmup_steps:
        return _lerp(init_value, peak_value, t / warmup_steps)
    decay = (transition_steps, decay_rate, transition_begin, staircase, end_value)
    return ref_exponential(t - warmup_steps, peak_value, *decay)


def ref_sgdr(t, cosine_kwargs):
    start = 0
    for i, kwargs in enumerate(cosine_kwargs):
        if t < start + kwargs["decay_steps"] or i == len(cosine_kwargs) - 1:
            return ref_warmup_cosine(t - start, **kwargs)
        start += kwargs["decay_steps"]


REFS = {
    "piecewise_interpolate_schedule": ref_piecewise_interpolate,
    "linear_onecycle_schedule": ref_linear_onecycle,
    "cosine_onecycle_schedule": ref_cosine_onecycle,
    "warmup_constant_schedule": ref_warmup_constant,
    "warmup_exponential_decay_schedule": ref_warmup_exponential,
    "sgdr_schedule": ref_sgdr,
}


def ref_values(name, kwargs):
    return np.array([REFS[name](int(t), **kwargs) for t in STEPS], np.float64)


def _scale(values):
    return max(float(np.max(np.abs(values))), 1e-30)


# --- the table of cases -----------------------------------------------------


def case(name, *args, **kwargs):
    """A case given positionally, bound by name through Optax's own signature."""
    bound = inspect.signature(getattr(optax, name)).bind(*args, **kwargs)
    return pytest.param(name, dict(bound.arguments), id=name)


def cycle(init_value, peak_value, warmup_steps, decay_steps, *rest):
    keys = ("end_value", "exponent")
    base = dict(init_value=init_value, peak_value=peak_value)
    return (
        base
        | dict(warmup_steps=warmup_steps, decay_steps=decay_steps)
        | dict(zip(keys, rest, strict=False))
    )


PI = "piecewise_interpolate_schedule"
CASES = [
    case(PI, "linear", 1.0, {4: 0.1, 8: 0.01}),
    case(PI, "cosine", 0.5, {100: 2.0, 250: 0.1, 251: 3.0}),
    case(PI, "linear", 1e-3, {0: 10.0, 50: 0.0, 300: 1.0}),  # boundary at 0
    case(PI, "cosine", 2.0, {350: 0.25, 17: 0.5}),  # unsorted keys
    case(PI, "linear", 0.3),
    case(PI, "cosine", 0.3, {}),
    case("linear_onecycle_schedule", 300, 0.1),
    case("linear_onecycle_schedule", 97, 2.0, 0.2, 0.7, 10.0, 100.0),
    case("linear_onecycle_schedule", 400, 1e-3, 0.0, 0.5),  # no rise
    case("linear_onecycle_schedule", 3, 1.0, 0.4, 0.7, 4.0, 2.0),  # tiny
    case("cosine_onecycle_schedule", 300, 0.1),
    case("cosine_onecycle_schedule", 131, 1.5, 0.45, 5.0, 1e3),
    case("cosine_onecycle_schedule", 400, 3e-4, 0.0),  # no rise
    case("cosine_onecycle_schedule", 1, 1.0, 0.9, 2.0, 8.0),
    case("warmup_constant_schedule", 0.0, 1.0, 100),
    case("warmup_constant_schedule", 1e-4, 3e-3, 377),
    case("warmup_constant_schedule", 0.5, 0.1, 0),  # no warmup: constant
    case("warmup_exponential_decay_schedule", 0.0, 1.0, 50, 20, 0.5),
    case("warmup_exponential_decay_schedule", 0.1, 1.0, 77, 13, 0.8, 20, True, 0.2),
    case("warmup_exponential_decay_schedule", 0.0, 0.1, 0, 30, 1.2, end_value=0.3),
    case("warmup_exponential_decay_schedule", 0.2, 0.4, 10, 0, 0.5),  # no decay
    case("sgdr_schedule", [cycle(0.0, 1.0, 10, 100)] * 3),
    case(
        "sgdr_schedule",
        [cycle(0.1, 1.0, 10, 120, 0.05), cycle(0.0, 0.5, 0, 150, 0.01, 2.0)],
    ),
    case("sgdr_schedule", [cycle(1e-3, 3e-3, 37, 50, 1e-4, 0.5)]),
]
CASE_PARAMS = pytest.mark.parametrize(("name", "kwargs"), CASES)
_CONCRETE = ("pct_start", "pct_final")  # they set the phase boundaries


def _float_leaves(kwargs):
    """Indices of the float leaves of ``kwargs`` that may be traced."""
    flat, _ = jax.tree_util.tree_flatten_with_path(kwargs)
    return [
        i
        for i, (path, leaf) in enumerate(flat)
        if isinstance(leaf, float) and path[0].key not in _CONCRETE
    ]


FLOAT_CASES = [c for c in CASES if _float_leaves(c.values[1])]


# --- (a) Optax, (b) closed form, (c) jit / vmap / scan / Python ints --------

_EAGER = {}


def eager_values(name, kwargs):
    """Our schedule on all STEPS at once, evaluated op by op (cached per case)."""
    key = repr((name, kwargs))
    if key not in _EAGER:
        steps = jnp.asarray(STEPS, jnp.int32)
        _EAGER[key] = np.asarray(getattr(S, name)(**kwargs)(steps))
    return _EAGER[key]


@CASE_PARAMS
def test_matches_optax(name, kwargs):
    steps = jnp.asarray(STEPS, jnp.int32)
    got = eager_values(name, kwargs)
    # Optax's piecewise interpolation does not take an array of steps: vmap it.
    want = np.asarray(jax.vmap(getattr(optax, name)(**kwargs))(steps))
    assert got.shape == STEPS.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-6, atol=0)


@CASE_PARAMS
def test_matches_closed_form(name, kwargs):
    got = eager_values(name, kwargs).astype(np.float64)
    want = ref_values(name, kwargs)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * _scale(want))


@CASE_PARAMS
def test_jit_vmap_scan_and_python_ints_agree(name, kwargs):
    sched = getattr(S, name)(**kwargs)
    steps = jnp.asarray(STEPS, jnp.int32)
    eager = eager_values(name, kwargs)

    def close(got, want=eager):
        # XLA may reassociate float32 arithmetic under jit: last-bit differences.
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * _scale(eager))

    close(np.asarray(jax.jit(sched)(steps)))
    close(np.asarray(jax.vmap(sched)(steps[::8])), eager[::8])
    _, scanned = jax.lax.scan(
        lambda c, _: (c + 1, sched(c)), jnp.int32(0), length=len(STEPS)
    )
    close(np.asarray(scanned))
    close(float(sched(50)), eager[50])  # a plain Python int
    close(float(sched(np.int32(20))), eager[20])


@pytest.mark.parametrize(("name", "kwargs"), FLOAT_CASES)
def test_traced_float_hyperparameters(name, kwargs):
    leaves, treedef = jax.tree.flatten(kwargs)
    traced = _float_leaves(kwargs)
    steps = jnp.asarray(STEPS, jnp.int32)

    @jax.jit
    def run(values):
        mixed = list(leaves)
        for i, v in zip(traced, values, strict=True):
            mixed[i] = v
        return getattr(S, name)(**jax.tree.unflatten(treedef, mixed))(steps)

    got = np.asarray(run([jnp.float32(leaves[i]) for i in traced]))
    want = ref_values(name, kwargs)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * _scale(want))


def test_vmap_over_peak_values():
    peaks = jnp.array([0.5, 1.0, 2.0])
    at_peak = jax.vmap(lambda p: S.cosine_onecycle_schedule(100, p)(30))
    np.testing.assert_allclose(np.asarray(jax.jit(at_peak)(peaks)), peaks, rtol=1e-6)


def test_batched_steps_of_any_shape():
    steps = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
    for sched in (
        S.piecewise_interpolate_schedule("cosine", 1.0, {5: 0.5}),
        S.piecewise_interpolate_schedule("linear", 1.0),
        S.linear_onecycle_schedule(10, 1.0),
        S.warmup_constant_schedule(0.0, 1.0, 5),
    ):
        assert sched(steps).shape == (3, 4)


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


# --- bad inputs: each raises, naming the factory and the argument -----------


def bad(error, arg, factory, *args, **kwargs):
    return pytest.param(
        factory, args, kwargs, error, arg, id=f"{factory.__name__}-{arg}"
    )


NAN, INF = float("nan"), float("inf")
PWI, LOC, COC = (
    S.piecewise_interpolate_schedule,
    S.linear_onecycle_schedule,
    S.cosine_onecycle_schedule,
)
WC, WE, SG = (
    S.warmup_constant_schedule,
    S.warmup_exponential_decay_schedule,
    S.sgdr_schedule,
)
BS = "boundaries_and_scales"
GOOD = cycle(0.0, 1.0, 10, 100)
BAD = [
    bad(ValueError, "interpolate_type", PWI, "quadratic", 1.0),
    bad(ValueError, "interpolate_type", PWI, None, 1.0),
    bad(TypeError, "init_value", PWI, "linear", "1.0"),
    bad(ValueError, "init_value", PWI, "linear", NAN),
    bad(ValueError, BS, PWI, "linear", 1.0, {10: -0.1}),
    bad(ValueError, BS, PWI, "cosine", 1.0, {-10: 0.1}),
    bad(TypeError, BS, PWI, "linear", 1.0, {10.5: 0.1}),
    bad(TypeError, BS, PWI, "linear", 1.0, [(10, 0.1)]),
    bad(ValueError, "transition_steps", LOC, 0, 1.0),
    bad(TypeError, "transition_steps", LOC, 10.5, 1.0),
    bad(ValueError, "peak_value", LOC, 100, NAN),
    bad(ValueError, "pct_start", LOC, 100, 1.0, -0.1),
    bad(ValueError, "pct_final", LOC, 100, 1.0, 0.3, 1.5),
    bad(ValueError, "pct_final", LOC, 100, 1.0, 0.5, 0.4),  # before the peak
    bad(ValueError, "pct_final", LOC, 100, 1.0, 0.3, 1.0),  # no final phase
    bad(ValueError, "pct_final", LOC, 1, 1.0),  # T = 1: phases collide
    bad(ValueError, "div_factor", LOC, 100, 1.0, div_factor=0.0),
    bad(ValueError, "final_div_factor", LOC, 100, 1.0, final_div_factor=-1.0),
    bad(ValueError, "final_div_factor", LOC, 100, 1.0, final_div_factor=INF),
    bad(ValueError, "transition_steps", COC, -5, 1.0),
    bad(TypeError, "peak_value", COC, 100, None),
    bad(ValueError, "pct_start", COC, 100, 1.0, 1.0),  # no decay phase
    bad(ValueError, "pct_start", COC, 100, 1.0, NAN),
    bad(ValueError, "div_factor", COC, 100, 1.0, div_factor=-25.0),
    bad(ValueError, "final_div_factor", COC, 100, 1.0, final_div_factor=0.0),
    bad(ValueError, "warmup_steps", WC, 0.0, 1.0, -1),
    bad(TypeError, "warmup_steps", WC, 0.0, 1.0, 2.5),
    bad(TypeError, "peak_value", WC, 0.0, "1", 10),
    bad(ValueError, "init_value", WC, NAN, 1.0, 10),
    bad(ValueError, "warmup_steps", WE, 0.0, 1.0, -10, 10, 0.5),
    bad(ValueError, "transition_steps", WE, 0.0, 1.0, 10, -1, 0.5),
    bad(ValueError, "decay_rate", WE, 0.0, 1.0, 10, 10, 0.0),
    bad(ValueError, "decay_rate", WE, 0.0, 1.0, 10, 10, -0.5),
    bad(ValueError, "transition_begin", WE, 0.0, 1.0, 10, 10, 0.5, -3),
    bad(TypeError, "staircase", WE, 0.0, 1.0, 10, 10, 0.5, staircase="yes"),
    bad(ValueError, "end_value", WE, 0.0, 1.0, 10, 10, 0.5, end_value=NAN),
    bad(ValueError, "peak_value", WE, 0.0, NAN, 10, 10, 0.5),
    bad(TypeError, "cosine_kwargs", SG, GOOD),  # one dict, not a list of them
    bad(TypeError, "cosine_kwargs", SG, 5),
    bad(ValueError, "cosine_kwargs", SG, []),
    bad(TypeError, "cosine_kwargs[1]", SG, [GOOD, 0.1]),
    bad(ValueError, "cosine_kwargs[1]", SG, [GOOD, GOOD | {"decay_steps": 5}]),
    bad(TypeError, "cosine_kwargs[0]", SG, [{"init_value": 0.0}]),
    bad(TypeError, "cosine_kwargs[0]", SG, [GOOD | {"lr": 1.0}]),
]


@pytest.mark.parametrize(("factory", "args", "kwargs", "error", "arg"), BAD)
def test_bad_input_raises_naming_the_argument(factory, args, kwargs, error, arg):
    pattern = f"{factory.__name__}: `{arg}".replace("[", r"\[").replace("]", r"\]")
    with pytest.raises(error, match=pattern):
        factory(*args, **kwargs)


def test_sgdr_error_names_the_inner_argument():
    with pytest.raises(ValueError, match=r"cosine_kwargs\[1\].*decay_steps"):
        S.sgdr_schedule([GOOD, GOOD | {"decay_steps": 5}])


def test_traced_phase_fractions_are_rejected_loudly():
    with pytest.raises(TypeError, match="pct_start"):
        jax.jit(lambda p: S.cosine_onecycle_schedule(100, 1.0, p)(0))(0.3)


def test_optax_collapses_onecycle_phases_silently():
    # The case rejected above: Optax drops a scale and never reaches the peak.
    sched = optax.linear_onecycle_schedule(1, 1.0)
    assert max(float(sched(t)) for t in range(3)) < 0.5
