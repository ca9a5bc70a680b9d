"""A plain ``jax.jit`` step never moves a sharding (issue 17).

Every optimizer of the table (the entry with the most options set, as in
``test_state_sharding.py``), and the wrappers that keep an inner state or a
copy of the params, run a training step under ``jax.jit`` with no
``out_shardings`` on a ``(2, 4)`` Auto mesh. The params mix a column-split
``(8, 8)``, a row-split ``(8, 4)``, an un-split ``(4, 8)`` (``P(None, None)``)
and a replicated ``(8,)`` leaf (the tree on which ``lamb`` used to return
three of the four params, and its moments, split over ``"data"``: the
overflow rescue of its per-leaf norms concatenated the leaves, and the
concatenation's split spread back through the program), a leaf split over
both axes and a scalar. Checked, per entry:

* with the state placed where :func:`gradtx.state_shardings` says (eager
  ``init`` already places every leaf it places there, as checked), each of
  two steps returns every param and
  every state leaf with the sharding it came in with, so one compiled
  program serves every step;
* the compiled step has no gather, all-to-all or permutation, except for the
  optimizers of ``GATHERS`` (whose maths needs whole arrays);
* the two steps give the one-device numbers (compared wherever the program
  communicates or draws random numbers: without communication each device
  computes its shards as one device would).

Eager ``init`` is checked to place every leaf it places where
``state_shardings`` says (on the other meshes: ``test_state_sharding.py``);
the matrix optimizers' factors are ``test_matrix_factors.py``'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _setup import (
    ALL,
    WRAPPERS,
    build,
    extra_args,
    loss,
    numbers,
    richest_per_factory,
)
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

STEPS = 2
MIXED = {
    "column": ((8, 8), P(None, "model")),
    "row": ((8, 4), P("data", None)),
    "unsplit": ((4, 8), P(None, None)),
    "replicated": ((8,), P()),
    "both": ((8, 16), P("data", "model")),
    "scalar": ((), P()),
}

# Optimizers whose compiled step may gather, and why. The others' maths is
# elementwise or a reduction: at most an all-reduce, never a gather.
GATHERS = {
    "muon": "Newton-Schulz multiplies whole matrices",
    "muon_polar_express_gram": "Newton-Schulz multiplies whole matrices",
    "normuon": "Newton-Schulz multiplies whole matrices",
    "soap": "eigenbases of whole factor matrices",
    "shampoo": "inverse roots of whole factor matrices",
    "shampoo_adagrad": "inverse roots of whole factor matrices",
    "psgd_kron": "triangular solves with whole factors",
    "adafactor": "factored statistics",
    "adafactor_momentum": "factored statistics",
    "lbfgs": "its two-loop recursion and line search take whole-tree dots",
    # The overflow rescue of per-leaf norms gathers the small leaves it joins
    # (in the branch that runs only when a sum of squares overflows).
    "prodigy": "the overflow rescue of its per-leaf norms",
    "fromage": "the overflow rescue of its per-leaf norms",
    "lars": "the overflow rescue of its per-leaf norms",
    "lamb": "the overflow rescue of its per-leaf norms",
    # XLA gathers a split vector inside the distance-from-start global norm.
    "dog": "its distance-from-start norm",
    "adam_8bit": "blocks of 256 run across the flattened, split leaves",
    "adamw_8bit": "blocks of 256 run across the flattened, split leaves",
    "sgd_8bit": "blocks of 256 run across the flattened, split leaves",
    "sgd_8bit_nesterov": "blocks of 256 run across the flattened, split leaves",
    "galore": "the SVD and the projections need whole matrices",
    "flatten": "it concatenates every leaf into one vector",
    "packed(clip+adamw)": "it packs leaves into shared buffers",
}


def _mesh():
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def _host_params() -> dict:
    rng = np.random.default_rng(1)
    return {
        k: rng.normal(size=shape).astype(np.float32) for k, (shape, _) in MIXED.items()
    }


def _lamb():
    return gradtx.lamb(1e-2)


# The wrappers of the issue, around the optimizer that used to move params
# (packed refuses trust ratios: it wraps clipping, whose global norm had the
# same rescue), and the other wrappers of _setup around Adam.
LAYOUT_WRAPPERS = [
    ("MultiSteps(lamb)", lambda: gradtx.MultiSteps(_lamb(), 2), {}),
    ("apply_if_finite(lamb)", lambda: gradtx.apply_if_finite(_lamb(), 3), {}),
    (
        "inject_hyperparams(lamb)",
        lambda: gradtx.inject_hyperparams(gradtx.lamb)(learning_rate=1e-2),
        {},
    ),
    ("lookahead(lamb)", lambda: gradtx.lookahead(_lamb(), 2, 0.5), {}),
    ("kahan_summation(lamb)", lambda: gradtx.kahan_summation(_lamb()), {}),
    (
        "packed(clip+adamw)",
        lambda: gradtx.packed(
            gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2))
        ),
        {},
    ),
]
# The matrix optimizers' sharded numbers are test_matrix_factors.py's.
MATRIX_NUMBERS = {"soap", "shampoo", "psgd_kron", "normuon"}
# _setup's wrappers of Adam that LAYOUT_WRAPPERS runs around LAMB.
_AROUND_LAMB = {
    "MultiSteps",
    "apply_if_finite",
    "inject_hyperparams",
    "kahan_summation",
}
# Random numbers drawn under sharding: their numbers are always compared.
RANDOM = {"noisy_sgd", "sophia", "stochastic_rounding"}
# Its state is packed by placement (leaves placed alike share a buffer), so
# on one device it has other buffers: the params are compared.
STATE_LAYOUT_BY_PLACEMENT = {"packed(clip+adamw)"}
CASES = (
    richest_per_factory(ALL)
    + LAYOUT_WRAPPERS
    + [w for w in WRAPPERS if w[0] not in _AROUND_LAMB]
)
IDS = [oid for oid, *_ in CASES]


def _canonical(sharding: NamedSharding) -> NamedSharding:
    """The sharding as jit returns it: its spec without trailing ``None``s
    (``P(None, None)`` comes back ``P()``; equal placement, but another key
    in jit's cache, which would compile the step again for the second call)."""
    spec = list(sharding.spec)
    while spec and spec[-1] is None:
        spec.pop()
    return NamedSharding(sharding.mesh, P(*spec), memory_kind=sharding.memory_kind)


def _params(oid: str, placed: bool) -> dict:
    host = _host_params()
    if placed:
        mesh = _mesh()
        params = {
            k: jax.device_put(v, _canonical(NamedSharding(mesh, MIXED[k][1])))
            for k, v in host.items()
        }
    else:
        params = jax.device_put(host, jax.devices()[0])
    if oid.startswith("lookahead"):
        return gradtx.LookaheadParams.init_synced(params)
    return params


def _step(tx, factory, oid: str):
    """``jax.jit`` of a training step, with no shardings given."""
    fast = oid.startswith("lookahead")

    def step(params, state):
        grads = jax.grad(loss)(params.fast if fast else params)
        kwargs = {} if callable(factory) else extra_args(factory, params, grads)
        updates, state = tx.update(grads, state, params, **kwargs)
        return gradtx.apply_updates(params, updates), state

    return jax.jit(step)


def _check_init(oid, tx, params, state, where) -> None:
    """Eager ``init`` already put every leaf it placed where
    :func:`gradtx.state_shardings` says."""
    for (path, x), want in zip(_arrays(state), jax.tree.leaves(where), strict=True):
        if x.committed:
            assert x.sharding.is_equivalent_to(want, x.ndim), (
                f"{oid}: init put {path} on {_where(x)}, state_shardings says {want}"
            )


def _run(oid, factory, kwargs, placed: bool):
    """``(tx, step, [(params, state) before and after each step])``; on the
    mesh the state is placed where :func:`gradtx.state_shardings` says (the
    leaves ``init`` makes with ``jnp`` are on the default device: jit would
    replicate them, and compile the step again for the second call)."""
    tx = build(factory, kwargs)
    params = _params(oid, placed)
    state = tx.init(params)
    if placed:
        where = jax.tree.map(_canonical, gradtx.state_shardings(tx, params))
        _check_init(oid, tx, params, state, where)
        state = jax.device_put(state, where)
    step = _step(tx, factory, oid)
    trail = [(params, state)]
    for _ in range(STEPS):
        trail.append(step(*trail[-1]))
    return step, trail


def _where(x) -> str:
    return str(getattr(x.sharding, "spec", x.sharding))


def _arrays(tree) -> list:
    return [
        (jax.tree_util.keystr(path), x)
        for path, x in jax.tree_util.tree_leaves_with_path(tree)
        if isinstance(x, jax.Array)
    ]


@pytest.mark.parametrize("oid, factory, kwargs", CASES, ids=IDS)
def test_plain_jit_step_moves_no_sharding(oid, factory, kwargs):
    step, trail = _run(oid, factory, kwargs, placed=True)
    start = _arrays(trail[0])
    for k, after in enumerate(trail[1:], 1):
        for (path, x), (_, y) in zip(start, _arrays(after), strict=True):
            assert x.sharding == y.sharding, (
                f"{oid}: {path} went in as {_where(x)}, came out of step {k} "
                f"as {_where(y)}"
            )
    assert step._cache_size() == 1, f"{oid}: the second step compiled again"
    hlo = step.lower(*trail[0]).compile().as_text()  # from jit's cache
    if oid not in GATHERS and "(lamb)" not in oid:
        for op in ("all-gather", "all-to-all", "collective-permute"):
            assert op not in hlo, f"{oid}: the compiled step has an {op}"
    if oid in MATRIX_NUMBERS:
        return  # test_matrix_factors.py compares them, on Auto and Explicit axes
    if "(lamb)" in oid:
        return  # LAMB's sharded numbers are its own entry's; the wrappers' logic
        # is elementwise (tests/wrappers compare it on one device)
    if "all-" not in hlo and "collective" not in hlo and oid not in RANDOM:
        return  # each device computes its shards as one device would
    _, one_device = _run(oid, factory, kwargs, placed=False)
    compared = 1 if oid in STATE_LAYOUT_BY_PLACEMENT else 2
    for (path, got), (_, want) in zip(
        _arrays(trail[-1][:compared]), _arrays(one_device[-1][:compared]), strict=True
    ):
        got, want = numbers(got), numbers(want)
        # At the leaf's scale: the inverse roots and eigenbases of the matrix
        # optimizers give values of ~80 next to ones of ~0.1, whose last bits
        # differ with the order of a sharded sum.
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(
            got, want, rtol=2e-5, atol=2e-6 * scale, err_msg=path
        )


def test_the_table_is_covered():
    from optimizers import OPTIMIZERS

    assert {e[1] for e in OPTIMIZERS} <= {e[1] for e in CASES}
    assert len(LAYOUT_WRAPPERS) == 6


def test_rescue_of_norms_keeps_the_layout():
    """With squares above float32's range (the rescue branch runs), the
    trust ratio and the global norm on the split leaves give the one-device
    numbers, and the params keep their shardings."""
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.scale_by_trust_ratio())
    step = jax.jit(lambda p: (gradtx.global_norm(p), tx.update(p, tx.init(p), p)[0]))
    big = lambda p: jax.tree.map(lambda x: x * jnp.float32(1e20), p)
    params = big(_params("", placed=True))
    total, updates = step(params)
    want_total, want_updates = step(big(_params("", placed=False)))
    assert np.isfinite(float(total))
    np.testing.assert_allclose(float(total), float(want_total), rtol=1e-6)
    for k in params:
        x = params[k]
        assert x.sharding.is_equivalent_to(updates[k].sharding, x.ndim), k
        np.testing.assert_allclose(updates[k], want_updates[k], rtol=1e-6)
