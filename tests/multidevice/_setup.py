"""Meshes, sharded parameter trees and a step for the multi-device tests.

These tests need 8 devices: ``tests/test_multidevice.py`` runs them in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (8
simulated CPU devices); run them directly the same way.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizers import NEEDS_EXTRA_ARGS, OPTIMIZERS, make

import gradtx

# Every leaf has its own shape, so a state leaf's shape names its parameter.
# name: (shape, spec on the (2, 4) mesh, spec on the (8,) mesh)
LEAVES = {
    "fsdp": ((16, 12), P("data", None), P("x", None)),  # FSDP: split on data
    "tp": ((8, 24), P(None, "model"), P(None, "x")),  # tensor-parallel column
    "fsdp_tp": ((16, 40), P("data", "model"), P("x", None)),  # both
    "bias": ((32,), P("model"), P("x")),
    "replicated": ((6, 10), P(), P()),  # data-parallel: whole on every device
    "scalar": ((), P(), P()),
}

# name: (mesh shape, axis names, axis type, which spec column)
MESHES = {
    "auto-8": ((8,), ("x",), AxisType.Auto, 2),
    "auto-2x4": ((2, 4), ("data", "model"), AxisType.Auto, 1),
    "explicit-2x4": ((2, 4), ("data", "model"), AxisType.Explicit, 1),
}


def mesh_for(name: str) -> jax.sharding.Mesh:
    shape, axes, kind, _ = MESHES[name]
    return jax.make_mesh(shape, axes, axis_types=(kind,) * len(axes))


def specs_for(name: str) -> dict:
    column = MESHES[name][3]
    return {k: v[column] for k, v in LEAVES.items()}


def host_params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        k: rng.normal(size=shape).astype(np.float32)
        for k, (shape, *_) in LEAVES.items()
    }


def sharded_params(mesh_name: str, seed: int = 0) -> tuple[dict, dict]:
    """``(params, shardings)``: :func:`host_params` placed on the mesh."""
    mesh = mesh_for(mesh_name)
    shardings = {k: NamedSharding(mesh, s) for k, s in specs_for(mesh_name).items()}
    return jax.device_put(host_params(seed), shardings), shardings


def context(mesh_name: str):
    """``jax.set_mesh`` for Explicit axes (JAX requires it there); else nothing."""
    if MESHES[mesh_name][2] == AxisType.Explicit:
        return jax.set_mesh(mesh_for(mesh_name))
    return contextlib.nullcontext()


def loss(params: dict) -> jax.Array:
    """An elementwise objective, so gradients are sharded as the params are."""
    return sum(
        jnp.sum(0.5 * (p - 0.3) ** 2 + 0.05 * jnp.cos(3.0 * p))
        for p in jax.tree.leaves(params)
    )


def extra_args(factory: str, params: dict, grads: dict) -> dict:
    if factory == "polyak_sgd":
        return dict(value=loss(params))
    if factory == "lbfgs":
        return dict(value=loss(params), grad=grads, value_fn=loss)
    if factory == "sophia":
        return dict(obj_fn=loss)
    return {}


def step_fn(tx: gradtx.GradientTransformation, factory: str):
    """A training step: gradients of :func:`loss`, ``update``, ``apply_updates``."""

    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = tx.update(
            grads, state, params, **extra_args(factory, params, grads)
        )
        return gradtx.apply_updates(params, updates), state

    return step


# (id, factory, kwargs) for every optimizer, including those needing extra args.
ALL = [
    *OPTIMIZERS,
    ("polyak_sgd", "polyak_sgd", dict(max_learning_rate=0.1)),
    ("lbfgs", "lbfgs", dict()),
    ("sophia", "sophia", dict(learning_rate=1e-2)),
]
assert {f for _, f, _ in ALL} >= set(NEEDS_EXTRA_ARGS)


def richest_per_factory(entries):
    """One entry per optimizer: the one with the most options set (momentum,
    centering, masks...), so the step sees its largest state. The init test
    runs every entry."""
    best = {}
    for entry in entries:
        factory, kwargs = entry[1], entry[2]
        if factory not in best or len(kwargs) > len(best[factory][2]):
            best[factory] = entry
    return list(best.values())


def _by_rank(p):
    return jax.tree.map(lambda x: "matrix" if x.ndim > 1 else "other", p)


# Wrappers, whose state holds an inner state or copies of the params:
# (id, builder, kwargs).
WRAPPERS = [
    ("MultiSteps", lambda: gradtx.MultiSteps(gradtx.adam(1e-2), 2), {}),
    ("apply_if_finite", lambda: gradtx.apply_if_finite(gradtx.adam(1e-2), 3), {}),
    (
        "inject_hyperparams",
        lambda: gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-2),
        {},
    ),
    (
        "partition",
        lambda: gradtx.partition(
            {"matrix": gradtx.adam(1e-2), "other": gradtx.sgd(1e-2, momentum=0.9)},
            _by_rank,
        ),
        {},
    ),
    ("kahan_summation", lambda: gradtx.kahan_summation(gradtx.adam(1e-2)), {}),
    (
        "stochastic_rounding",
        lambda: gradtx.stochastic_rounding(gradtx.adam(1e-2), jax.random.key(0)),
        {},
    ),
    (
        "schedule_free",
        lambda: gradtx.schedule_free(gradtx.sgd(1e-2), learning_rate=1e-2),
        {},
    ),
    ("flatten", lambda: gradtx.flatten(gradtx.adam(1e-2)), {}),
]


def numbers(x) -> np.ndarray:
    """``x`` as a NumPy array (a PRNG key as its key data), for comparisons."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def build(factory, kwargs: dict) -> gradtx.GradientTransformation:
    """An optimizer of the table (by name) or a wrapper (by builder)."""
    return factory(**kwargs) if callable(factory) else make(factory, **kwargs)


__all__ = ["ALL", "MESHES", "gradtx", "make"]
