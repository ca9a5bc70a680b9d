"""Block-RMS and adaptive clipping, per-example clipping, constraints and misc.

Trajectories follow :mod:`test_reference`: closed loop over 120 steps from the
same start, parameters compared at every step, norm-wise relative error below
1e-6 in float32, against Optax and against the float64 references of
:mod:`reference_clipping_extra`. Two cases use another gradient so that the
transformation engages: ``keep_params_nonnegative`` on an objective whose
minimum is negative (the parameters hit 0 and stay there), ``zero_nans`` on a
gradient that is NaN wherever ``sin(11·p) > 0.8``.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_clipping_extra as RC
from test_reference import DTYPE, STEPS, X64, _rel_err, _start

import gradtx
from gradtx import transforms as CE
from gradtx import transforms as CO
from gradtx import transforms as MI

RTOL = 1e-10 if X64 else 1e-6

OURS = {
    "clip_by_block_rms": CE.clip_by_block_rms,
    "adaptive_grad_clip": CE.adaptive_grad_clip,
    "keep_params_nonnegative": CO.keep_params_nonnegative,
    "zero_nans": CO.zero_nans,
    "centralize": MI.centralize,
    "normalize_by_update_norm": MI.normalize_by_update_norm,
    "apply_every": MI.apply_every,
}

CASES = [
    ("clip_by_block_rms", dict(threshold=1.0)),
    ("clip_by_block_rms", dict(threshold=0.2)),
    ("adaptive_grad_clip", dict(clipping=0.3)),
    ("adaptive_grad_clip", dict(clipping=0.05, eps=0.5)),
    ("keep_params_nonnegative", dict()),
    ("zero_nans", dict()),
    ("centralize", dict()),
    ("normalize_by_update_norm", dict()),
    ("normalize_by_update_norm", dict(scale_factor=2.0, eps=1e-3)),
    ("apply_every", dict()),
    ("apply_every", dict(k=3)),
]


def _grad(xp, name):
    """The objective's gradient (``xp``: jnp or np); see the module docstring."""
    target = -1.0 if name == "keep_params_nonnegative" else 0.5

    def grad(params):
        out = [(p - target) + 0.5 * xp.sin(3.0 * p) for p in params]
        if name == "zero_nans":
            out = [
                xp.where(xp.sin(11.0 * p) > 0.8, xp.nan, g)
                for g, p in zip(out, params, strict=True)
            ]
        return out

    return grad


def _chain(lib, tx, name):
    chain, scale = (R.Chain, R.Scale) if lib is R else (lib.chain, lib.scale)
    if name == "keep_params_nonnegative":
        return chain(scale(-0.1), tx)  # it must see the final step
    return chain(tx, scale(-0.01))


def _run_jax(tx, lib, name):
    grad = _grad(jnp, name)
    params = [jnp.asarray(p, DTYPE) for p in _start()]

    def step(carry, _):
        p, s = carry
        u, s = tx.update(grad(p), s, p)
        p = lib.apply_updates(p, u)
        return (p, s), (p, s)

    run = lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1]
    traj, states = jax.jit(run)(params)
    return [np.asarray(x, np.float64) for x in traj], states


def _run_numpy(ref, name):
    grad = _grad(np, name)
    params, traj, flags = [p.astype(DTYPE) for p in _start()], [], []
    for _ in range(STEPS):
        updates = ref.update(grad(params), params)
        params = [(p + u).astype(DTYPE) for p, u in zip(params, updates, strict=True)]
        traj.append(params)
        flags.append(getattr(ref.refs[0], "found_nan", None))
    stacked = [np.stack([p[i] for p in traj]).astype(np.float64) for i in range(4)]
    return stacked, flags


def _ids(cases):
    seen, out = {}, []
    for name, *_ in cases:
        seen[name] = seen.get(name, -1) + 1
        out.append(f"{name}-{seen[name]}")
    return out


@pytest.mark.parametrize("name,kwargs", CASES, ids=_ids(CASES))
def test_matches_numpy_reference_and_optax(name, kwargs):
    ours, our_states = _run_jax(
        _chain(gradtx, OURS[name](**kwargs), name), gradtx, name
    )
    theirs, their_states = _run_jax(
        _chain(optax, getattr(optax, name)(**kwargs), name), optax, name
    )
    ref = _chain(R, RC.REFERENCES[name](**kwargs), name)
    ref_traj, ref_flags = _run_numpy(ref, name)
    err_optax, err_ref = _rel_err(ours, theirs), _rel_err(ours, ref_traj)
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= RTOL, f"vs NumPy reference: {err_ref:.2e}"
    for a, b in zip(
        jax.tree.leaves(our_states), jax.tree.leaves(their_states), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL)
    if name == "zero_nans":
        flags = np.stack(jax.tree.leaves(our_states[0].found_nan), axis=1)
        np.testing.assert_array_equal(flags, np.array(ref_flags))
        assert flags.any() and not flags.all()  # the case engages, but not always
    if name == "keep_params_nonnegative":
        assert min(x.min() for x in ours if x.size) == 0.0  # it engages


def test_every_name_is_checked():
    assert {n for n, _ in CASES} == set(OURS) == set(RC.REFERENCES)


ALL = {
    **OURS,
    "per_example_global_norm_clip": CE.per_example_global_norm_clip,
    "per_example_layer_norm_clip": CE.per_example_layer_norm_clip,
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_signature_matches_optax(name):
    a = inspect.signature(ALL[name]).parameters
    b = inspect.signature(getattr(optax, name)).parameters
    assert list(a) == list(b)
    for k in a:
        assert (a[k].default, a[k].kind) == (b[k].default, b[k].kind), k


@pytest.mark.parametrize("name,kwargs", CASES, ids=_ids(CASES))
def test_state_fields_match_optax(name, kwargs):
    p = {"a": jnp.ones(3), "b": jnp.zeros(()), "c": jnp.ones((2, 2))}
    ours, theirs = OURS[name](**kwargs).init(p), getattr(optax, name)(**kwargs).init(p)
    assert type(ours).__name__ == type(theirs).__name__
    assert getattr(ours, "_fields", ()) == getattr(theirs, "_fields", ())
    assert jax.tree.structure(ours).num_leaves == jax.tree.structure(theirs).num_leaves
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
@pytest.mark.parametrize("name,kwargs", CASES, ids=_ids(CASES))
def test_state_is_stable_and_update_dtype_follows_gradient(name, kwargs, dtype):
    tx = OURS[name](**kwargs)
    w = jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3)
    params = [
        w,
        jnp.full((), 0.5, dtype),
        jnp.full((4,), 2.0, dtype),
        jnp.ones(0, dtype),
    ]
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    s0 = tx.init(params)
    u, s1 = jax.jit(tx.update)(grads, s0, params)
    assert _signature(s0) == _signature(s1)
    for x, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads), strict=True):
        assert x.dtype == g.dtype
        assert bool(jnp.all(jnp.isfinite(x)))
    _, s2 = jax.jit(tx.update)(grads, s1, params)
    assert _signature(s2) == _signature(s0)


# ------------------------------------------------- adaptive clipping: edge cases


def test_adaptive_grad_clip_unit_axes_match_optax():
    rng = np.random.default_rng(0)
    cases = [((3, 4, 5, 6), None), ((2, 3, 4, 5, 6), None), ((1, 7), None),
             ((4, 2, 3), None), ((4, 2, 3), -1), ((3, 4, 5, 6), (0,))]  # fmt: skip
    p = [jnp.asarray(rng.normal(size=s), jnp.float32) for s, _ in cases]
    g = [3 * x for x in jax.tree.map(jnp.flip, p)]

    def both(g, p):
        out = []
        for lib in (CE, optax):
            txs = [lib.adaptive_grad_clip(0.2, axis=a) for _, a in cases]
            out.append(
                [t.update(x, None, w)[0] for t, x, w in zip(txs, g, p, strict=True)]
            )
        return out

    ours, theirs = jax.jit(both)(g, p)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_adaptive_grad_clip_rank_6_needs_an_axis():
    x = jnp.ones((1, 2, 1, 2, 1, 2))
    tx = CE.adaptive_grad_clip(0.1)
    with pytest.raises(ValueError, match="axis"):
        tx.update(x, tx.init(x), x)
    np.testing.assert_allclose(
        CE.adaptive_grad_clip(0.1, axis=(0, 1)).update(x, None, x)[0],
        optax.adaptive_grad_clip(0.1, axis=(0, 1)).update(x, None, x)[0],
    )


@pytest.mark.parametrize("clipping,eps", [(0.1, 1e-3), (0.0, 1e-3), (0.1, 0.0)])
def test_adaptive_grad_clip_is_finite_for_zero_params_and_grads(clipping, eps):
    z, one = jnp.zeros((3, 2)), jnp.ones((3, 2))
    tx = CE.adaptive_grad_clip(clipping, eps)
    pairs = [(z, z), (z, one), (one, z)]

    @jax.jit
    def run():
        us = [tx.update(g, None, p)[0] for g, p in pairs]
        # its gradient too (meta-learning through the clip; NaN in Optax)
        d = jax.grad(lambda p: jnp.sum(tx.update(one, None, p)[0]))(z)
        return us, d

    us, d = run()
    assert bool(jnp.all(jnp.isfinite(d)))
    for u, (_, p) in zip(us, pairs, strict=True):
        assert bool(jnp.all(jnp.isfinite(u)))
        # never larger than clipping · max(‖w‖, eps) per unit (column)
        bound = clipping * max(float(np.linalg.norm(p[:, 0])), eps)
        assert float(np.linalg.norm(u[:, 0])) <= bound * (1 + 1e-6) + 1e-12


# ------------------------------------------------------- per-example clipping


def _batch(seed=0, zero_row=True):
    rng = np.random.default_rng(seed)
    g = {"w": rng.normal(size=(5, 3, 2)), "b": 4 * rng.normal(size=(5, 4))}
    if zero_row:
        g = {k: v.copy() for k, v in g.items()}
        for v in g.values():
            v[2] = 0.0
    return {k: jnp.asarray(v, jnp.float32) for k, v in g.items()}


@pytest.mark.parametrize("clip", [0.0, 0.5, 3.0, 1e6, float("inf")])
def test_per_example_global_norm_clip_matches_optax_and_reference(clip):
    g = _batch()
    total, n = CE.per_example_global_norm_clip(g, clip)
    o_total, o_n = optax.per_example_global_norm_clip(g, clip)
    leaves = [np.asarray(x) for x in jax.tree.leaves(g)]
    r_total, r_n = RC.per_example_global_norm_clip(leaves, clip)
    assert int(n) == int(o_n) == r_n and n.dtype == o_n.dtype
    for a, b, c in zip(
        jax.tree.leaves(total), jax.tree.leaves(o_total), r_total, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-6)
        assert a.dtype == jnp.float32


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("clip", [0.0, 0.5, 3.0, float("inf")])
def test_per_example_layer_norm_clip_matches_optax_and_reference(clip, uniform):
    g = _batch(1)
    total, n = CE.per_example_layer_norm_clip(g, clip, uniform)
    o_total, o_n = optax.per_example_layer_norm_clip(g, clip, uniform)
    assert jax.tree.structure(total) == jax.tree.structure(o_total)
    assert jax.tree.structure(n) == jax.tree.structure(o_n)
    leaves = [np.asarray(x) for x in jax.tree.leaves(g)]
    r_total, r_n = RC.per_example_layer_norm_clip(leaves, clip, uniform)
    assert [int(x) for x in jax.tree.leaves(n)] == r_n
    assert [int(x) for x in jax.tree.leaves(o_n)] == r_n
    for a, b, c in zip(
        jax.tree.leaves(total), jax.tree.leaves(o_total), r_total, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-6)


def test_per_example_layer_clip_bounds_each_example_by_the_global_norm():
    g = _batch(2, zero_row=False)
    for uniform in (True, False):
        for n in range(5):
            one = jax.tree.map(lambda x: x[n : n + 1], g)
            total, _ = CE.per_example_layer_norm_clip(one, 1.5, uniform)
            assert float(gradtx.global_norm(total)) <= 1.5 * (1 + 1e-6)


def test_per_example_clips_keep_the_dtype_and_accept_integers():
    g = [jnp.array([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]])]
    total, n = CE.per_example_global_norm_clip(g, 1.25)
    np.testing.assert_allclose(total[0], [1.75, 1.75, 1.75], rtol=1e-6)
    assert int(n) == 3 and total[0].dtype == jnp.float32
    gb = {"a": jnp.ones((4, 3), jnp.bfloat16)}
    assert CE.per_example_global_norm_clip(gb, 1.0)[0]["a"].dtype == jnp.bfloat16
    assert CE.per_example_layer_norm_clip(gb, 1.0)[0]["a"].dtype == jnp.bfloat16


def test_per_example_clips_jit_and_trace_the_bound():
    g = _batch()
    f = jax.jit(CE.per_example_global_norm_clip)
    np.testing.assert_allclose(
        f(g, 0.5)[0]["w"], CE.per_example_global_norm_clip(g, 0.5)[0]["w"], rtol=1e-6
    )
    h = jax.jit(lambda g, c: CE.per_example_layer_norm_clip(g, c, False))
    assert int(h(g, 0.0)[1]["b"]) == 4


@pytest.mark.parametrize(
    "fn", [CE.per_example_global_norm_clip, CE.per_example_layer_norm_clip]
)
@pytest.mark.parametrize(
    "grads",
    [
        [jnp.ones((3, 2)), jnp.ones((4, 2))],  # batch sizes differ
        [jnp.ones(3), jnp.ones(())],  # a scalar has no batch axis
        [],
    ],
)
def test_per_example_clips_need_a_batch_axis(fn, grads):
    with pytest.raises(ValueError, match="grads"):
        fn(grads, 1.0)


# ------------------------------------------------------------------ bad input

BAD = [
    (CE.clip_by_block_rms, dict(threshold=0.0), "threshold"),  # NaN in Optax
    (CE.clip_by_block_rms, dict(threshold=-1.0), "threshold"),
    (CE.adaptive_grad_clip, dict(clipping=-0.1), "clipping"),
    (CE.adaptive_grad_clip, dict(clipping=float("nan")), "clipping"),
    (CE.adaptive_grad_clip, dict(clipping=0.1, eps=-1.0), "eps"),
    (MI.normalize_by_update_norm, dict(scale_factor=0.0), "scale_factor"),
    (MI.normalize_by_update_norm, dict(scale_factor=float("nan")), "scale_factor"),
    (MI.normalize_by_update_norm, dict(eps=-1e-6), "eps"),
    (MI.apply_every, dict(k=0), "k"),
    (MI.apply_every, dict(k=-2), "k"),
]


@pytest.mark.parametrize(
    "factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


def test_bad_types_raise_type_errors():
    with pytest.raises(TypeError, match="axis"):
        CE.adaptive_grad_clip(0.1, axis="rows")
    with pytest.raises(TypeError, match="k"):
        MI.apply_every(1.5)
    with pytest.raises(TypeError, match="uniform"):
        CE.per_example_layer_norm_clip([jnp.ones((2, 2))], 1.0, uniform="yes")
    with pytest.raises(ValueError, match="l2_norm_clip"):
        CE.per_example_global_norm_clip([jnp.ones((2, 2))], -1.0)
    with pytest.raises(ValueError, match="global_l2_norm_clip"):
        CE.per_example_layer_norm_clip([jnp.ones((2, 2))], -1.0)


@pytest.mark.parametrize(
    "factory",
    [CE.adaptive_grad_clip, CO.keep_params_nonnegative],
    ids=lambda f: f.__name__,
)
def test_transforms_that_need_params_say_so(factory):
    tx = factory(0.1) if factory is CE.adaptive_grad_clip else factory()
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


@pytest.mark.parametrize("name,kwargs", CASES, ids=_ids(CASES))
def test_a_mismatched_tree_names_the_leaf_or_the_structure(name, kwargs):
    if name in ("centralize", "clip_by_block_rms", "normalize_by_update_norm"):
        pytest.skip("stateless and params-free: there is nothing to mismatch")
    tx = OURS[name](**kwargs)
    p = {"a": jnp.zeros(3)}
    state = tx.init(p)
    with pytest.raises(ValueError, match=r"\['a'\]|structure"):
        if name in ("adaptive_grad_clip", "keep_params_nonnegative"):
            tx.update({"a": jnp.zeros(4)}, state, p)
        elif name == "zero_nans":
            tx.update({"a": jnp.zeros(3), "b": jnp.zeros(1)}, state, p)
        else:
            tx.update({"a": jnp.zeros(4)}, state, p)


def test_apply_every_accepts_a_jax_integer_and_a_traced_k():
    a = MI.apply_every(jnp.array(2))
    s = a.init(jnp.zeros(1))
    u, s = a.update(jnp.ones(1), s)
    v, s = a.update(jnp.ones(1), s)
    assert (float(u[0]), float(v[0])) == (0.0, 2.0)

    def two_steps(k):
        tx = MI.apply_every(k)
        s = tx.init(jnp.zeros(1))
        u, s = tx.update(jnp.ones(1), s)
        return u + tx.update(jnp.ones(1), s)[0]

    np.testing.assert_array_equal(
        jax.jit(jax.vmap(two_steps))(jnp.array([1, 2])), [[2.0], [2.0]]
    )


def test_zero_nans_flags_per_leaf_and_keeps_infinities():
    tx = CO.zero_nans()
    g = {"a": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.ones(2), "c": None}
    s = tx.init(g)
    assert not any(bool(x) for x in jax.tree.leaves(s.found_nan))
    u, s = jax.jit(tx.update)(g, s)
    assert u["a"].tolist() == [1.0, 0.0, float("inf")] and u["c"] is None
    assert bool(s.found_nan["a"]) and not bool(s.found_nan["b"])
    _, s = tx.update({"a": jnp.zeros(3), "b": jnp.ones(2), "c": None}, s)
    assert not bool(s.found_nan["a"])  # the flag is about the last update only
    c = jnp.array([1 + 1j, complex(0, float("nan"))], jnp.complex64)
    uc, sc = tx.update(c, tx.init(c))
    assert uc.tolist() == [1 + 1j, 0j] and bool(sc.found_nan)


def test_normalize_by_update_norm_without_eps_is_zero_on_zero_updates():
    tx = MI.normalize_by_update_norm(eps=0.0)
    u, _ = jax.jit(tx.update)({"a": jnp.zeros(3), "b": jnp.zeros(())}, tx.init(None))
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))


def test_centralize_keeps_integer_updates_exact():
    g = jnp.array([[1, 2], [3, 6]])
    u, _ = MI.centralize().update(g, None)
    np.testing.assert_array_equal(u, optax.centralize().update(g, None)[0])
    assert u.tolist() == [[-0.5, 0.5], [-1.5, 1.5]]
