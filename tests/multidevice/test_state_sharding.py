"""Every optimizer's state follows the parameters' shardings (issue 8).

For each optimizer, on the meshes of ``_setup.MESHES`` (8 and 2x4 devices,
Auto and Explicit axes) with a tree of FSDP, tensor-parallel, replicated
(data-parallel) and scalar leaves:

* ``init`` — eager and under ``jit`` — gives every state leaf made like a
  parameter that parameter's sharding, and :func:`gradtx.state_shardings`
  predicts every leaf's sharding, derived leaves included;
* the compiled step returns the state with the shardings it took (no
  resharding; Auto axes: read off the compiled step, Explicit: off its types),
  and the state keeps them over steps;
* three sharded steps give the single-device numbers.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from _setup import (
    ALL,
    LEAVES,
    WRAPPERS,
    build,
    context,
    host_params,
    sharded_params,
    step_fn,
)

import gradtx

STEPS = 3
SHAPES = {shape: name for name, (shape, *_) in LEAVES.items()}

# Optimizers whose compiled step may gather, and why. The others' maths is
# elementwise or a reduction: at most an all-reduce, never a gather.
GATHERS = {
    "muon": "Newton-Schulz multiplies whole matrices",
    "muon_polar_express_gram": "Newton-Schulz multiplies whole matrices",
    "prodigy": "the overflow rescue of its per-leaf norms concatenates leaves",
    "fromage": "the overflow rescue of its per-leaf norms concatenates leaves",
    "lars": "the overflow rescue of its per-leaf norms concatenates leaves",
    "lamb": "the overflow rescue of its per-leaf norms concatenates leaves",
    "adafactor": "factored statistics, and its per-leaf RMS clip's rescue",
    "adafactor_momentum": "factored statistics, and its per-leaf RMS clip's rescue",
    "adam_8bit": "blocks of 256 run across the flattened, split leaves",
    "adamw_8bit": "blocks of 256 run across the flattened, split leaves",
    "sgd_8bit": "blocks of 256 run across the flattened, split leaves",
    "sgd_8bit_nesterov": "blocks of 256 run across the flattened, split leaves",
    "lbfgs": "its two-loop recursion and line search take whole-tree dots",
    # Found when DoG joined the table: XLA gathers a split vector inside the
    # distance-from-start global norm (params − init_params); the state keeps
    # its sharding and the numbers are the one-device ones.
    "dog": "XLA gathers a split vector inside its distance-from-start norm",
    "galore": "the SVD and the projections need whole matrices",
    "flatten": "it concatenates every leaf into one vector",
}
CASES = ALL + WRAPPERS
IDS = [oid for oid, *_ in CASES]


def _richest_per_factory(entries):
    """One entry per optimizer: the one with the most options set (momentum,
    centering, masks...), so the step sees its largest state. The init test
    runs every entry."""
    best = {}
    for entry in entries:
        factory, kwargs = entry[1], entry[2]
        if factory not in best or len(kwargs) > len(best[factory][2]):
            best[factory] = entry
    return list(best.values())


# Wrappers with their own update logic (conditional steps, a compensation, a
# copy of the params); the others' init placement is tested above.
STEP_WRAPPERS = {"MultiSteps", "apply_if_finite", "kahan_summation", "schedule_free"}
# The matrix optimizers' steps (their factors and momenta after steps, and
# their numbers, on Auto and Explicit axes) are test_matrix_factors.py's.
MATRIX_STEPS = {"soap", "shampoo", "psgd_kron", "normuon"}
STEP_CASES = [
    entry for entry in _richest_per_factory(ALL) if entry[1] not in MATRIX_STEPS
] + [w for w in WRAPPERS if w[0] in STEP_WRAPPERS]
RANDOM = {
    "noisy_sgd",
    "sophia",
    "stochastic_rounding",
}  # random numbers drawn under sharding
STEP_IDS = [oid for oid, *_ in STEP_CASES]

# 8-bit blocks run across the flattened leaf: where they do not align with
# the leaf's split, the compiler picks their split (Auto axes) at the first
# step and keeps it from then on (docs/sharding.md); out_shardings pins it.
COMPILER_PLACED = {"adam_8bit", "adamw_8bit", "sgd_8bit", "sgd_8bit_nesterov"}


def _equivalent(a, b, ndim: int) -> bool:
    return a.is_equivalent_to(b, ndim)


def _check_like_params(state, shardings, where: str) -> None:
    """Every state leaf shaped like a parameter has that parameter's sharding."""
    for path, x in jax.tree_util.tree_leaves_with_path(state):
        name = SHAPES.get(tuple(np.shape(x)))
        if name is None or not hasattr(x, "sharding") or np.ndim(x) == 0:
            continue
        assert _equivalent(x.sharding, shardings[name], x.ndim), (
            f"{where}: state leaf {jax.tree_util.keystr(path)} is sharded "
            f"{x.sharding}, its parameter {name!r} {shardings[name]}"
        )


@functools.cache
def _single_device(oid: str):
    """Params and state after ``STEPS`` steps on one device."""
    _, factory, kwargs = next(entry for entry in CASES if entry[0] == oid)
    tx = build(factory, kwargs)
    params = jax.device_put(host_params(), jax.devices()[0])
    step = jax.jit(step_fn(tx, factory))
    state = tx.init(params)
    for _ in range(STEPS):
        params, state = step(params, state)
    return jax.device_get((params, state))


def _check_init(tx, params, shardings, mesh_name, jit_too=True):
    """``tx.init(params)``, after checking where its leaves are."""
    state = tx.init(params)
    _check_like_params(state, shardings, "eager init")
    predicted = gradtx.state_shardings(tx, params)
    assert jax.tree.structure(predicted) == jax.tree.structure(state)
    for (path, x), want in zip(
        jax.tree_util.tree_leaves_with_path(state),
        jax.tree.leaves(predicted),
        strict=True,
    ):
        if not x.committed:
            continue  # made by jnp on the default device: jit replicates it
        assert _equivalent(x.sharding, want, np.ndim(x)), (
            f"state_shardings predicts {want} for "
            f"{jax.tree_util.keystr(path)}, init gave {x.sharding}"
        )
    if jit_too and not mesh_name.startswith("explicit"):  # Explicit: by types
        _check_like_params(jax.jit(tx.init)(params), shardings, "jit(init)")
    return state


# The (2, 4) Auto mesh is checked by test_step_keeps_state_sharding.
@pytest.mark.parametrize("mesh_name", ["auto-8", "explicit-2x4"])
@pytest.mark.parametrize("oid, factory, kwargs", CASES, ids=IDS)
def test_init_follows_params(oid, factory, kwargs, mesh_name):
    params, shardings = sharded_params(mesh_name)
    with context(mesh_name):
        _check_init(build(factory, kwargs), params, shardings, mesh_name)


@pytest.mark.parametrize("oid, factory, kwargs", STEP_CASES, ids=STEP_IDS)
def test_step_keeps_state_sharding(oid, factory, kwargs):
    """Auto axes, (2, 4) mesh: init places the state, the compiled step returns
    it as it took it, and the numbers are the single-device ones."""
    params, shardings = sharded_params("auto-2x4")
    tx = build(factory, kwargs)
    # jit(init) is checked on the (8,) mesh, for every entry.
    state = _check_init(tx, params, shardings, "auto-2x4", jit_too=False)
    step = jax.jit(step_fn(tx, factory), keep_unused=True)  # every state leaf
    if oid in COMPILER_PLACED:
        params, state = step(params, state)
    compiled = step.lower(params, state).compile()
    ins = jax.tree.leaves(compiled.input_shardings[0][1])
    outs = jax.tree.leaves(compiled.output_shardings[1])
    for x, a, b in zip(jax.tree.leaves(state), ins, outs, strict=True):
        assert _equivalent(a, b, np.ndim(x)), f"the step reshards state {a} -> {b}"
    hlo = compiled.as_text()
    if oid not in GATHERS:
        for op in ("all-gather", "all-to-all", "collective-permute"):
            assert op not in hlo, f"{oid}: the compiled step has an {op}"
    for _ in range(STEPS - (oid in COMPILER_PLACED)):
        params, state = compiled(params, state)
    _check_like_params(state, shardings, f"after {STEPS} steps")
    # A step without communication computes each shard as one device would;
    # the others (reductions, gathers) and the random ones are compared.
    if "all-" in hlo or "collective" in hlo or oid in RANDOM:
        _assert_single_device_numbers(oid, params, state)


@pytest.mark.parametrize("oid, factory, kwargs", STEP_CASES, ids=STEP_IDS)
def test_explicit_step_types(oid, factory, kwargs):
    """Explicit axes: the step's state comes out with the sharding it went in
    with, by its types (no compile needed)."""
    params, _ = sharded_params("explicit-2x4")
    tx = build(factory, kwargs)
    with context("explicit-2x4"):
        state = tx.init(params)
        out = jax.eval_shape(step_fn(tx, factory), params, state)[1]
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(state), jax.tree.leaves(out), strict=True
    ):
        if np.ndim(x) == 0:
            continue
        assert _spec(y, x.ndim) == _spec(x, x.ndim), (
            f"{oid}: state leaf {jax.tree_util.keystr(path)} goes in as "
            f"{x.sharding.spec} and comes out as {y.sharding.spec}"
        )


def _spec(x, ndim: int) -> tuple:
    spec = tuple(getattr(x.sharding, "spec", ()))
    return spec + (None,) * (ndim - len(spec))


def _numbers(x) -> np.ndarray:
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _assert_single_device_numbers(oid, params, state):
    want_params, want_state = _single_device(oid)
    for got, want in zip(
        jax.tree.leaves((params, state)),
        jax.tree.leaves((want_params, want_state)),
        strict=True,
    ):
        np.testing.assert_allclose(_numbers(got), _numbers(want), rtol=2e-5, atol=2e-6)


# Explicit axes run these in auto_axes regions or reshard their state: their
# numbers are checked too (the rest is elementwise under the same types; Muon
# and the norms are in test_global_reductions.py). L-BFGS's dots and flatten's
# concatenation take the same auto_axes path as Prodigy's dot: left out to
# keep the suite's time.
EXPLICIT_NUMBERS = [
    entry
    for entry in STEP_CASES
    if entry[0]
    in {
        "prodigy",
        "adam_8bit",
        "adafactor_momentum",
        "MultiSteps",
        "apply_if_finite",
    }
]


@pytest.mark.parametrize(
    "oid, factory, kwargs", EXPLICIT_NUMBERS, ids=[e[0] for e in EXPLICIT_NUMBERS]
)
def test_explicit_step_numbers(oid, factory, kwargs):
    params, _ = sharded_params("explicit-2x4")
    tx = build(factory, kwargs)
    with context("explicit-2x4"):
        state = tx.init(params)
        step = jax.jit(step_fn(tx, factory))
        for _ in range(STEPS):
            params, state = step(params, state)
    _assert_single_device_numbers(oid, params, state)


def test_explicit_numbers_cover_the_auto_axes_users():
    assert len(EXPLICIT_NUMBERS) == 5
