"""Newton–Schulz presets, the Gram variant, batching, and Muon vs pytorch-optimizer.

All in float64. Measured (bounds in the asserts):

* presets: pytorch-optimizer 4.1.0's tables exactly; one orthogonalisation
  vs its ``zero_power_via_newton_schulz_5`` (run in float64): ~1e-15;
* Gram Newton–Schulz vs the standard iteration: ~1e-14 (bound 5e-8); vs
  pytorch-optimizer's ``zero_power_via_gram_newton_schulz`` on matrices of
  ±0.5 (whose norm, a power of two, its float32 normalisation keeps exact):
  ~1e-14; on other matrices that float32 step alone puts them ~5e-7 apart;
* same-shape leaves orthogonalised as one batched call = one call per leaf,
  bit for bit;
* Muon vs ``pytorch_optimizer.Muon`` (its Newton–Schulz switched from
  bfloat16 to the params' float64), 30 steps: ~1e-15 (bound 1e-6). The alias
  ``muon`` expresses it with ``nesterov=False`` and
  ``MuonDimensionNumbers(1, 0)``; its bias-free Nesterov momentum needs
  ``scale_by_muon(bias_correction=False)`` in a chain.
"""

import jax
import jax.numpy as jnp
import numpy as np
import public_references as refs
import pytest

from gradtx import MuonDimensionNumbers, chain, muon, scale, scale_by_muon
from gradtx.transforms import add_decayed_weights
from gradtx.transforms.muon import scale_by_shape
from gradtx.transforms.newton_schulz import (
    NS_COEFFS_PRESETS,
    gram_newton_schulz,
    newton_schulz,
    resolve_ns_coeffs,
)

PRESETS = ["original", "quintic", "polar_express"]
STEPS = 30


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _matrix():
    from pytorch_optimizer.optimizer.utils import matrix

    return matrix


def test_presets_are_pytorch_optimizers_tables():
    refs.pytorch_optimizer()
    tables = _matrix().NS_COEFFICIENTS
    for name in PRESETS:
        ours = np.atleast_2d(np.asarray(NS_COEFFS_PRESETS[name], np.float64))
        np.testing.assert_array_equal(ours, np.asarray(tables[name]))
        for steps in (3, 5, 10):  # its schedule: row min(i, n - 1)
            rows = np.atleast_2d(resolve_ns_coeffs("t", name, steps))
            expected = [
                tables[name][min(i, len(tables[name]) - 1)] for i in range(steps)
            ]
            if name == "original":
                assert rows.shape == (1, 3)  # one triple, used at every step
                expected = expected[:1]
            np.testing.assert_array_equal(rows, np.asarray(expected))
    # gradtx's own presets are unchanged
    assert NS_COEFFS_PRESETS["standard"] == (3.4445, -4.7750, 2.0315)
    assert len(NS_COEFFS_PRESETS["dion"]) == 5


def _coeffs(name, steps=5):
    return jnp.asarray(resolve_ns_coeffs("t", name, steps), jnp.float64)


SHAPES = [(4, 4), (3, 5), (6, 3)]


@pytest.mark.parametrize("preset", PRESETS)
def test_newton_schulz_matches_pytorch_optimizer(x64, preset):
    torch = refs.torch()
    refs.pytorch_optimizer()
    rng = np.random.default_rng(1)
    for shape in SHAPES[1:]:
        x = rng.standard_normal(shape)
        ours = newton_schulz(jnp.asarray(x), _coeffs(preset), 5, eps=0.0)
        theirs = _matrix().zero_power_via_newton_schulz_5(
            torch.tensor(x), num_steps=5, weights=preset, dtype=torch.float64
        )
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), atol=1e-12)


@pytest.mark.parametrize("preconditioning", ["frobenius", "aol"])
def test_gram_newton_schulz_matches_the_standard_iteration(x64, preconditioning):
    rng = np.random.default_rng(2)
    for shape in SHAPES[1:]:
        for preset in PRESETS[1:]:
            x = jnp.asarray(rng.standard_normal(shape))
            a = newton_schulz(x, _coeffs(preset), 5, preconditioning)
            b = gram_newton_schulz(x, _coeffs(preset), 5, preconditioning)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=5e-8)


def test_gram_newton_schulz_matches_pytorch_optimizer(x64):
    torch = refs.torch()
    refs.pytorch_optimizer()
    rng = np.random.default_rng(3)
    for shape in [(4, 4), (8, 2), (4, 16)]:
        # ±0.5 or ±0.25: the Frobenius norm is exactly 2 (see the module doc)
        x = rng.choice([-1.0, 1.0], size=shape) * (
            0.25 if np.prod(shape) == 64 else 0.5
        )
        for preset in PRESETS[1:]:
            for reset in [(2,), (1, 3)]:
                ours = gram_newton_schulz(
                    jnp.asarray(x), _coeffs(preset), 5, eps=0.0, reset_steps=reset
                )
                theirs = _matrix().zero_power_via_gram_newton_schulz(
                    torch.tensor(x),
                    num_steps=5,
                    weights=preset,
                    dtype=torch.float64,
                    reset_steps=reset,
                )
                np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), atol=1e-12)


def test_same_shape_leaves_go_through_one_batched_call():
    ns_method = "newton_schulz"  # the grouping is the same for both methods
    rng = np.random.default_rng(4)
    dims = {
        "a": MuonDimensionNumbers(),
        "b": MuonDimensionNumbers(),
        "c": MuonDimensionNumbers(),
        "d": MuonDimensionNumbers(1, 0),
        "e": MuonDimensionNumbers(0, (1, 2)),
    }
    shapes = {"a": (4, 4), "b": (4, 4), "c": (3, 5), "d": (4, 4), "e": (2, 2, 2)}
    grads = {
        k: jnp.asarray(rng.standard_normal(s), jnp.float32) for k, s in shapes.items()
    }
    # Eager: bit for bit. (Two different jitted programs may round ~1 ulp
    # apart even for leaves that are not batched: XLA fuses them differently.)
    tx = scale_by_muon(ns_method=ns_method, weight_dimension_numbers=dims)
    together, _ = tx.update(grads, tx.init(grads))
    for k, g in grads.items():
        alone = scale_by_muon(ns_method=ns_method, weight_dimension_numbers=dims[k])
        u, _ = alone.update(g, alone.init(g))
        np.testing.assert_array_equal(np.asarray(together[k]), np.asarray(u))
    # a and b share one call: as many products as for the tree without b

    def n_products(tree):
        tx = scale_by_muon(
            ns_method=ns_method, weight_dimension_numbers={k: dims[k] for k in tree}
        )
        return str(jax.make_jaxpr(tx.update)(tree, tx.init(tree))).count("dot_general")

    assert n_products(grads) == n_products({k: grads[k] for k in "acde"})


def _torch_float64(monkeypatch):
    from pytorch_optimizer.optimizer.muon import base

    for name in ("zero_power_via_newton_schulz_5", "zero_power_via_gram_newton_schulz"):
        original = getattr(base, name)
        monkeypatch.setattr(
            base, name, lambda g, _f=original, **kw: _f(g, **kw, dtype=g.dtype)
        )


_MATRICES = {"w": (4, 4), "t": (6, 3), "c": (2, 3, 4)}


def _grads(params):
    return {
        k: p - np.cos(p.size * 0.1) + 0.3 * np.sin(3 * p) for k, p in params.items()
    }


def _by_rows(tree):
    # pytorch-optimizer reads a weight as (fan-out = dim 0, fan-in = the rest)
    return jax.tree.map(
        lambda x: (
            MuonDimensionNumbers(tuple(range(1, x.ndim)), 0) if x.ndim >= 2 else None
        ),
        tree,
    )


MUON_CASES = {
    "alias": dict(
        nesterov=False, preset="polar_express", wd=0.1, method="newton_schulz"
    ),
    "alias_gram_adam": dict(
        nesterov=False, preset="original", wd=0.0, method="gram_newton_schulz"
    ),
    "chain_nesterov": dict(
        nesterov=True, preset="quintic", wd=0.05, method="newton_schulz"
    ),
}


@pytest.mark.parametrize("case", list(MUON_CASES))
def test_muon_matches_pytorch_optimizer(x64, monkeypatch, case):
    torch = refs.torch()
    po = refs.pytorch_optimizer()
    _torch_float64(monkeypatch)
    c = MUON_CASES[case]
    lr = 2e-2
    shapes = dict(_MATRICES, b=(4,)) if case == "alias_gram_adam" else _MATRICES
    rng = np.random.default_rng(5)
    start = {k: rng.standard_normal(s) for k, s in shapes.items()}
    if case.startswith("alias"):
        tx = muon(
            lr,
            ns_coeffs=c["preset"],
            eps=1e-10,
            weight_decay=c["wd"],
            nesterov=False,
            adam_b2=0.95,
            muon_weight_dimension_numbers=_by_rows,
            ns_method=c["method"],
        )
    else:
        dims = lambda tree: _by_rows(tree)
        tx = chain(
            scale_by_muon(
                c["preset"],
                5,
                0.95,
                1e-10,
                nesterov=True,
                weight_dimension_numbers=dims,
                bias_correction=False,
            ),
            scale_by_shape(dims),
            add_decayed_weights(c["wd"]),
            scale(-lr),
        )
    ps = {k: torch.tensor(v) for k, v in start.items()}
    opt = po.Muon(
        [
            dict(params=[ps[k] for k in _MATRICES], use_muon=True),
            *([dict(params=[ps["b"]], use_muon=False)] if "b" in ps else []),
        ],
        lr=lr,
        momentum=0.95,
        weight_decay=c["wd"],
        nesterov=c["nesterov"],
        ns_coeffs=c["preset"],
        ns_method=c["method"],
        adamw_lr=lr,
        adamw_betas=(0.9, 0.95),
        adamw_eps=1e-10,
        foreach=False,
    )
    params = {k: jnp.asarray(v) for k, v in start.items()}
    state = tx.init(params)

    @jax.jit
    def step(g, state, params):
        u, state = tx.update(g, state, params)
        return jax.tree.map(jnp.add, params, u), state

    worst = 0.0
    for _ in range(STEPS):
        g = _grads({k: np.asarray(v) for k, v in params.items()})
        params, state = step(g, state, params)
        for k, p in ps.items():
            p.grad = torch.tensor(g[k])
        opt.step()
        worst = max(
            worst, *(np.abs(np.asarray(params[k]) - ps[k].numpy()).max() for k in ps)
        )
    # the Gram iteration: pytorch-optimizer normalises in float32 (~5e-7 per
    # orthogonalisation, times lr per step)
    assert worst < 1e-6


BAD = [
    (muon, dict(learning_rate=0.1, ns_coeffs="cubic"), "ns_coeffs", "polar_express"),
    (muon, dict(learning_rate=0.1, ns_method="svd"), "ns_method", "gram_newton_schulz"),
    (scale_by_muon, dict(ns_coeffs="cubic"), "ns_coeffs", "quintic"),
    (scale_by_muon, dict(ns_method="svd"), "ns_method", "newton_schulz"),
    (scale_by_muon, dict(bias_correction=1), "bias_correction", "bias_correction"),
]


@pytest.mark.parametrize("factory, kwargs, name, valid", BAD)
def test_unknown_names_raise_with_the_valid_values(factory, kwargs, name, valid):
    with pytest.raises((ValueError, TypeError)) as info:
        factory(**kwargs)
    assert name in str(info.value) and valid in str(info.value)
