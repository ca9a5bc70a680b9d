"""GaLore (gradtx.contrib.galore): Optax, NumPy reference, bad input.

Closed loop over 120 steps as in :mod:`test_reference` (norm-wise relative
error, float32, params compared at every step) on leaves that exercise every
path: a tall matrix (rows projected), a wide one (columns projected), a 3-D
tensor viewed as a matrix through :class:`GaLoreDimensionNumbers`, and a
vector and a scalar (full Adam). The projector is recomputed every 20 steps,
so six SVDs happen on the way. The float64 reference of
:mod:`reference_galore` follows the paper's Algorithm 2.

Tolerance: 1e-6 against Optax and against the reference (measured 4e-7).
The start gives every matrix singular values (8, 4, 1, 0.5, ...) around the
target, so the rank-1 and rank-2 subspaces stay well separated: where two
singular values nearly tie, float32 and float64 SVDs may pick different
vectors and no tolerance is meaningful. The base is Adam with ``b2 = 0.99``
(``0.999`` adds float32's bias-correction error, see :mod:`test_reference`).

The alias ``galore`` is a row of ``CONTRIB_OPTIMIZERS`` in ``tests/optimizers.py``
(the table properties: :mod:`test_contrib_table`).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_galore as RG

import gradtx
from gradtx.contrib import GaLoreDimensionNumbers, GaLoreState, galore, scale_by_galore

STEPS = 120
RTOL = 1e-6
REF_RTOL = 1e-6
SHAPES = [(6, 4), (3, 5), (4, 2, 3), (3,), ()]
D3 = GaLoreDimensionNumbers(reduction_axis=0, output_axis=(1, 2))


def _start():
    """0.5 + a matrix of singular values (8, 4, 1, 0.5, ...): the projected
    subspaces stay well separated over the run (no near-tie in the SVD)."""
    rng = np.random.default_rng(5)

    def spread(m, n):
        u, _ = np.linalg.qr(rng.normal(size=(m, m)))
        v, _ = np.linalg.qr(rng.normal(size=(n, n)))
        sv = np.array([8.0, 4.0, 1.0, 0.5, 0.25, 0.1])[: min(m, n)]
        return 0.5 + (u[:, : sv.size] * sv) @ v[:, : sv.size].T

    return [
        spread(6, 4),
        spread(3, 5),
        spread(4, 6).reshape(4, 2, 3),
        0.5 + rng.uniform(1.0, 2.0, size=3),
        np.float64(2.0),
    ]


def _grad(params, sin):
    return [(p - 0.5) + 0.05 * sin(3.0 * p) for p in params]


def _run_jax(tx, apply_updates):
    def step(carry, _):
        p, s = carry
        u, s = tx.update(_grad(p, jnp.sin), s, p)
        p = apply_updates(p, u)
        return (p, s), p

    params = [jnp.asarray(p, jnp.float32) for p in _start()]
    run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1])
    return [np.asarray(x, np.float64) for x in run(params)]


def _run_numpy(ref, lr):
    params, traj = [p.astype(np.float32) for p in _start()], []
    for _ in range(STEPS):
        u = ref.update(_grad(params, np.sin))
        params = [
            (p - lr * v).astype(np.float32) for p, v in zip(params, u, strict=True)
        ]
        traj.append(params)
    return [
        np.stack([q[i] for q in traj]).astype(np.float64) for i in range(len(SHAPES))
    ]


def _rel_err(a, b):
    return max(
        np.max(np.abs(x - y)) / np.max(np.abs(y)) for x, y in zip(a, b, strict=True)
    )


def _dims(lib):
    cls = lib.GaLoreDimensionNumbers
    return [cls(), cls(), cls(0, (1, 2)), None, None]


CASES = [  # (kwargs, which weight_dimension_numbers)
    (dict(learning_rate=0.01, rank=2, update_proj_gap=20), "none"),
    (dict(learning_rate=0.01, rank=2, update_proj_gap=20, scale=0.5), "tree"),
    (dict(learning_rate=0.01, rank=1, update_proj_gap=7), "none"),
]


@pytest.mark.parametrize("kwargs,dims", CASES, ids=["2d", "3d_scaled", "rank1"])
def test_matches_numpy_reference_and_optax(kwargs, dims):
    def build(lib, adam):
        d = {"none": None, "one": lib.GaLoreDimensionNumbers(), "tree": _dims(lib)}[
            dims
        ]
        return lib.galore(
            **kwargs, base_optimizer=adam(b2=0.99), weight_dimension_numbers=d
        )

    traj = _run_jax(build(gradtx.contrib, gradtx.scale_by_adam), gradtx.apply_updates)
    theirs = _run_jax(build(optax.contrib, optax.scale_by_adam), optax.apply_updates)
    ref_dims = {
        "none": None,
        "tree": [((0,), (1,)), ((0,), (1,)), ((0,), (1, 2)), None, None],
    }[dims]
    ref = RG.Galore(kwargs["rank"], kwargs["update_proj_gap"], kwargs.get("scale", 1.0),
                    dims=ref_dims, b2=0.99)  # fmt: skip
    err_optax = _rel_err(traj, theirs)
    err_ref = _rel_err(traj, _run_numpy(ref, kwargs["learning_rate"]))
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= REF_RTOL, f"vs NumPy reference: {err_ref:.2e}"


def test_default_base_and_weight_decay_match_optax():
    kw = dict(learning_rate=0.01, rank=2, update_proj_gap=20, weight_decay=0.1)
    mask = [True, False, True, False, True]
    traj = _run_jax(galore(**kw, mask=mask), gradtx.apply_updates)
    theirs = _run_jax(optax.contrib.galore(**kw, mask=mask), optax.apply_updates)
    assert _rel_err(traj, theirs) <= RTOL


def test_state_shapes_and_fields_match_optax():
    p = {
        "w": jnp.ones((6, 4)),
        "v": jnp.ones((3, 5)),
        "b": jnp.ones(3),
        "s": jnp.ones(()),
    }
    for lib in (gradtx.contrib, optax.contrib):
        assert lib.GaLoreState._fields == ("count", "base_optimizer_state", "projector")
    ours = scale_by_galore(rank=2).init(p)
    theirs = optax.contrib.scale_by_galore(rank=2).init(p)
    assert isinstance(ours, GaLoreState)
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)
    assert ours.projector["w"].shape == (6, 2) and ours.projector["v"].shape == (5, 2)
    assert GaLoreDimensionNumbers() == (0, 1)


def test_signatures_match_optax():
    for ours, theirs in [
        (galore, optax.contrib.galore),
        (scale_by_galore, optax.contrib.scale_by_galore),
    ]:
        a, b = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
        assert list(a) == list(b)
        for k in b:
            assert (a[k].default, a[k].kind) == (b[k].default, b[k].kind), k
    assert (
        GaLoreDimensionNumbers._fields == optax.contrib.GaLoreDimensionNumbers._fields
    )


@pytest.mark.parametrize(
    "kwargs,arg,error",
    [
        (dict(rank=0), "rank", ValueError),
        (dict(rank=2.0), "rank", TypeError),
        (dict(update_proj_gap=0), "update_proj_gap", ValueError),
        (dict(scale=float("nan")), "scale", ValueError),
        (dict(base_optimizer=0.1), "base_optimizer", TypeError),
        (dict(learning_rate=-1.0), "learning_rate", ValueError),
        (dict(weight_decay=-1.0), "weight_decay", ValueError),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, arg, error):
    with pytest.raises(error, match=arg):
        galore(**{"learning_rate": 0.1, **kwargs})


def test_bad_dimension_numbers_raise():
    with pytest.raises(ValueError, match="disjoint"):
        scale_by_galore(weight_dimension_numbers=GaLoreDimensionNumbers(0, 0)).init(
            [jnp.ones((2, 3))]
        )
    with pytest.raises(ValueError, match="rank >= 2"):
        scale_by_galore(weight_dimension_numbers=[GaLoreDimensionNumbers()]).init(
            [jnp.ones(3)]
        )
