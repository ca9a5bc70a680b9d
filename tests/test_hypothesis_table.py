"""Property-based tests of every optimizer over random trees, dtypes and settings.

For each entry of the optimizer table (and the optimizers whose update needs
extra arguments), hypothesis draws a tree (dict/list nesting, 1-4 leaves whose
shapes come from ``SHAPES``: a scalar, zero-size leaves, vectors, matrices, a
3-d array), a float dtype per tree (float32, bfloat16, float16) or per leaf,
parameter and gradient values, and a perturbation of the hyperparameters: the
learning rate times a factor in [0.1, 10] and every decay rate anywhere in
[0.5, 0.999]. Then, step by step for three steps (params moved by
``apply_updates``):

1. ``init`` and ``update`` raise nothing;
2. every update and state leaf is finite, the initial state included (no
   optimizer has a legitimately non-finite leaf: running maxima such as
   AMSGrad's and AdaMax's start at 0, not -inf);
3. the jitted ``update`` equals the eager one on the same inputs (see
   ``ULPS`` for the tolerance and why it is not zero);
4. the state keeps its tree structure, shapes and dtypes, and each update leaf
   has its gradient's dtype.

The examples are drawn from a seed fixed per optimizer (deterministic in CI,
different across optimizers) and never shrunk: every shrink step recompiles.

Input ranges. Values are 0 or ±2^e for real e in [-7, 7], so |g|² is a normal
number even in float16 (XLA:CPU flushes subnormals to zero) and fits its
range. Decay rates stay in [0.5, 0.999]: with a decay near 0 several rules
compute values that are finite in float32 but beyond float16's 65504 (AdaMax
with ``b2 → 0`` and a zero gradient gives ``m / eps``, about 1e7; AdaBelief
with ``b1 → 0`` divides by ``sqrt(eps)``), and centred RMSProp's ``ν − μ²``
becomes pure rounding noise, so jit and eager legitimately disagree.
"""

from __future__ import annotations

import inspect
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from optimizers import OPTIMIZERS, factory, make

import gradtx

# Examples per optimizer. The first one hypothesis draws is the simplest (a
# float32 scalar, zero gradients); the second one is also run through a jitted
# update, which compiles (most of the cost); the others are checked eagerly.
EXAMPLES = 3
# Eager mode recompiles their loops and conditionals on every call.
FEWER_EXAMPLES = {
    "sophia": 2,
    "lbfgs_no_linesearch": 2,
    "shampoo": 2,  # Newton's while loops for the roots
    "shampoo_adagrad": 2,
    "psgd_kron": 2,  # the preconditioner update's cond
}
STEPS = 3
# Few shapes, so that eager op-by-op compiles are shared between examples.
SHAPES = [(), (0,), (3,), (2, 3), (4, 2), (2, 0), (3, 1, 2)]
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]
# Decay-rate-like hyperparameters, redrawn when the entry (or the factory's
# default) gives a number in [0, 1).
DECAYS = {"b1", "b2", "b3", "beta", "decay", "rho", "momentum", "adam_b1", "adam_b2"}

# jit vs eager: how far apart the two may be, in ulps of the leaf's dtype
# times the largest magnitude in the leaf. Zero where it is exact: one
# rounding per element (a product with a constant, a sign, a min/max), nothing
# for XLA to rewrite. Elsewhere XLA:CPU compiles `a * b + c` into one fused
# multiply-add and `x / sqrt(y)` into `x * rsqrt(y)` inside jit, but not op by
# op; each differs by an ulp, and differences of such terms (optimistic
# updates 2·u_t − u_{t−1}) add them up. Measured over 40 examples per
# optimizer: at most 4.3 ulps of that scale, except the entries named below.
ULPS_DEFAULT = 8
ULPS = {
    "sgd": 0,
    "sign_sgd": 0,
    "rprop": 0,
    # d is a ratio of sums over every leaf; jit reorders the reductions.
    "prodigy": 16,
    # Five Newton-Schulz iterations of small matmuls accumulate it (17 seen).
    "muon": 64,
    "muon_polar_express_gram": 64,
    "normuon": 64,
    # n ← g² + b2·(n − g²), the order Optax rounds in: the subtraction loses
    # ulp(g²) = ulp(n)/(1 − b2), up to 1000 ulps of n at b2 = 0.999.
    "simplified_ademamix": 4096,
}
# Updates that are differences of parameter-sized quantities (y_{t+1} − y_t):
# exact only to ulp(params), so the parameter leaf enters the scale (718 ulps
# of the update's own scale seen, 2.1 of this one).
DIFFERENCES = {"schedule_free_sgd", "schedule_free_adamw", "schedule_free_adamw_wd"}


def _sophia_objective(params):
    return sum(
        jnp.sum(0.5 * x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(params)
    )


# Optimizers whose `update` needs more than (updates, state, params):
# (id, factory, kwargs, which extra argument to pass).
EXTRA = [
    ("polyak_sgd", "polyak_sgd", dict(max_learning_rate=0.1), "value"),
    ("sophia", "sophia", dict(learning_rate=1e-2, update_interval=2), "obj_fn"),
    # lbfgs's zoom line search runs while-loops that eager mode compiles anew
    # on every call (seconds per example): only the line-search-free variant
    # is drawn here; tests/transforms/test_lbfgs.py covers the line search.
    ("lbfgs_no_linesearch", "lbfgs", dict(learning_rate=1e-2, linesearch=None), None),
]
CASES = [(*entry, None) for entry in OPTIMIZERS] + EXTRA


# ------------------------------------------------------------------ strategies

magnitudes = st.builds(
    lambda sign, e: sign * 2.0**e, st.sampled_from([-1.0, 1.0]), st.floats(-7.0, 7.0)
)
values = st.one_of(st.just(0.0), magnitudes)
decays = st.floats(0.5, 0.999)
layouts = st.recursive(
    st.sampled_from(range(len(SHAPES))),
    lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=3),
        st.dictionaries(st.sampled_from("abcd"), kids, min_size=1, max_size=3),
    ),
    max_leaves=4,
).filter(lambda layout: any(0 not in SHAPES[i] for i in jax.tree.leaves(layout)))


def _hyperparameters(draw, name, kwargs):
    hyper = dict(kwargs)
    for arg, param in inspect.signature(factory(name)).parameters.items():
        value = hyper.get(arg, param.default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # schedules, None, flags, dtypes, functions
        if arg in ("learning_rate", "max_learning_rate"):
            hyper[arg] = value * draw(st.floats(0.1, 10.0))
        elif arg in DECAYS and 0.0 <= value < 1.0:
            hyper[arg] = draw(decays)
    if name == "prodigy":
        hyper["betas"] = (draw(decays), draw(decays))
    return hyper


@st.composite
def problems(draw, name, kwargs, extra):
    """(hyperparameters, params, STEPS gradient trees, extra update kwargs)."""
    layout = draw(layouts)
    treedef = jax.tree.structure(layout)
    shapes = [SHAPES[i] for i in jax.tree.leaves(layout)]
    dtypes = draw(
        st.one_of(
            st.sampled_from(DTYPES).map(lambda d: [d] * len(shapes)),
            st.lists(
                st.sampled_from(DTYPES), min_size=len(shapes), max_size=len(shapes)
            ),
        )
    )

    def tree():
        leaves = [
            jnp.asarray(draw(hnp.arrays(np.float32, s, elements=values)), d)
            for s, d in zip(shapes, dtypes, strict=True)
        ]
        return jax.tree.unflatten(treedef, leaves)

    params = tree()
    grads = [tree() for _ in range(STEPS)]
    hyper = _hyperparameters(draw, name, kwargs)
    args = {}
    if extra == "value":
        args["value"] = jnp.float32(draw(st.floats(0.0, 100.0)))
    elif extra == "obj_fn":
        args["obj_fn"] = _sophia_objective
    return hyper, params, grads, args


# ---------------------------------------------------------------- the property


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


def _leaves(tree):
    tree = gradtx.tree.unwrap_random_key_data(tree)
    return [
        (jax.tree_util.keystr(path), np.asarray(x))
        for path, x in jax.tree_util.tree_leaves_with_path(tree)
    ]


def _is_float(x):
    return jnp.issubdtype(x.dtype, jnp.floating)


def _assert_jit_equals_eager(step, eager, jitted, params, ulps, differences):
    (updates, state), (j_updates, j_state) = eager, jitted
    assert _signature(jitted) == _signature(eager), f"step {step}: jit signature"
    param_leaves = jax.tree.leaves(params)
    for kind, a, b in (("update", updates, j_updates), ("state", state, j_state)):
        for i, ((path, x), (_, y)) in enumerate(
            zip(_leaves(a), _leaves(b), strict=True)
        ):
            where = f"step {step}: jit != eager at {kind}{path}"
            if not _is_float(x) or ulps == 0 or x.size == 0:
                np.testing.assert_array_equal(x, y, err_msg=where)
                continue
            scale = float(np.max(np.abs(x.astype(np.float64))))
            if kind == "update" and differences:
                p = np.asarray(param_leaves[i], np.float64)
                scale = max(scale, float(np.max(np.abs(p), initial=0.0)))
            atol = ulps * float(jnp.finfo(x.dtype).eps) * scale
            np.testing.assert_allclose(
                x.astype(np.float64),
                y.astype(np.float64),
                rtol=0,
                atol=atol,
                err_msg=where,
            )


def _check(id_, name, hyper, params, grads, args, jit):
    opt = make(name, **hyper)
    state = opt.init(params)
    signature = _signature(state)
    for path, x in _leaves(state):
        if _is_float(x):
            assert np.all(np.isfinite(x)), f"init: non-finite {path}: {x}"
    step = jax.jit(lambda g, s, p: opt.update(g, s, p, **args))
    for t, g in enumerate(grads, start=1):
        updates, new_state = opt.update(g, state, params, **args)
        assert jax.tree.structure(updates) == jax.tree.structure(g)
        for u, gl in zip(jax.tree.leaves(updates), jax.tree.leaves(g), strict=True):
            assert u.dtype == gl.dtype, (
                f"step {t}: a {gl.dtype} gradient, {u.dtype} update"
            )
        assert _signature(new_state) == signature, f"step {t}: the state changed"
        for path, x in _leaves((updates, new_state)):
            if _is_float(x):
                assert np.all(np.isfinite(x)), f"step {t}: non-finite {path}: {x}"
        if jit:
            _assert_jit_equals_eager(
                t,
                (updates, new_state),
                step(g, state, params),
                params,
                ULPS.get(id_, ULPS_DEFAULT),
                id_ in DIFFERENCES,
            )
        params = gradtx.apply_updates(params, updates)
        state = new_state


@pytest.mark.parametrize("id_,name,kwargs,extra", CASES, ids=[c[0] for c in CASES])
def test_random_trees_dtypes_and_hyperparameters(id_, name, kwargs, extra):
    """No exception, finite outputs, jit == eager, a stable state signature."""
    calls = []

    @settings(
        max_examples=FEWER_EXAMPLES.get(id_, EXAMPLES),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: it recompiles
    )
    @seed(zlib.crc32(id_.encode()))
    @given(problems(name, kwargs, extra))
    def check(problem):
        _check(id_, name, *problem, jit=len(calls) == 1)
        calls.append(problem)

    check()
    assert len(calls) >= 2, "the jitted example was never drawn"


def test_prodigy_float16_updates_track_float32():
    """Found by the test above (non-finite grad_sum in float16 draws): in the
    params' float16, exp_avg_sq ~ d0²·g² = 1e-12·g² underflowed to 0, so the
    first update was ~1e6 times the float32 one; the state is now float32."""
    p32 = jnp.array([0.5, -1.0, 2.0, 0.25])
    g32 = jnp.array([1.0, -0.5, 0.25, 2.0])
    runs = []
    for dtype in (jnp.float32, jnp.float16):
        opt, p = gradtx.prodigy(), p32.astype(dtype)
        state, updates = opt.init(p), []
        for t in range(5):
            u, state = opt.update((g32 * (-1) ** t).astype(dtype), state, p)
            p = gradtx.apply_updates(p, u)
            updates.append(np.asarray(u, np.float32))
        runs.append(np.stack(updates))
    # float32 steps are ~1e-6 (d0-sized); float16 may round them to 0.
    np.testing.assert_allclose(runs[1], runs[0], rtol=0, atol=1e-4)
