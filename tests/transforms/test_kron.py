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
SHAPES = {"a": (3, 4), "a2": (3, 4), "b": (3,), "b2": (3,), "c": (2, 3, 4), "s": ()}


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


def _psgd_jax_key_draws(count, shapes, key=None):
    """psgd-jax's key use (its source): the balance decision and the probes at
    step ``count`` (arrays: traceable)."""
    key = jax.random.PRNGKey(5318008) if key is None else key
    sub = jax.random.split(jax.random.fold_in(key, count))[1]
    sub, kb = jax.random.split(sub)
    kv = jax.random.split(sub)[1]
    keys = jax.random.split(kv, len(shapes))
    probes = [
        jax.random.normal(k, s, jnp.float64) for k, s in zip(keys, shapes, strict=False)
    ]
    return jax.random.uniform(kb) < 0.01, probes


def _psgd_jax_draws(count, shapes, key=None):
    """:func:`_psgd_jax_key_draws` as Python and NumPy values."""
    balance, probes = _psgd_jax_key_draws(count, shapes, key)
    return bool(balance), [np.asarray(v) for v in probes]


def _counter_decisions(prob, steps=STEPS):
    """psgd-jax's deterministic rule: update when the steps since the last
    update reach ``1/p`` (``p`` a number or a schedule of the step 1, 2, …)."""
    out, counter = [], 0
    for t in range(1, steps + 1):
        counter += 1
        p = float(prob(t)) if callable(prob) else prob
        out.append(counter >= 1 / p)
        counter = 0 if out[-1] else counter
    return out


def _numpy_run(ref_kwargs, decisions):
    params = [np.asarray(x) for x in jax.tree.leaves(_params())]
    treedef = jax.tree.structure(_params())
    grad = jax.jit(jax.grad(_loss))  # compiled once: the reference's inputs
    shapes = [np.shape(x) for x in params]
    drawn = jax.jit(lambda t: _psgd_jax_key_draws(t, shapes))

    def grads(ps):
        tree = grad(jax.tree.unflatten(treedef, ps))
        return [np.asarray(g) for g in jax.tree.leaves(tree)]

    def draws(t, shapes):
        balance, probes = drawn(t)
        return decisions[t], bool(balance), [np.asarray(v) for v in probes]

    return reference_kron.run(grads, params, draws, STEPS, LR, **ref_kwargs)[0]


def _close(ours, theirs, atol=1e-6):
    for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


# (psgd_kron's and psgd-jax's options, the NumPy reference's options).
CASES = [
    (  # the default schedule: 1.0 (an update every step) for 500 steps
        dict(max_size_triangular=3, weight_decay=0.1),
        dict(max_size=3, weight_decay=0.1),
    ),
    (  # probability 0.5: an update every second step
        dict(
            preconditioner_update_probability=0.5,
            memory_save_mode="one_diag",
            b1=0.5,
            preconditioner_lr=0.3,
            momentum_into_precond_update=False,
        ),
        dict(
            mode="one_diag",
            b1=0.5,
            preconditioner_lr=0.3,
            momentum_into_precond_update=False,
        ),
    ),
]


@pytest.mark.parametrize("kwargs,ref_kwargs", CASES, ids=["default", "half"])
def test_matches_psgd_jax_and_the_numpy_reference(x64, kwargs, ref_kwargs):
    """25 steps on 2-D, 1-D, 3-D and scalar leaves in float64, ``key=None``:
    1e-6 absolute against psgd-jax 0.2.9 (params and factors) and against
    the NumPy reference fed psgd-jax's probes and decisions."""
    kron = psgd_jax_kron()
    p_ours, (s_ours, *_) = _run(gradtx.psgd_kron(LR, **kwargs), _params())
    p_theirs, (s_theirs, *_) = _run(kron.kron(LR, **kwargs), _params())
    _close(p_ours, p_theirs)
    _close(s_ours.qs, s_theirs["Qs_preconditioners"])
    assert int(s_ours.update_counter) == int(s_theirs["update_counter"])
    prob = kwargs.get("preconditioner_update_probability")
    decisions = _counter_decisions(prob or gradtx.precond_update_prob_schedule())
    assert sum(decisions) == (STEPS if prob is None else STEPS // 2)
    _close(jax.tree.leaves(p_ours), _numpy_run(ref_kwargs, decisions))


def test_schedule_and_factor_kinds_are_psgd_jax_s():
    kron = psgd_jax_kron()
    steps = jnp.array([0, 1, 250, 500, 501, 1000, 4000, 10_000])
    for kw in (dict(), dict(max_prob=0.5, min_prob=0.1, decay=0.01, flat_start=20)):
        np.testing.assert_allclose(
            gradtx.precond_update_prob_schedule(**kw)(steps),
            kron.precond_update_prob_schedule(**kw)(steps),
            rtol=1e-7,
        )
    for shape in [(5,), (1, 4), (4, 4), (3, 5, 2), (2, 5, 5)]:
        for mode in (None, "one_diag", "all_diag"):
            for max_size, min_ndim in ((8192, 2), (4, 0), (8192, 3)):
                theirs = kron._init_Q_exprs(
                    jnp.zeros(shape), 1.0, max_size, min_ndim, mode, None
                )[0]
                ours = factor_kinds(shape, max_size, min_ndim, mode)
                assert ours == tuple(q.ndim == 2 for q in theirs), (shape, mode)
    state = gradtx.scale_by_kron(memory_save_mode="one_diag").init(jnp.zeros((2, 5, 5)))
    assert [q.shape for q in state.qs] == [(2, 2), (5, 5), (5,)]


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


def test_key_none_is_psgd_jax_s_seed_and_a_key_reproduces():
    p = {"w": jnp.asarray(np.random.default_rng(2).normal(size=(2, 3)), jnp.float32)}

    def factors(key):
        opt = gradtx.scale_by_kron(preconditioner_update_probability=1.0, key=key)
        return opt.update(p, opt.init(p))[1].qs["w"]

    keyed = jax.jit(factors)  # a traced key: one compilation for every key
    psgd_seed = jax.random.wrap_key_data(jax.random.PRNGKey(5318008))
    _close(jax.jit(lambda: factors(None))(), keyed(psgd_seed), atol=0)
    _close(keyed(jax.random.key(7)), keyed(jax.random.key(7)), atol=0)
    assert not np.allclose(keyed(jax.random.key(7))[0], keyed(psgd_seed)[0])


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
