"""The native one-pass Adam(W) kernel (gradtx.engines.native) against the plain path.

The oracle is gradtx itself: ``adam``/``adamw`` (optionally after
``clip_by_global_norm``) update + ``apply_updates``, jitted. The kernel gets
its scalars from :func:`gradtx.transforms.adam.adam_scalars`, the function
``scale_by_adam`` uses, and computes :func:`gradtx.transforms.adam.adam_leaf`'s
expression with every operation rounded once. XLA compiles that expression
with roundings of its own choosing (it may contract ``a*b + c`` into an FMA,
and turns ``x / c`` into ``x * (1/c)``), which change between XLA versions,
CPUs and the surrounding code; so the comparison is a bound, not bit-identity.
Each step starts both sides from the same state, so a difference is that
step's alone.

The bound, per element (ULP = 2^-23, one unit in the last place at 1):

- ``m'`` and ``v'`` within ``M_ULPS = 3`` ulps of the larger of their two
  terms (``|(1-b1)·g|`` or ``|b1·m|``; ``|(1-b2)·g²|`` or ``|b2·v|``). Why 3:
  however a two-term sum is rounded (two products then the sum, or one product
  fused into an FMA), it is within half an ulp of the larger term for the
  product(s) plus half an ulp of the sum, which may be one binade up: 1.5 ulps
  of the larger term from the exact value, so two such roundings (kernel and
  XLA) are at most 3 apart, whatever XLA chooses, even when the terms cancel.
  The clip factor ``g·f`` is rounded the same way on both sides.
- ``p'`` within ``P_UNITS = 8`` units of ``ulp(p) + ULP·lr·|û|``, where
  ``|û| = (|m'| + m_scale)/min(c1, c1n)/(sqrt(v'/c2) + eps) + wd·|p|`` is the
  size of the step computed from magnitudes (``m_scale`` the sum of the
  first moment's terms): ``p + (−lr)·u`` rounds once on each side (an ulp of
  ``p``), and ``u`` inherits the ulps of ``m'`` and ``v'`` (above), of
  dividing by ``c1, c2, c1n`` (or multiplying by their rounded reciprocals, as
  XLA does), of ``sqrt`` and of the final division: a handful of ulps of
  ``|û|``, each at most ``ULP·|û|``.

Measured on x86-64 with FMA (jax 0.10, XLA:CPU), over the cases below: 2 ulps
for ``m'`` and ``v'``, 2.1 units for ``p'`` (``pytest -s`` prints the worst
ratios of a run). Non-finite results (inf, NaN) must appear at the same
elements, with the same sign.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx._core import maths as _maths
from gradtx.engines import native as _native
from gradtx.transforms.adam import ScaleByAdamState, adam_scalars
from gradtx.transforms.clipping import global_clip_factor

pytestmark = pytest.mark.skipif(
    not _native.available(),
    reason=f"native kernel unavailable: {_native.why_unavailable()}",
)

B1, B2, EPS, STEPS = 0.9, 0.999, 1e-8, 50
ULP = 2.0**-23
M_ULPS, P_UNITS = 3, 8
WORST = {"m": 0.0, "v": 0.0, "p": 0.0}  # measured ratios, printed with -s

# (nesterov, clip, weight_decay, lr schedule, eps_root)
CONFIGS = [
    (False, False, 1e-4, False, 0.0),
    (True, False, 1e-4, False, 0.0),
    (False, True, 1e-4, False, 0.0),
    (True, True, 0.0, True, 0.0),
    (False, False, 0.0, True, 1e-8),
    (True, False, 1e-2, True, 1e-8),
    (True, True, 1e-4, False, 1e-8),
]
CASES = [(shape, config) for shape in [(1000,), (384, 512)] for config in CONFIGS]
CASES += [((2**18 + 3,), CONFIGS[i]) for i in (0, 2, 3, 6)]  # threaded: 5 chunks
CASES += [((1,), CONFIGS[1]), ((1,), CONFIGS[3])]


def _lr(sched):
    return (lambda count: 1e-3 * 0.99**count) if sched else 1e-3


def _optimizer(nesterov, clip, wd, sched, eps_root):
    lr = _lr(sched)
    if wd:
        opt = gradtx.adamw(
            lr, B1, B2, EPS, eps_root, weight_decay=wd, nesterov=nesterov
        )
    else:
        opt = gradtx.adam(lr, B1, B2, EPS, eps_root, nesterov=nesterov)
    return gradtx.chain(gradtx.clip_by_global_norm(1.0), opt) if clip else opt


def _adam_state(state):
    if isinstance(state, ScaleByAdamState):
        return state
    if isinstance(state, tuple):
        for sub in state:
            found = _adam_state(sub)
            if found is not None:
                return found
    return None


def _with_adam(state, adam):
    """``state`` with its :class:`ScaleByAdamState` replaced by ``adam``."""
    if isinstance(state, ScaleByAdamState):
        return adam
    if isinstance(state, tuple) and not hasattr(state, "_fields"):
        return tuple(_with_adam(sub, adam) for sub in state)
    return state


def _native_step(p, g, mu, nu, count, *, nesterov, clip, wd, sched, eps_root):
    """gradtx's step for ``count`` (the state's count) through the kernel, with
    the scalars from ``adam_scalars``, as ``fused_step`` computes them."""
    s = adam_scalars(B1, B2, EPS, eps_root, _maths.safe_increment(count), nesterov)
    scalars = s._asdict()
    scalars["c1n"] = s.c1 if s.c1n is None else s.c1n
    lr = _lr(sched)
    return _native.adam_leaf_step(
        p, g, mu, nu,
        f=global_clip_factor(g, 1.0) if clip else None,
        **scalars, wd=wd, nlr=-(lr(count) if sched else lr), nesterov=nesterov,
    )  # fmt: skip


def _differing(a, b):
    """Elements whose bits differ, NaN against NaN counting as equal."""
    a, b = np.asarray(a), np.asarray(b)
    return (a.view(np.uint32) != b.view(np.uint32)) & ~(np.isnan(a) & np.isnan(b))


def _same_non_finite(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN elements differ"
    inf = np.isinf(want)
    assert np.array_equal(np.isinf(got), inf), "inf elements differ"
    assert np.array_equal(got[inf], want[inf]), "inf signs differ"
    return np.isfinite(want)


def _assert_within_bound(got, want, before, g, f, *, c1, c1n, c2, lr, wd):
    """The bound of the module docstring, from the operands' magnitudes.

    ``got`` and ``want`` are ``(p', m', v')``; ``before`` is ``(p, m, v)``.
    """
    f64 = lambda x: np.asarray(x, np.float64)
    p0, m0, v0 = (np.abs(f64(x)) for x in before)
    gs = np.abs(f64(g)) * float(f)
    m_terms = np.maximum((1 - B1) * gs, B1 * m0)
    v_terms = np.maximum((1 - B2) * gs * gs, B2 * v0)
    with np.errstate(all="ignore"):
        for name, i, scale in (("m", 1, m_terms), ("v", 2, v_terms)):
            ok = _same_non_finite(got[i], want[i])
            unit = np.spacing(scale.astype(np.float32)).astype(np.float64)
            err = np.abs(f64(got[i]) - f64(want[i]))[ok] / unit[ok]
            worst = float(np.max(err, initial=0.0))
            WORST[name] = max(WORST[name], worst)
            assert worst <= M_ULPS, f"{name}: {worst} ulps of the larger term"
        m1, v1 = np.abs(f64(want[1])), f64(want[2])
        m_scale = (1 - B1) * gs + B1 * m0
        u = (m1 + m_scale) / min(c1, c1n) / (np.sqrt(v1 / c2) + EPS) + wd * p0
        unit = np.spacing(p0.astype(np.float32)).astype(np.float64) + ULP * lr * u
        ok = _same_non_finite(got[0], want[0]) & np.isfinite(unit)
        err = np.abs(f64(got[0]) - f64(want[0]))[ok] / unit[ok]
        worst = float(np.max(err, initial=0.0))
        WORST["p"] = max(WORST["p"], worst)
        assert worst <= P_UNITS, f"p: {worst} units of the bound"


def _gradient(key, shape, step):
    scale = 10.0 ** ((step % 7) - 3)  # 1e-3 .. 1e3: clipping on and off
    return scale * jax.random.normal(jax.random.fold_in(key, step), shape)


@pytest.mark.parametrize(("shape", "config"), CASES, ids=str)
def test_matches_gradtx_step_by_step(shape, config):
    nesterov, clip, wd, sched, eps_root = config
    opt = _optimizer(*config)
    kw = dict(nesterov=nesterov, clip=clip, wd=wd, sched=sched, eps_root=eps_root)
    kp, kg = jax.random.split(jax.random.key(sum(shape)))
    p = jax.random.normal(kp, shape)
    state = opt.init(p)

    @jax.jit
    def ref(p, g, state):
        updates, state = opt.update(g, state, p)
        return gradtx.apply_updates(p, updates), state

    nat = jax.jit(lambda p, g, a: _native_step(p, g, a.mu, a.nu, a.count, **kw))
    for step in range(STEPS if p.size < 2**16 else 8):
        g = _gradient(kg, shape, step)
        before = _adam_state(state)
        pn, mn, vn = nat(p, g, before)
        p_next, state = ref(p, g, state)
        after = _adam_state(state)
        count = int(after.count)
        _assert_within_bound(
            (pn, mn, vn),
            (p_next, after.mu, after.nu),
            (p, before.mu, before.nu),
            g,
            global_clip_factor(g, 1.0) if clip else 1.0,
            c1=1 - B1**count,
            c1n=1 - B1 ** (count + 1),
            c2=1 - B2**count,
            lr=_lr(sched)(count - 1) if sched else _lr(sched),
            wd=wd,
        )
        p = p_next


def _special_values():
    """Every combination of special g, p, m and v values (v >= 0)."""
    specials = [0.0, -0.0, 1e-45, -3e-42, 1e-38, 1.0, -2.5, 1e19, 1e30, -3e38]
    specials += [np.inf, -np.inf, np.nan]
    combos = np.array(list(itertools.product(specials, repeat=3)), np.float32)
    combos = np.concatenate([combos, np.ones((-len(combos) % 4, 3), np.float32)])
    g, p, m = combos.T
    v = np.abs(np.random.default_rng(0).permutation(m))
    return g, p, m, v


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("wd", [0.0, 1e-4])
def test_special_values_match_gradtx(nesterov, clip, wd):
    g, p, m, v = (jnp.asarray(x) for x in _special_values())
    if clip:  # finite, so that the clip factor is neither 0 nor nan
        g = jnp.where(jnp.isfinite(g), g, 3.0)
    config = (nesterov, clip, wd, False, 0.0)
    opt = _optimizer(*config)
    adam = ScaleByAdamState(count=jnp.int32(3), mu=m, nu=v)
    state = _with_adam(opt.init(p), adam)

    @jax.jit
    def ref(p, g, state):
        updates, state = opt.update(g, state, p)
        return gradtx.apply_updates(p, updates), state

    kw = dict(nesterov=nesterov, clip=clip, wd=wd, sched=False, eps_root=0.0)
    pn, mn, vn = jax.jit(lambda *a: _native_step(*a, **kw))(p, g, m, v, adam.count)
    pr, state = ref(p, g, state)
    after = _adam_state(state)
    f = global_clip_factor(g, 1.0) if clip else 1.0
    _assert_within_bound(
        (pn, mn, vn),
        (pr, after.mu, after.nu),
        (p, m, v),
        g,
        f,
        c1=1 - B1**4,
        c1n=1 - B1**5,
        c2=1 - B2**4,
        lr=1e-3,
        wd=wd,
    )


def _leaf(shape, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    p, g, m, v = (jax.random.normal(key, shape) for key in k)
    return p, g, m, jnp.abs(v)


SCALARS = dict(
    b1=B1, omb1=1 - B1, b2=B2, omb2=1 - B2, c1=0.19, c2=0.002, c1n=0.271,
    eps=EPS, eps_root=0.0, wd=1e-4, nlr=-1e-3, nesterov=False,
)  # fmt: skip


def test_in_place_with_donation():
    """Donated, the kernel writes into its inputs, and computes what it
    computes without donation (the same kernel: bit for bit)."""
    p, g, m, v = _leaf((1 << 19,))
    step = jax.jit(
        lambda p, g, m, v: _native.adam_leaf_step(p, g, m, v, **SCALARS),
        donate_argnums=(0, 2, 3),
    )
    want = jax.jit(lambda *a: _native.adam_leaf_step(*a, **SCALARS))(p, g, m, v)
    pointers = [x.unsafe_buffer_pointer() for x in (p, m, v)]
    got = step(p, g, m, v)
    assert [x.unsafe_buffer_pointer() for x in got] == pointers
    for x, y in zip(got, want, strict=True):
        assert not _differing(x, y).any()


def test_inputs_kept_without_donation():
    p, g, m, v = _leaf((3000,))
    saved = [np.array(x) for x in (p, m, v)]
    got = jax.jit(lambda *a: _native.adam_leaf_step(*a, **SCALARS))(p, g, m, v)
    for x, before in zip((p, m, v), saved, strict=True):
        np.testing.assert_array_equal(np.asarray(x), before)
    assert not np.array_equal(np.asarray(got[0]), saved[0])


def test_inside_scan_and_vmap():
    p, g, m, v = _leaf((64, 33))
    step = lambda c, g: (_native.adam_leaf_step(c[0], g, c[1], c[2], **SCALARS), None)
    gs = jnp.stack([g * (i + 1) for i in range(5)])
    scanned, _ = jax.jit(lambda c, gs: jax.lax.scan(step, c, gs))((p, m, v), gs)
    carry = (p, m, v)
    one = jax.jit(step)
    for i in range(5):
        carry, _ = one(carry, gs[i])
    for x, y in zip(scanned, carry, strict=True):
        assert not _differing(x, y).any()

    lrs = jnp.array([-1e-3, -2e-2, -0.5], jnp.float32)
    batched = jax.jit(
        jax.vmap(
            lambda p, nlr: _native.adam_leaf_step(p, g, m, v, **{**SCALARS, "nlr": nlr})
        )
    )(jnp.stack([p, 2 * p, 3 * p]), lrs)
    for i in range(3):
        row = jax.jit(
            lambda p, nlr: _native.adam_leaf_step(p, g, m, v, **{**SCALARS, "nlr": nlr})
        )((i + 1) * p, lrs[i])
        for x, y in zip(batched, row, strict=True):
            assert not _differing(x[i], y).any()


def test_bad_arguments():
    p, g, m, v = _leaf((8,))
    with pytest.raises(TypeError, match="float32"):
        _native.adam_leaf_step(p.astype(jnp.bfloat16), g, m, v, **SCALARS)
    with pytest.raises(ValueError, match="shape"):
        _native.adam_leaf_step(p, g[:4], m, v, **SCALARS)
    with pytest.raises(ValueError, match="scalar"):
        _native.adam_leaf_step(p, g, m, v, **{**SCALARS, "c1": jnp.ones(2)})


def test_unavailable_reasons(monkeypatch, tmp_path):
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setenv("GRADTX_NATIVE", "0")
    assert not _native.available()
    assert "GRADTX_NATIVE=0" in _native.why_unavailable()
    with pytest.raises(RuntimeError, match="GRADTX_NATIVE"):
        _native.adam_leaf_step(*_leaf((4,)), **SCALARS)

    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.delenv("GRADTX_NATIVE")
    monkeypatch.setattr(_native.shutil, "which", lambda name: None)
    assert not _native.available()
    assert "g++" in _native.why_unavailable()

    monkeypatch.setenv("GRADTX_CACHE_DIR", str(tmp_path))
    path = _native._library_path("g++", b"source")
    assert path.parent == tmp_path and path.suffix == ".so"
    assert path != _native._library_path("g++", b"other source")


def test_report_measured_worst(capsys):
    """Prints the largest ratios seen in this run (``pytest -s``)."""
    with capsys.disabled():
        print(f"\nnative vs plain, worst: {WORST} (bounds: m, v {M_ULPS}; p {P_UNITS})")
