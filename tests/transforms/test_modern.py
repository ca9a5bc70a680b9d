"""Muon, ADOPT, AdEMAMix, simplified AdEMAMix, Prodigy: Optax, NumPy, bad input.

Trajectories follow :mod:`test_reference`: closed loop over 120 steps from the
same start, parameters compared at every step, norm-wise relative error. Against
``optax.contrib`` every case must be within 1e-6 in float32 (measured: 0.0,
bit for bit, for every case here, including the Newton–Schulz iterations: the
same matmuls in the same order, and a ``lax.scan`` where Optax scans).

Against the float64 references of :mod:`reference_modern` (params stored in
float32 between steps), measured in float32:

* ADOPT and simplified AdEMAMix pass 1e-6; AdEMAMix, with ``b2 = 0.999``,
  has Adam's float32 bias-correction error (see :mod:`test_reference`);
* Muon: the orthogonalised step of a float32 matrix differs from the float64
  one by ~1e-6 relative (five quintic steps, each a sum of terms of size ~3–5
  that cancel to ~1), so trajectories agree to ~2e-6 (bound 1e-5);
* Prodigy: while ``d`` is tiny (it starts at 1e-6) the params move by ~1e-6
  per step, and storing them in float32 (ulp ~2.4e-7 at 3) rounds that
  distance by up to ~10%; ``⟨g, x₀ − x⟩``, hence ``d`` and every later step,
  inherit it. Measured 1.1e-4, 5.8e-5, 4.3e-5 (bound 3e-4); in float64 the
  same cases agree to 1e-15.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
import reference as R
import reference_modern as RM
from test_reference import X64, _rel_err, _run_jax, _run_numpy

import gradtx
from gradtx import prodigy
from gradtx.optimizers.ademamix import ademamix, simplified_ademamix
from gradtx.optimizers.adopt import adopt
from gradtx.optimizers.muon import muon
from gradtx.transforms.ademamix import scale_by_ademamix, scale_by_simplified_ademamix
from gradtx.transforms.adopt import scale_by_adopt
from gradtx.transforms.muon import MuonDimensionNumbers, newton_schulz, scale_by_muon

RTOL = 1e-10 if X64 else 1e-6
F32_TOLERANCE = {"b2_0.999": 3e-6, "muon": 1e-5, "prodigy": 3e-4}

OURS = {
    f.__name__: f
    for f in (
        scale_by_muon,
        scale_by_adopt,
        scale_by_ademamix,
        scale_by_simplified_ademamix,
        prodigy,
        muon,
        adopt,
        ademamix,
        simplified_ademamix,
    )
}


def _sched(t):
    return 0.02 * 0.99**t


PRIMITIVES = [
    ("scale_by_adopt", dict()),
    ("scale_by_adopt", dict(b1=0.5, b2=0.99, eps=1e-3, nesterov=True)),
    ("scale_by_adopt", dict(use_clipping=False)),
    ("scale_by_ademamix", dict()),
    ("scale_by_ademamix", dict(b2=0.99, b3=lambda t: 0.9 + 0.0005 * t, alpha=_sched)),
    ("scale_by_simplified_ademamix", dict()),
    ("scale_by_simplified_ademamix", dict(b1=0.9, b2=0.99, alpha=2.0, eps_root=1e-8)),
]

ALIASES = [
    ("adopt", dict(learning_rate=0.01)),
    ("adopt", dict(learning_rate=_sched, b2=0.999, nesterov=True)),
    ("ademamix", dict(learning_rate=0.01)),
    ("ademamix", dict(learning_rate=_sched, b2=0.99, alpha=2.0, weight_decay=0.1)),
    ("simplified_ademamix", dict(learning_rate=1e-3, alpha=1.0)),
    (
        "simplified_ademamix",
        dict(learning_rate=1e-3, weight_decay=0.1, mask=[True, False, True, False]),
    ),
    ("prodigy", dict()),
    ("prodigy", dict(learning_rate=lambda t: 1.0 - 0.005 * t, weight_decay=0.1)),
    ("prodigy", dict(betas=(0.8, 0.99), beta3=0.9, safeguard_warmup=True)),
    ("muon", dict(learning_rate=0.01)),
    (
        "muon",
        dict(
            learning_rate=_sched,
            ns_coeffs="dion",
            preconditioning="aol",
            nesterov=False,
            weight_decay=0.1,
        ),
    ),
    (
        "muon",
        dict(
            learning_rate=0.01,
            preconditioning="schatten",
            adaptive=True,
            consistent_rms=0.2,
            adam_learning_rate=0.02,
            adam_b2=0.99,
        ),
    ),
]

CASES = [(n, k, True) for n, k in PRIMITIVES] + [(n, k, False) for n, k in ALIASES]


def _ids(cases):
    seen, out = {}, []
    for name, *_ in cases:
        seen[name] = seen.get(name, -1) + 1
        out.append(f"{name}-{seen[name]}")
    return out


def _tolerance(name, kwargs):
    if X64:
        return RTOL
    if "muon" in name:
        return F32_TOLERANCE["muon"]
    if name == "prodigy":
        return F32_TOLERANCE["prodigy"]
    if (
        "ademamix" in name
        and "simplified" not in name
        and kwargs.get("b2", 0.999) > 0.99
    ):
        return F32_TOLERANCE["b2_0.999"]
    return RTOL


def _with_scale(lib, tx, primitive):
    return lib.chain(tx, lib.scale(-0.01)) if primitive else tx


@pytest.mark.parametrize("name,kwargs,primitive", CASES, ids=_ids(CASES))
def test_matches_numpy_reference_and_optax(name, kwargs, primitive):
    ours = _with_scale(gradtx, OURS[name](**kwargs), primitive)
    theirs = _with_scale(optax, getattr(optax.contrib, name)(**kwargs), primitive)
    ref = RM.REFERENCES[name](**kwargs)
    if primitive:
        ref = R.Chain(ref, R.Scale(-0.01))
    traj = _run_jax(ours, gradtx.apply_updates)
    err_optax = _rel_err(traj, _run_jax(theirs, optax.apply_updates))
    err_ref = _rel_err(traj, _run_numpy(ref))
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    assert err_ref <= _tolerance(name, kwargs), f"vs NumPy reference: {err_ref:.2e}"


# ------------------------------------------------ Muon on matrices of all kinds

MATRIX_SHAPES = [(3, 4), (5, 2), (1, 3), (2, 3, 2)]
DIMS = [(0, 1), (0, 1), (0, 1), ((0, 2), 1)]


def _run_matrices(tx, apply_updates, steps=60):
    rng = np.random.default_rng(3)
    params = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in MATRIX_SHAPES]

    def step(carry, _):
        p, s = carry
        g = [x - 0.5 + 0.5 * jnp.sin(3.0 * x) for x in p]
        u, s = tx.update(g, s, p)
        p = apply_updates(p, u)
        return (p, s), p

    scan = lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[1]
    return [np.asarray(x, np.float64) for x in jax.jit(scan)(params)], params


def _run_matrices_numpy(ref, params, steps=60):
    p, traj = [np.asarray(x, np.float32) for x in params], []
    for _ in range(steps):
        g = [x - 0.5 + 0.5 * np.sin(3.0 * x.astype(np.float64)) for x in p]
        p = [
            (x + u).astype(np.float32) for x, u in zip(p, ref.update(g, p), strict=True)
        ]
        traj.append(p)
    return [np.stack([q[i] for q in traj]).astype(np.float64) for i in range(len(p))]


MUON_PRIMITIVE = [
    dict(),
    dict(nesterov=False, beta=0.8, ns_steps=3, preconditioning="spectral", eps=1e-6),
]


@pytest.mark.parametrize("kwargs", MUON_PRIMITIVE, ids=range(len(MUON_PRIMITIVE)))
def test_scale_by_muon_on_batched_matrices(kwargs):
    dims = [MuonDimensionNumbers(*d) for d in DIMS]
    kw = dict(kwargs, weight_dimension_numbers=dims)
    ours = gradtx.chain(scale_by_muon(**kw), gradtx.scale(-0.01))
    od = [optax.contrib.MuonDimensionNumbers(*d) for d in DIMS]
    theirs = optax.chain(
        optax.contrib.scale_by_muon(**dict(kwargs, weight_dimension_numbers=od)),
        optax.scale(-0.01),
    )
    traj, start = _run_matrices(ours, gradtx.apply_updates)
    other, _ = _run_matrices(theirs, optax.apply_updates)
    ref = R.Chain(RM.ScaleByMuon(**dict(kwargs, weight_dimension_numbers=DIMS)),
                  R.Scale(-0.01))  # fmt: skip
    assert _rel_err(traj, other) <= RTOL
    assert _rel_err(traj, _run_matrices_numpy(ref, start)) <= F32_TOLERANCE["muon"]


NS_CASES = [
    ((4, 4), "frobenius", 5),
    ((3, 7), "frobenius", 5),
    ((9, 2), "spectral", 5),
    ((6, 5), "aol", 4),
    ((5, 8), "schatten", 5),
    ((16, 32), "frobenius", 5),
]


@pytest.mark.parametrize("shape,pre,steps", NS_CASES, ids=[c[1] for c in NS_CASES])
def test_newton_schulz_matches_numpy_and_optax(shape, pre, steps):
    """float32 vs float64: ~1e-6 relative (measured ≤ 1.5e-6, bound 5e-6).

    Against Optax's own function: the same matmuls, bit for bit (bound 1e-6).
    """
    x = np.random.default_rng(sum(shape)).normal(size=shape)
    coeffs = jnp.asarray(RM.STANDARD)
    ours = np.asarray(jax.jit(newton_schulz, static_argnums=(2, 3))(
        jnp.asarray(x, jnp.float32), coeffs, steps, pre))  # fmt: skip
    ref = RM.newton_schulz(x, RM.STANDARD, steps, pre)
    theirs = optax.contrib._muon.orthogonalize_via_newton_schulz(
        jnp.asarray(x, jnp.float32), coeffs, steps, pre
    )
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(ours - ref)) / scale <= 5e-6
    assert np.max(np.abs(ours - np.asarray(theirs))) / scale <= 1e-6
    # The point of the iteration: singular values in about [0.6, 1.25].
    sv = np.linalg.svd(ours.astype(np.float64), compute_uv=False)
    assert sv.min() > 0.5 and sv.max() < 1.3, sv


def test_muon_sends_non_matrices_to_adamw_on_dicts():
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2), "s": jnp.zeros(())}
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5), params)
    for lib in (gradtx, optax.contrib):
        tx = lib.muon(0.1) if lib is optax.contrib else muon(0.1)
        u, s = tx.update(grads, tx.init(params), params)
        if lib is gradtx:
            ours, state = u, s
        else:
            theirs = u
    for k in params:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-6)
    assert _fields(state) == _fields(optax.contrib.muon(0.1).init(params))


def test_muon_dimension_numbers_tree_and_none():
    params = {"conv": jnp.ones((2, 3, 4)), "w": jnp.ones((3, 3)), "b": jnp.ones(3)}
    spec = {"conv": MuonDimensionNumbers((0, 1), 2), "w": None, "b": None}
    ospec = {
        "conv": optax.contrib.MuonDimensionNumbers((0, 1), 2),
        "w": None,
        "b": None,
    }
    g = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=jnp.float32))
                     .reshape(p.shape), params)  # fmt: skip
    ours = muon(0.1, muon_weight_dimension_numbers=spec)
    theirs = optax.contrib.muon(0.1, muon_weight_dimension_numbers=ospec)
    # jitted: eager Optax rounds 1 − β^t op by op (see _maths.debias_factor).
    u, _ = jax.jit(ours.update)(g, ours.init(params), params)
    v, _ = jax.jit(theirs.update)(g, theirs.init(params), params)
    for k in params:
        np.testing.assert_allclose(u[k], v[k], rtol=1e-6, atol=1e-9)


def test_scale_by_muon_default_takes_any_tree_of_matrices():
    # Optax's scale_by_muon(weight_dimension_numbers=None) fails on a dict.
    params = {"a": jnp.ones((2, 3)), "b": [jnp.eye(2)]}
    tx = scale_by_muon()
    u, _ = tx.update(params, tx.init(params))
    assert jax.tree.structure(u) == jax.tree.structure(params)


def test_scale_by_muon_names_a_non_matrix_leaf():
    tx = scale_by_muon()
    params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"\['bias'\].*rank >= 2"):
        tx.update(params, tx.init(params))


# ----------------------------------------------------------- API and state


OPTAX_DEFAULT_FNS = {"clip_value_fn"}


def test_signatures_match_optax():
    for name, ours in OURS.items():
        a = inspect.signature(ours).parameters
        b = inspect.signature(getattr(optax.contrib, name)).parameters
        # gradtx may add keyword-only options (mu_dtype, nu_dtype) at the end
        extra = list(a)[len(b) :]
        assert list(a)[: len(b)] == list(b), name
        assert all(a[k].kind is a[k].KEYWORD_ONLY for k in extra), name
        for k in b:
            assert a[k].kind == b[k].kind, (name, k)
            if k in OPTAX_DEFAULT_FNS:  # a function: compare what it computes
                t = jnp.arange(5)
                np.testing.assert_allclose(a[k].default(t), b[k].default(t))
            else:
                assert a[k].default == b[k].default, (name, k)


def _fields(state):
    """Class names and field names, recursively (what a checkpoint keys on)."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    if isinstance(state, dict):
        return {k: _fields(v) for k, v in state.items()}
    return None


def _params(dtype=jnp.float32):
    w = jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3)
    full = lambda shape, v: jnp.full(shape, v, dtype)
    return [w, full((), 0.5), full((4,), 2.0), full((0,), 1.0)]


def _matrix_params(dtype=jnp.float32):
    w = jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3)
    return [w, jnp.eye(3, dtype=dtype)[:, :2], jnp.zeros((0, 2), dtype)]


def _params_for(name, dtype=jnp.float32):
    return _matrix_params(dtype) if name == "scale_by_muon" else _params(dtype)


# One case per name (the options do not change the state's layout).
_FIRST = {n: (n, k) for n, k, _ in reversed(CASES)}
STATE_CASES = [*_FIRST.values(), ("scale_by_muon", dict())]


@pytest.mark.parametrize("name,kwargs", STATE_CASES, ids=_ids(STATE_CASES))
def test_state_fields_match_optax(name, kwargs):
    p = _params_for(name)
    ours = OURS[name](**kwargs).init(p)
    theirs = getattr(optax.contrib, name)(**kwargs).init(p)
    assert _fields(ours) == _fields(theirs)
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
    for x, y in pairs:
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
@pytest.mark.parametrize("name,kwargs", STATE_CASES, ids=_ids(STATE_CASES))
def test_state_is_stable_and_update_dtype_follows_gradient(name, kwargs, dtype):
    tx = OURS[name](**kwargs)
    params = _params_for(name, dtype)
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    s0 = tx.init(params)
    u, s1 = jax.jit(tx.update)(grads, s0, params)
    assert _signature(s0) == _signature(s1)
    for x, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads), strict=True):
        assert x.dtype == g.dtype
        assert bool(jnp.all(jnp.isfinite(x)))
    _, s2 = jax.jit(tx.update)(grads, s1, params)
    assert _signature(s2) == _signature(s0)


def test_mu_dtype_is_kept():
    p = jnp.ones((2, 2))
    for tx in (muon(1e-3, mu_dtype=jnp.bfloat16), adopt(1e-3, mu_dtype=jnp.bfloat16)):
        s = tx.init(p)
        _, s = tx.update(jnp.ones((2, 2)), s, p)
        mus = [x for x in jax.tree.leaves(s) if x.shape == (2, 2)]
        assert mus and mus[0].dtype == jnp.bfloat16


# ------------------------------------------------------ where Optax is unsafe


def test_adopt_first_step_survives_a_huge_gradient():
    g = jnp.array([1e37, 1.0])
    tx, theirs = (
        adopt(0.1, use_clipping=False),
        optax.contrib.adopt(0.1, use_clipping=False),
    )
    _, s = tx.update(g, tx.init(g))
    assert bool(jnp.all(jnp.isfinite(s[0].mu)))  # Optax: 0·inf = NaN
    _, st = theirs.update(g, theirs.init(g))
    assert bool(jnp.isnan(st[0].mu[0]))


def test_prodigy_zero_gradients_keep_the_estimate():
    p = jnp.ones(3)
    tx, theirs = prodigy(), optax.contrib.prodigy()
    u, s = tx.update(jnp.zeros(3), tx.init(p), p)
    np.testing.assert_allclose(s.estim_lr, 1e-6)
    _, st = theirs.update(jnp.zeros(3), theirs.init(p), p)
    assert bool(jnp.isnan(st.estim_lr))  # Optax: 0/0
    u, s = tx.update(jnp.ones(3), s, p)  # and it then proceeds normally
    assert bool(jnp.all(jnp.isfinite(u)))


def test_prodigy_needs_params():
    tx = prodigy()
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


# ------------------------------------------------------------------ bad input

BAD = [
    (scale_by_muon, dict(beta=1.0), "beta"),
    (scale_by_muon, dict(eps=-1.0), "eps"),
    (scale_by_muon, dict(ns_coeffs=(1.0, 2.0)), "ns_coeffs"),
    (scale_by_muon, dict(ns_coeffs=RM.DION, ns_steps=3), "ns_coeffs"),
    (scale_by_muon, dict(ns_coeffs=(1.0, float("nan"), 2.0)), "ns_coeffs"),
    (scale_by_muon, dict(preconditioning="qr"), "preconditioning"),
    (scale_by_muon, dict(mu_dtype=jnp.int32), "mu_dtype"),
    (muon, dict(learning_rate=-1.0), "learning_rate"),
    (muon, dict(learning_rate=0.1, ns_coeffs="fast"), "ns_coeffs"),
    (muon, dict(learning_rate=0.1, adam_b1=1.0), "adam_b1"),
    (muon, dict(learning_rate=0.1, adam_b2=-0.1), "adam_b2"),
    (muon, dict(learning_rate=0.1, adam_learning_rate=-1.0), "adam_learning_rate"),
    (muon, dict(learning_rate=0.1, weight_decay=-1.0), "weight_decay"),
    (muon, dict(learning_rate=0.1, consistent_rms=-0.2), "consistent_rms"),
    (scale_by_adopt, dict(b1=1.0), "b1"),
    (scale_by_adopt, dict(b2=1.5), "b2"),
    (scale_by_adopt, dict(eps=0.0), "eps"),  # 0/0 on a zero gradient
    (adopt, dict(learning_rate=None), "learning_rate"),
    (scale_by_ademamix, dict(b1=-0.1), "b1"),
    (scale_by_ademamix, dict(b2=1.0), "b2"),
    (scale_by_ademamix, dict(b3=1.5), "b3"),
    (scale_by_ademamix, dict(alpha=-1.0), "alpha"),
    (scale_by_ademamix, dict(eps_root=-1.0), "eps_root"),
    (ademamix, dict(learning_rate=0.1, weight_decay=-0.1), "weight_decay"),
    (scale_by_simplified_ademamix, dict(b1=1.0), "b1"),
    (scale_by_simplified_ademamix, dict(b2=float("nan")), "b2"),
    (simplified_ademamix, dict(learning_rate=-0.1), "learning_rate"),
    (prodigy, dict(learning_rate=-1.0), "learning_rate"),
    (prodigy, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (prodigy, dict(betas=(0.9,)), "betas"),
    (prodigy, dict(beta3=1.5), "beta3"),
    (prodigy, dict(estim_lr0=0.0), "estim_lr0"),
    (prodigy, dict(estim_lr_coef=-1.0), "estim_lr_coef"),
    (prodigy, dict(weight_decay=-1.0), "weight_decay"),
]


@pytest.mark.parametrize(
    "factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


@pytest.mark.parametrize("factory", [scale_by_muon, scale_by_adopt])
def test_flags_must_be_bools(factory):
    with pytest.raises(TypeError, match="nesterov"):
        factory(nesterov="yes")


def test_a_mismatched_state_names_the_leaf():
    tx = scale_by_ademamix()
    state = tx.init({"a": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"\['a'\]"):
        tx.update({"a": jnp.zeros(4)}, state)


def test_hyperparameters_may_be_traced():
    def run(b1, beta):
        p = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
        us = []
        for tx in (ademamix(0.1, b1=b1), muon(0.1, beta=beta)):
            u, _ = tx.update(jax.tree.map(jnp.cos, p), tx.init(p), p)
            us.append(u)
        return us

    out = jax.jit(jax.vmap(run))(jnp.array([0.9, 0.8]), jnp.array([0.95, 0.9]))
    want = run(0.9, 0.95)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a[0], b, rtol=1e-6)
