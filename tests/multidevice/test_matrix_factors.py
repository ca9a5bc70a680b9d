"""The factor matrices of the matrix optimizers on a (2, 4) mesh.

A preconditioner factor of a leaf's axis is an ``(n, n)`` matrix; when that
axis of the parameter is split over mesh axes, the factor's rows are split the
same way (``docs/sharding.md``), never left whole on every device. Each
optimizer runs with the params sharded (Auto and Explicit axes) and gives the
one-device numbers.
"""

import functools

import jax
import numpy as np
import pytest
from _setup import LEAVES, context, host_params, loss, sharded_params

import gradtx

MESHES = ["auto-2x4", "explicit-2x4"]
STEPS = 3

# Per-axis factors everywhere (Shampoo merges small leaves into one vector by
# default, and its blocks of 64 keep whole axes here); preconditioners
# refreshed within the three steps. Shampoo grafts the bias alone: the 32 x 32
# statistic of a vector has rank <= 3 after three steps, and its inverse root
# magnifies rounding by 1/sqrt(matrix_eps), differently on each mesh; the
# others' few-step statistics are close to singular too, hence matrix_eps.
MATRIX = {
    "soap": lambda: gradtx.soap(1e-2, precondition_frequency=2, max_precond_dim=16),
    "shampoo": lambda: gradtx.shampoo(
        1e-2,
        block_size=64,
        merge_small_dims_block_size=1,
        start_preconditioning_step=1,
        skip_preconditioning_rank_lt=2,
        matrix_eps=1e-3,
    ),
    "psgd_kron": lambda: gradtx.psgd_kron(1e-2, preconditioner_update_probability=1.0),
    "normuon": lambda: gradtx.normuon(1e-2),
}

# The split axes of _setup.LEAVES on the (2, 4) mesh, by their length (each
# length is one axis): fsdp's and fsdp_tp's 16 rows on "data", tp's 24 and
# fsdp_tp's 40 columns and the bias's 32 on "model".
SPLIT = {16: "data", 24: "model", 40: "model", 32: "model"}

# SOAP's Adam runs in the eigenbasis of its factors; a rank-deficient factor
# (an axis longer than the product of the others: fsdp's 16 rows of 12, or
# replicated's 10 columns of 6) has an arbitrary basis for its null space,
# and two programs that round differently pick different ones: those leaves
# move differently (by O(learning rate), as two correct SOAPs do). Only the
# leaves whose factors are all full rank are compared: fsdp_tp (its 16-row
# factor, split on "data"; the 40 columns exceed max_precond_dim), tp (8
# rows; 24 columns over the limit), the bias (Adam) and the scalar.
SOAP_EXACT = {"fsdp_tp", "tp", "bias", "scalar"}
PARAM_OF_SHAPE = {shape: name for name, (shape, *_) in LEAVES.items()}


def _square_factors(state):
    """``(path, array)`` for every state leaf of shape ``(n, n)``, n split."""
    return [
        (jax.tree_util.keystr(path), x)
        for path, x in jax.tree_util.tree_leaves_with_path(state)
        if np.ndim(x) == 2 and x.shape[0] == x.shape[1] and x.shape[0] in SPLIT
    ]


def _first_axis(x) -> object:
    spec = (*getattr(x.sharding, "spec", ()), None)
    return spec[0]


def _step_fn(tx):
    """A step whose gradient changes even where the params do not (SOAP's
    first step moves nothing): ``∇loss + t·r``, ``r`` a fixed random tree.

    With the same gradient twice, SOAP's second step divides rounding noise
    by noise along the null space of a rank-deficient factor (every
    non-square leaf has one), which no two programs compute alike.
    """
    drift = host_params(seed=1)

    def step(params, state, t):
        grads = jax.grad(loss)(params)
        grads = jax.tree.map(lambda g, r: g + 0.1 * t * r, grads, drift)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return jax.jit(step)


def _run(tx, params, state):
    step = _step_fn(tx)
    for t in range(STEPS):
        params, state = step(params, state, float(t))
    return params, state


@functools.cache
def _single_device(name: str):
    tx = MATRIX[name]()
    params = jax.device_put(host_params(), jax.devices()[0])
    return jax.device_get(_run(tx, params, tx.init(params)))


@pytest.mark.parametrize("mesh_name", MESHES)
@pytest.mark.parametrize("name", list(MATRIX))
def test_factors_are_split_like_their_axis(name, mesh_name):
    params, shardings = sharded_params(mesh_name)
    tx = MATRIX[name]()
    with context(mesh_name):
        state = tx.init(params)
        factors = _square_factors(state)
        if name != "normuon":  # NorMuon keeps per-row vectors, no matrices
            assert factors, f"{name}: no (n, n) factor of a split axis in the state"
        for path, x in factors:
            assert _first_axis(x) == SPLIT[x.shape[0]], (
                f"{name}: factor {path} {x.shape} is {x.sharding}"
            )
        for path, x in _square_factors(predicted_shapes(tx, params)):
            assert _first_axis(x) == SPLIT[x.shape[0]], (path, x.sharding)
        params, state = _run(tx, params, state)
    for path, x in _square_factors(state):
        assert _first_axis(x) == SPLIT[x.shape[0]], (
            f"{name}: after {STEPS} steps factor {path} is {x.sharding}"
        )
    # The momenta (and every state leaf shaped like a parameter) stay where
    # that parameter is (test_state_sharding.py's check, for these steps).
    for path, x in jax.tree_util.tree_leaves_with_path(state):
        key = PARAM_OF_SHAPE.get(np.shape(x))
        if key is not None and np.ndim(x):
            assert x.sharding.is_equivalent_to(shardings[key], x.ndim), (
                f"{name}: state leaf {jax.tree_util.keystr(path)} is {x.sharding}"
            )
    want = _single_device(name)
    if name == "soap":
        for key, x in params.items():
            assert np.all(np.isfinite(np.asarray(x))), key
        params, state = {k: params[k] for k in SOAP_EXACT}, ()
        want = ({k: want[0][k] for k in SOAP_EXACT}, ())
    for got, ref in zip(
        jax.tree.leaves((params, state)), jax.tree.leaves(want), strict=True
    ):
        if jax.dtypes.issubdtype(got.dtype, jax.dtypes.prng_key):
            got, ref = jax.random.key_data(got), jax.random.key_data(ref)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-5)


def predicted_shapes(tx, params):
    """``jax.ShapeDtypeStruct`` leaves carrying the predicted shardings."""
    shardings = gradtx.state_shardings(tx, params)
    shapes = jax.eval_shape(tx.init, params)
    return jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        shapes,
        shardings,
    )
