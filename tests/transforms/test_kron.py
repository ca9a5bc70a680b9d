"""PSGD-Kron (``scale_by_kron``, ``psgd_kron``): the float64 NumPy reference,
step for step psgd-jax 0.2.9, the key scheme, leaves and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_kron
from public_references import psgd_kron as psgd_jax_kron

import gradtx
from gradtx.transforms.kron import factor_kinds, norm_lower_bound

STEPS = 25
LR = 0.05
SHAPES = {"a": (3, 4), "b": (3,), "c": (2, 3, 4), "s": ()}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in SHAPES.items()}


def _loss(p):
    return sum(jnp.sum(jnp.sin(x) * x**2 + 0.1 * x**4) for x in jax.tree.leaves(p))


def _run(opt, params, steps=STEPS):
    """``steps`` steps in one jitted scan."""

    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(_loss)(p), s, p)
        return (jax.tree.map(lambda x, d: x + d, p, u), s), None

    run = jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), None, steps)[0])
    return run(params)


def _psgd_jax_draws(count, shapes, key=None):
    """psgd-jax's key use (its source): decisions and probes at step ``count``."""
    key = jax.random.PRNGKey(5318008) if key is None else key
    sub = jax.random.split(jax.random.fold_in(key, count))[1]
    sub, kb = jax.random.split(sub)
    kv = jax.random.split(sub)[1]
    keys = jax.random.split(kv, len(shapes))
    probes = [
        np.asarray(jax.random.normal(k, s, jnp.float64)) for k, s in zip(keys, shapes, strict=False)
    ]
    return bool(jax.random.uniform(kb) < 0.01), probes


def _numpy_run(kwargs, every=1):
    params = [np.asarray(x) for x in jax.tree.leaves(_params())]

    def grads(ps):
        tree = jax.tree.unflatten(jax.tree.structure(_params()), ps)
        return [np.asarray(g) for g in jax.tree.leaves(jax.grad(_loss)(tree))]

    def draws(t, shapes):
        balance, probes = _psgd_jax_draws(t, shapes)
        return (t + 1) % every == 0, balance, probes

    return reference_kron.run(grads, params, draws, STEPS, LR, **kwargs)


def _close(ours, theirs, atol=1e-6):
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


# (psgd_kron's options, the reference's, 1/probability)
REFERENCE_CASES = [
    (dict(), dict(), 1),
    (
        dict(memory_save_mode="one_diag", weight_decay=0.1),
        dict(mode="one_diag", weight_decay=0.1),
        1,
    ),
    (
        dict(memory_save_mode="all_diag", b1=0.5, momentum_into_precond_update=False),
        dict(mode="all_diag", b1=0.5, momentum_into_precond_update=False),
        3,  # probability 1/3: the factors step on every third step
    ),
    (
        dict(min_ndim_triangular=3, max_size_triangular=3, b1=0.0),
        dict(min_ndim=3, max_size=3, b1=0.0),
        1,
    ),
]


@pytest.mark.parametrize("kwargs,ref_kwargs,every", REFERENCE_CASES)
def test_matches_the_numpy_reference(x64, kwargs, ref_kwargs, every):
    ours = gradtx.psgd_kron(
        learning_rate=LR, preconditioner_update_probability=1 / every, **kwargs
    )
    p, _ = _run(ours, _params())
    want, _ = _numpy_run(ref_kwargs, every=every)
    _close(jax.tree.leaves(p), want)


PSGD_JAX_CASES = [
    dict(preconditioner_update_probability=1.0),
    dict(memory_save_mode="one_diag", weight_decay=0.1),  # the default schedule
    dict(memory_save_mode="all_diag", preconditioner_lr=0.3, b1=0.8),
    "fast schedule",
]


@pytest.mark.parametrize("kwargs", PSGD_JAX_CASES)
def test_matches_psgd_jax_step_for_step(x64, kwargs):
    kron = psgd_jax_kron()
    if kwargs == "fast schedule":  # updates on steps 1-3, then every 2nd-4th
        sched = dict(flat_start=3, decay=0.2, min_prob=0.25)
        ours_kw = dict(
            preconditioner_update_probability=gradtx.precond_update_prob_schedule(
                **sched
            )
        )
        theirs_kw = dict(
            preconditioner_update_probability=kron.precond_update_prob_schedule(**sched)
        )
    else:
        ours_kw = theirs_kw = kwargs
    p_ours, s_ours = _run(gradtx.psgd_kron(learning_rate=LR, **ours_kw), _params())
    p_theirs, s_theirs = _run(kron.kron(learning_rate=LR, **theirs_kw), _params())
    _close(p_ours, p_theirs)
    s_ours, s_theirs = s_ours[0], s_theirs[0]
    _close(s_ours.qs, s_theirs["Qs_preconditioners"], atol=1e-6)
    assert int(s_ours.update_counter) == int(s_theirs["update_counter"])


def test_schedule_and_factor_kinds_are_psgd_jax_s():
    kron = psgd_jax_kron()
    steps = jnp.array([0, 1, 250, 500, 501, 1000, 4000, 10_000])
    for kw in (dict(), dict(max_prob=0.5, min_prob=0.1, decay=0.01, flat_start=20)):
        np.testing.assert_allclose(
            gradtx.precond_update_prob_schedule(**kw)(steps),
            kron.precond_update_prob_schedule(**kw)(steps),
            rtol=1e-7,
        )
    for shape in [(), (5,), (1, 4), (4, 4), (3, 5, 2), (9, 2), (2, 9, 9)]:
        for mode in (None, "one_diag", "all_diag"):
            for max_size, min_ndim in ((8192, 2), (4, 2), (8192, 3), (0, 0)):
                theirs = kron._init_Q_exprs(
                    jnp.zeros(shape), 1.0, max_size, min_ndim, mode, None
                )[0]
                ours = factor_kinds(shape, max_size, min_ndim, mode)
                if shape:
                    assert ours == tuple(q.ndim == 2 for q in theirs), (shape, mode)
                    state = gradtx.scale_by_kron(
                        max_size_triangular=max_size,
                        min_ndim_triangular=min_ndim,
                        memory_save_mode=mode,
                    ).init(jnp.zeros(shape))
                    assert [q.shape for q in state.qs] == [q.shape for q in theirs]


def test_norm_lower_bound_is_below_the_spectral_norm_and_close():
    rng = np.random.default_rng(1)
    for n in (1, 3, 8):
        a = rng.normal(size=(n, n))
        a = a @ a.T
        est = float(norm_lower_bound(jnp.asarray(a, jnp.float32)))
        true = np.linalg.norm(a, 2)
        assert true / np.sqrt(2) - 1e-4 <= est <= true * (1 + 1e-5)
        assert est == pytest.approx(reference_kron.norm_lower_bound(a), rel=1e-5)
    assert float(norm_lower_bound(jnp.zeros((3, 3)))) == 0.0


def test_key_none_is_psgd_jax_s_probes_and_a_key_reproduces(x64):
    p = _params()
    none = _run(gradtx.psgd_kron(LR, preconditioner_update_probability=1.0), p, 3)
    seeded = [
        _run(gradtx.psgd_kron(LR, preconditioner_update_probability=1.0, key=k), p, 3)
        for k in (7, jax.random.key(7), 8)
    ]
    _close(seeded[0], seeded[1], atol=0)
    diff = lambda a, b: max(
        float(jnp.max(jnp.abs(x - y)))
        for x, y in zip(jax.tree.leaves(a[0]), jax.tree.leaves(b[0]), strict=False)
    )
    assert diff(none, seeded[0]) > 0 and diff(seeded[0], seeded[2]) > 0
    same = _run(
        gradtx.psgd_kron(
            LR, preconditioner_update_probability=1.0, key=jax.random.PRNGKey(5318008)
        ),
        p,
        3,
    )
    _close(none, same, atol=0)


def test_leaves_scalar_empty_bfloat16_and_shapes():
    p = {
        "w": jnp.ones((3, 4), jnp.bfloat16),
        "b": jnp.ones(3, jnp.bfloat16),
        "s": jnp.asarray(2.0, jnp.bfloat16),
        "e": jnp.zeros((0, 3), jnp.bfloat16),
        "n": None,
    }
    opt = gradtx.psgd_kron(0.1)
    s0 = opt.init(p)
    qs = s0[0].qs
    assert [q.dtype for q in jax.tree.leaves(qs)] == [jnp.float32] * 6
    assert [q.shape for q in qs["w"]] == [(3, 3), (4, 4)]
    assert [q.shape for q in qs["e"]] == [(0, 0), (3, 3)]
    assert qs["s"][0].shape == () and qs["n"] is None
    assert s0[0].mu["w"].dtype == jnp.bfloat16
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.5), p)
    u, s1 = jax.jit(opt.update)(g, s0, p)
    assert u["e"].shape == (0, 3) and u["n"] is None
    for x in jax.tree.leaves(u):
        assert x.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(x)))
    assert jax.tree.map(jnp.shape, s1) == jax.tree.map(jnp.shape, s0)
    shapes = jax.eval_shape(opt.init, p)
    assert jax.tree.map(lambda x: x.shape, shapes) == jax.tree.map(jnp.shape, s0)
    custom = gradtx.scale_by_kron(mu_dtype=jnp.float32, precond_dtype=jnp.bfloat16)
    st = custom.init(p)
    assert st.mu["w"].dtype == jnp.float32 and st.qs["w"][0].dtype == jnp.bfloat16


def test_complex_leaf_raises_naming_it():
    opt = gradtx.psgd_kron(0.1)
    p = {"ok": jnp.ones(2), "z": jnp.ones((2, 2), jnp.complex64)}
    with pytest.raises(TypeError, match=r"\['z'\].*complex"):
        opt.init(p)
    s = opt.init({"ok": jnp.ones(2), "z": jnp.ones((2, 2))})
    with pytest.raises(TypeError, match=r"\['z'\]"):
        opt.update(p, s, p)


def test_state_of_other_options_raises_naming_the_leaf():
    p = {"w": jnp.ones((3, 4))}
    s = gradtx.scale_by_kron(memory_save_mode="all_diag").init(p)
    with pytest.raises(ValueError, match=r"\['w'\].*factors"):
        gradtx.scale_by_kron().update(p, s)


BAD = [
    (dict(b1=1.0), ValueError, "b1"),
    (dict(b1=-0.1), ValueError, "b1"),
    (dict(preconditioner_lr=0.0), ValueError, "preconditioner_lr"),
    (dict(preconditioner_init_scale=-1.0), ValueError, "preconditioner_init_scale"),
    (dict(preconditioner_init_scale=None), TypeError, "preconditioner_init_scale"),
    (dict(max_size_triangular=-1), ValueError, "max_size_triangular"),
    (dict(max_size_triangular=2.5), TypeError, "max_size_triangular"),
    (dict(min_ndim_triangular=-2), ValueError, "min_ndim_triangular"),
    (dict(memory_save_mode="smallest_diag"), ValueError, "one_diag"),
    (dict(preconditioner_update_probability=1.5), ValueError, "update_probability"),
    (dict(preconditioner_update_probability="x"), TypeError, "update_probability"),
    (dict(momentum_into_precond_update=1), TypeError, "momentum_into"),
    (dict(mu_dtype=jnp.int32), ValueError, "mu_dtype"),
    (dict(precond_dtype="nope"), TypeError, "precond_dtype"),
    (dict(key="seed"), TypeError, "key"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
]


@pytest.mark.parametrize("kwargs,error,name", BAD)
def test_bad_hyperparameters_raise_naming_the_argument(kwargs, error, name):
    with pytest.raises(error, match=rf"psgd_kron: .*{name}"):
        gradtx.psgd_kron(**kwargs)
    if "learning_rate" not in kwargs and "weight_decay" not in kwargs:
        with pytest.raises(error, match=rf"scale_by_kron: .*{name}"):
            gradtx.scale_by_kron(**kwargs)
