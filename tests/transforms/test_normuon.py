"""NorMuon: the float64 NumPy reference, pytorch-optimizer, leaves, bad input.

Closed loop over 30 steps from the same float64 start (gradients of one
fixed function of the params, computed in NumPy for every implementation),
max absolute difference of the params at every step:

* vs :mod:`reference_normuon` (written from the paper): 1e-6 bound, measured
  ~1e-15 (the Gram variant ~1e-14);
* vs ``pytorch_optimizer.NorMuon`` 4.1.0 (its Newton–Schulz switched from its
  hard-coded bfloat16 to the params' float64, ``foreach`` off and on): 1e-6
  bound, measured ~1e-15; the only differences are the first norm (it clamps
  at 1e-7, we add ``eps``) and rounding.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import public_references as refs
import pytest
import reference_normuon as RN

from gradtx import MuonDimensionNumbers, normuon, scale_by_normuon

STEPS = 30
SHAPES = {"w": (4, 4), "t": (6, 3), "c": (2, 3, 4), "b": (4,)}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _start():
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


_TARGET = {
    k: np.cos(np.arange(np.prod(s, dtype=int))).reshape(s) for k, s in SHAPES.items()
}


def _grads(params):
    return {k: p - _TARGET[k] + 0.3 * np.sin(3 * p) for k, p in params.items()}


@functools.cache
def _ours(case, ns_method="newton_schulz"):
    """Our float64 trajectory for a case (shared by both comparisons)."""
    with jax.enable_x64(True):
        tx = normuon(learning_rate=2e-2, ns_method=ns_method, **CASES[case][0])
        return _run_ours(tx, _start())


def _run_ours(tx, params):
    params = {k: jnp.asarray(v) for k, v in params.items()}
    state = tx.init(params)

    @jax.jit
    def step(g, state, params):
        u, state = tx.update(g, state, params)
        return jax.tree.map(jnp.add, params, u), state

    out = []
    for _ in range(STEPS):
        g = _grads({k: np.asarray(v) for k, v in params.items()})
        params, state = step(g, state, params)
        out.append({k: np.asarray(v) for k, v in params.items()})
    return out


def _run_numpy(ref, params):
    out = []
    for _ in range(STEPS):
        params = ref.step(params, _grads(params))
        out.append(params)
    return out


def _max_diff(a, b):
    return max(
        np.max(np.abs(x[k] - y[k]), initial=0.0)
        for x, y in zip(a, b, strict=True)
        for k in x
    )


CASES = {
    "defaults": (dict(), dict()),
    "no_nesterov_wd_polar": (
        dict(
            nesterov=False,
            weight_decay=0.1,
            beta=0.9,
            b2=0.9,
            ns_coeffs="polar_express",
        ),
        dict(nesterov=False, weight_decay=0.1, beta=0.9, b2=0.9),
    ),
    "rms_quintic_adam": (
        dict(
            consistent_rms=0.2,
            ns_coeffs="quintic",
            adam_learning_rate=1e-2,
            adam_weight_decay=0.05,
            eps=1e-8,
        ),
        dict(consistent_rms=0.2, adam_lr=1e-2, adam_weight_decay=0.05, eps=1e-8),
    ),
}
PRESETS = {
    "defaults": "original",
    "no_nesterov_wd_polar": "polar_express",
    "rms_quintic_adam": "quintic",
}


def _coeffs(name):
    from gradtx.transforms.newton_schulz import resolve_ns_coeffs

    return resolve_ns_coeffs("test", name, 5)


REFERENCE_CASES = [(case, "newton_schulz") for case in CASES] + [
    ("no_nesterov_wd_polar", "gram_newton_schulz")
]


@pytest.mark.parametrize("case, ns_method", REFERENCE_CASES)
def test_normuon_matches_the_numpy_reference(case, ns_method):
    ref = RN.NorMuon(2e-2, coeffs=_coeffs(PRESETS[case]), **CASES[case][1])
    assert _max_diff(_ours(case, ns_method), _run_numpy(ref, _start())) < 1e-6


def _torch_float64_newton_schulz(monkeypatch, po):
    """pytorch-optimizer's Newton–Schulz in the input's dtype (not bfloat16)."""
    from pytorch_optimizer.optimizer.muon import base, normuon

    for module in (base, normuon):
        original = module.zero_power_via_newton_schulz_5
        monkeypatch.setattr(
            module,
            "zero_power_via_newton_schulz_5",
            lambda g, _f=original, **kw: _f(g, **kw, dtype=g.dtype),
        )


TORCH_CASES = [(case, False) for case in CASES] + [("defaults", None)]


@pytest.mark.parametrize("case, foreach", TORCH_CASES)
def test_normuon_matches_pytorch_optimizer(monkeypatch, case, foreach):
    po = refs.pytorch_optimizer()
    torch = refs.torch()
    _torch_float64_newton_schulz(monkeypatch, po)
    ref_kw = CASES[case][1]
    start = _start()
    ps = {k: torch.tensor(v, dtype=torch.float64) for k, v in start.items()}
    matrices = [ps[k] for k in SHAPES if len(SHAPES[k]) >= 2]
    others = [ps[k] for k in SHAPES if len(SHAPES[k]) < 2]
    opt = po.NorMuon(
        [dict(params=matrices, use_muon=True), dict(params=others, use_muon=False)],
        lr=2e-2,
        momentum=ref_kw.get("beta", 0.95),
        beta2=ref_kw.get("b2", 0.95),
        weight_decay=ref_kw.get("weight_decay", 0.0),
        nesterov=ref_kw.get("nesterov", True),
        ns_coeffs=PRESETS[case],
        use_adjusted_lr=ref_kw.get("consistent_rms") is not None,
        adamw_lr=ref_kw.get("adam_lr", 2e-2),
        adamw_betas=(0.9, 0.95),
        adamw_wd=ref_kw.get("adam_weight_decay", 0.0),
        eps=ref_kw.get("eps", 1e-10),
        foreach=foreach,
    )
    theirs = []
    for _ in range(STEPS):
        grads = _grads({k: p.detach().numpy() for k, p in ps.items()})
        for k, p in ps.items():
            p.grad = torch.tensor(grads[k])
        opt.step()
        theirs.append({k: p.detach().numpy().copy() for k, p in ps.items()})
    assert _max_diff(_ours(case), theirs) < 1e-6


def test_state_shapes_and_non_matrix_leaves():
    params = {
        "w": jnp.ones((3, 5)),
        "c": jnp.ones((2, 3, 4)),
        "e": jnp.ones((0, 3)),
        "f": jnp.ones((3, 0)),
        "b": jnp.ones(4),
        "s": jnp.ones(()),
    }
    tx = normuon(learning_rate=0.1)
    state = tx.init(params)
    nu = state.inner_states["muon"].inner_state[1].nu
    assert {k: nu[k].shape for k in ("w", "c", "e", "f")} == {
        "w": (3, 1),
        "c": (2, 1, 1),
        "e": (0, 1),
        "f": (3, 1),
    }
    assert jax.tree.structure(jax.eval_shape(tx.init, params)) == jax.tree.structure(
        state
    )
    grads = jax.tree.map(lambda p: p * 2.0, params)
    grads["w"] = jnp.zeros((3, 5))  # a zero gradient: a zero step, no NaN
    u, state = jax.jit(tx.update)(grads, state, params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((u, state)))
    assert u["f"].shape == (3, 0) and u["e"].shape == (0, 3)
    assert float(jnp.abs(u["w"]).max()) == 0.0


def test_bfloat16_params_follow_float32():
    params = {"w": jnp.linspace(-1, 1, 12).reshape(3, 4)}
    grads = jax.tree.map(lambda p: jnp.sin(3 * p) + 0.5, params)
    tx = normuon(learning_rate=0.1)
    low = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    update = jax.jit(tx.update)
    u32, _ = update(grads, tx.init(params), params)
    u16, _ = update(
        jax.tree.map(lambda x: x.astype(jnp.bfloat16), grads), tx.init(low), low
    )
    assert u16["w"].dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(u16["w"], np.float32), np.asarray(u32["w"]), atol=3e-3
    )


def test_scale_by_normuon_rows_follow_the_dimension_numbers():
    # Output axis 1 (gradtx's (fan_in, fan_out) default): one v per column.
    tx = scale_by_normuon()
    u = jnp.arange(12.0).reshape(3, 4)
    out, state = tx.update(u, tx.init(u))
    assert state.nu.shape == (1, 4)
    np.testing.assert_allclose(
        state.nu[0], 0.05 * np.mean(np.asarray(u) ** 2, 0), rtol=1e-6
    )
    np.testing.assert_allclose(jnp.linalg.norm(out), jnp.linalg.norm(u), rtol=1e-5)
    tx = scale_by_normuon(weight_dimension_numbers=MuonDimensionNumbers(1, 0))
    assert tx.init(u).nu.shape == (3, 1)


def test_scale_by_normuon_names_a_non_matrix_leaf():
    tx = scale_by_normuon()
    with pytest.raises(ValueError, match=r"\['b'\]"):
        tx.init({"w": jnp.ones((2, 2)), "b": jnp.ones(2)})


BAD = [
    (normuon, dict(learning_rate=-1.0), "learning_rate"),
    (normuon, dict(beta=1.0), "beta"),
    (normuon, dict(b2=-0.1), "b2"),
    (normuon, dict(eps=-1.0), "eps"),
    (normuon, dict(weight_decay=-1.0), "weight_decay"),
    (normuon, dict(nesterov="yes"), "nesterov"),
    (normuon, dict(ns_steps=-1), "ns_steps"),
    (normuon, dict(ns_steps=2.5), "ns_steps"),
    (normuon, dict(ns_coeffs="cubic"), "ns_coeffs"),
    (normuon, dict(ns_coeffs=(1.0, 2.0)), "ns_coeffs"),
    (normuon, dict(ns_method="svd"), "ns_method"),
    (normuon, dict(consistent_rms=-0.2), "consistent_rms"),
    (normuon, dict(mu_dtype=jnp.int32), "mu_dtype"),
    (normuon, dict(adam_b1=1.0), "adam_b1"),
    (normuon, dict(adam_b2=1.5), "adam_b2"),
    (normuon, dict(adam_eps=-1.0), "adam_eps"),
    (normuon, dict(adam_weight_decay=-1.0), "adam_weight_decay"),
    (normuon, dict(adam_learning_rate=-1.0), "adam_learning_rate"),
    (scale_by_normuon, dict(b2=1.0), "b2"),
    (scale_by_normuon, dict(eps=-1.0), "eps"),
    (scale_by_normuon, dict(nu_dtype=jnp.int32), "nu_dtype"),
]


@pytest.mark.parametrize(
    "factory, kwargs, name", BAD, ids=[f"{f.__name__}-{n}" for f, _, n in BAD]
)
def test_bad_input_names_the_argument(factory, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        factory(**kwargs)
