"""The native one-pass Adam(W) kernel (gradtx.engines.native) against the plain path.

The oracle is gradtx itself: ``adam``/``adamw`` (optionally after
``clip_by_global_norm``) update + ``apply_updates``, jitted, which XLA:CPU
compiles into its own loops. Each step starts both sides from the same state,
so a difference is that step's alone.

What is asserted (jax 0.10, x86-64 with FMA):

- bit-identical p', m', v' (NaNs compared as NaNs) for every configuration
  below, except two where XLA's own rounding depends on context:
  a clipped gradient on a leaf whose size is not a multiple of 4 (XLA then
  fuses the other product of ``omb1*g + b1*m`` into its FMA), and Nesterov
  with a clipped gradient and ``eps_root > 0`` (likewise for the look-ahead);
- there: m' and v' within 1 ulp of their larger term, and p' within
  ``4 * (ulp(p) + 2^-23 * lr * |û|)``, with ``|û|`` the size of the Adam
  direction computed from the operands' magnitudes (the bound is 2.0 at
  worst in practice).
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
from gradtx.transforms.adam import ScaleByAdamState
from gradtx.transforms.clipping import global_clip_factor

pytestmark = pytest.mark.skipif(
    not _native.available(),
    reason=f"native kernel unavailable: {_native.why_unavailable()}",
)

B1, B2, EPS, STEPS = 0.9, 0.999, 1e-8, 50

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
    """gradtx's step for ``count`` (the state's count) through the kernel."""
    c = _maths.safe_increment(count)
    lr = _lr(sched)
    return _native.adam_leaf_step(
        p, g, mu, nu,
        f=global_clip_factor(g, 1.0) if clip else None,
        b1=B1, omb1=1 - B1, b2=B2, omb2=1 - B2,
        c1=_maths.debias_factor(B1, c),
        c2=_maths.debias_factor(B2, c),
        c1n=_maths.debias_factor(B1, _maths.safe_increment(c)),
        eps=EPS, eps_root=eps_root, wd=wd,
        nlr=-(lr(count) if sched else lr),
        nesterov=nesterov,
    )  # fmt: skip


def _differing(a, b):
    """Elements whose bits differ, NaN against NaN counting as equal."""
    a, b = np.asarray(a), np.asarray(b)
    return (a.view(np.uint32) != b.view(np.uint32)) & ~(np.isnan(a) & np.isnan(b))


def _assert_within_bound(got, want, before, g, f, *, c1, c1n, c2, lr, wd):
    """The ulp bound of the module docstring, from the operands' magnitudes.

    ``got`` and ``want`` are ``(p', m', v')``; ``before`` is ``(p, m, v)``.
    """
    f64 = lambda x: np.asarray(x, np.float64)
    p0, m0, v0 = (np.abs(f64(x)) for x in before)
    gs = np.abs(f64(g)) * float(f)
    m_scale = (1 - B1) * gs + B1 * m0
    v_scale = (1 - B2) * gs * gs + B2 * v0
    for name, i, scale in (("m", 1, m_scale), ("v", 2, v_scale)):
        err = np.abs(f64(got[i]) - f64(want[i])) / np.spacing(scale.astype(np.float32))
        assert np.max(err) <= 1, f"{name}: {np.max(err)} ulps"
    m1, v1 = np.abs(f64(want[1])), f64(want[2])
    u = (m1 + m_scale) / min(c1, c1n) / (np.sqrt(v1 / c2) + EPS) + wd * p0
    bound = np.spacing(p0.astype(np.float32)) + 2.0**-23 * lr * u
    err = np.abs(f64(got[0]) - f64(want[0])) / bound
    assert np.max(err) <= 4, f"p: {np.max(err)} of the bound"


def _expect_exact(shape, nesterov, clip, eps_root):
    size = int(np.prod(shape))
    return not (clip and size % 4) and not (nesterov and clip and eps_root)


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
    exact = _expect_exact(shape, nesterov, clip, eps_root)
    for step in range(STEPS if p.size < 2**16 else 8):
        g = _gradient(kg, shape, step)
        before = _adam_state(state)
        pn, mn, vn = nat(p, g, before)
        p_next, state = ref(p, g, state)
        after = _adam_state(state)
        if exact:
            for name, x, y in (
                ("p", p_next, pn),
                ("m", after.mu, mn),
                ("v", after.nu, vn),
            ):
                n_bad = int(_differing(x, y).sum())
                assert n_bad == 0, f"step {step}: {name} differs in {n_bad} elements"
        else:
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
    for name, x, y in (("p", pr, pn), ("m", after.mu, mn), ("v", after.nu, vn)):
        assert not _differing(x, y).any(), name


def test_brief_expression_within_ulps():
    """The plain jnp expression with every scalar traced: the documented bound.

    Spelt this way (``b1``, ``b2`` traced too, ``g`` always scaled), XLA's
    choice of which products to fuse into FMAs depends on the leaf's size, so
    only the ulp bound of the module docstring holds.
    """
    shape = (4096,)
    k = jax.random.split(jax.random.key(7), 4)
    p, g, m, v = (jax.random.normal(key, shape) for key in k)
    v = jnp.abs(v)
    scalars = dict(
        f=0.7, b1=B1, omb1=1 - B1, b2=B2, omb2=1 - B2, c1=0.2, c2=0.003,
        c1n=0.28, eps=EPS, eps_root=1e-9, wd=1e-4, nlr=-1e-3,
    )  # fmt: skip
    scalars = {k: jnp.float32(x) for k, x in scalars.items()}
    for nesterov in (False, True):
        run = lambda fn, s: fn(p, g, m, v, **s, nesterov=nesterov)
        want = jax.jit(lambda s: run(_native.reference_leaf_step, s))(scalars)
        got = jax.jit(lambda s: run(_native.adam_leaf_step, s))(scalars)
        _assert_within_bound(
            got, want, (p, m, v), g, 0.7, c1=0.2, c1n=0.28, c2=0.003, lr=1e-3, wd=1e-4
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
    p, g, m, v = _leaf((1 << 19,))
    step = jax.jit(
        lambda p, g, m, v: _native.adam_leaf_step(p, g, m, v, **SCALARS),
        donate_argnums=(0, 2, 3),
    )
    want = jax.jit(lambda *a: _native.reference_leaf_step(*a, f=None, **SCALARS))(
        p, g, m, v
    )
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
