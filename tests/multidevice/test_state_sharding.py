"""Every optimizer's state follows the parameters' shardings (issue 8).

For each optimizer, on the meshes of ``_setup.MESHES`` (8 and 2x4 devices,
Auto and Explicit axes) with a tree of FSDP, tensor-parallel, replicated
(data-parallel) and scalar leaves:

* ``init`` — eager and under ``jit`` — gives every state leaf made like a
  parameter that parameter's sharding, and :func:`gradtx.state_shardings`
  predicts every leaf's sharding, derived leaves included;
* under Explicit axes the step returns the state with the types it took,
  and three sharded steps of the optimizers that run whole-array maths in
  ``auto_axes`` regions give the single-device numbers.

The Auto-axes step (params and state returned where they came in, the
one-device numbers, no gathers) is ``test_shardings_kept.py``'s.
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
    numbers,
    richest_per_factory,
    sharded_params,
    step_fn,
)

import gradtx

STEPS = 3
SHAPES = {shape: name for name, (shape, *_) in LEAVES.items()}

CASES = ALL + WRAPPERS
IDS = [oid for oid, *_ in CASES]
JIT_INIT_CASES = richest_per_factory(ALL) + WRAPPERS


# Wrappers with their own update logic (conditional steps, a compensation, a
# copy of the params); the others' init placement is tested above.
STEP_WRAPPERS = {"MultiSteps", "apply_if_finite", "kahan_summation", "schedule_free"}
# The matrix optimizers' steps (their factors and momenta after steps, and
# their numbers, on Auto and Explicit axes) are test_matrix_factors.py's.
MATRIX_STEPS = {"soap", "shampoo", "psgd_kron", "normuon"}
STEP_CASES = [
    entry for entry in richest_per_factory(ALL) if entry[1] not in MATRIX_STEPS
] + [w for w in WRAPPERS if w[0] in STEP_WRAPPERS]
STEP_IDS = [oid for oid, *_ in STEP_CASES]


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


# The (2, 4) Auto mesh: test_shardings_kept.py checks init there.
@pytest.mark.parametrize("mesh_name", ["auto-8", "explicit-2x4"])
@pytest.mark.parametrize("oid, factory, kwargs", CASES, ids=IDS)
def test_init_follows_params(oid, factory, kwargs, mesh_name):
    params, shardings = sharded_params(mesh_name)
    with context(mesh_name):
        # jit(init) (a compile each) for one entry per optimizer and wrapper.
        jit_too = (oid, factory, kwargs) in JIT_INIT_CASES
        _check_init(build(factory, kwargs), params, shardings, mesh_name, jit_too)


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


def _assert_single_device_numbers(oid, params, state):
    want_params, want_state = _single_device(oid)
    for got, want in zip(
        jax.tree.leaves((params, state)),
        jax.tree.leaves((want_params, want_state)),
        strict=True,
    ):
        np.testing.assert_allclose(numbers(got), numbers(want), rtol=2e-5, atol=2e-6)


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
