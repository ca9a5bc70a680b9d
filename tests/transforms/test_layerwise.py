"""Layer-wise, factored, noisy and Polyak rules: Optax, NumPy references, bad input.

Trajectories follow :mod:`test_reference`: closed loop over 120 steps from the
same start, parameters compared at every step, norm-wise relative error below
1e-6 in float32, against Optax and against the float64 references of
:mod:`reference_layerwise` (params stored in float32 between steps). The tree
has a 3-D leaf besides those of :mod:`test_reference`, so that factoring along
non-adjacent axes is exercised. The objective is
``f(θ) = Σ ½(θ − ½)² − cos(3θ)/6 + 1/6 >= 0``, whose gradient is the one of
:mod:`test_reference`; the Polyak rules get ``value=f(θ)``.

Measured exceptions, against the float64 reference only (gradtx equals Optax
to 1e-6 there too), caused by the float32 format itself:

* LAMB's Adam moments with ``b2 = 0.999`` (the float32 rounding of the bias
  correction, as in :mod:`test_reference`);
* Polyak's step is proportional to the loss value, which the float32 run
  evaluates in float32 (as a user's training step does): its rounding enters
  the step directly; measured 1.6e-6, bound 3e-6.

In float64 (``JAX_ENABLE_X64=1``) every case matches the reference to 1e-10
except Adafactor with momentum, whose buffer is float32 by default
(``dtype_momentum``, as in Optax): measured 4.1e-8, bound 1e-7.

Optax's DoG returns a ``(1,)``-shaped update for a scalar leaf (see
:func:`test_dog_scalar_leaf_keeps_its_shape`); its updates are reshaped to the
gradient's shape before comparing.

``add_noise``/``noisy_sgd`` draw from JAX's PRNG, which NumPy cannot
reproduce: they are checked against Optax (same key, same numbers), for
determinism, and for the statistics of the noise.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_layerwise as RL
from test_reference import X64

import gradtx
from gradtx.optimizers.factored import adafactor
from gradtx.optimizers.layerwise import fromage, lamb, lars
from gradtx.optimizers.noise import noisy_sgd
from gradtx.optimizers.step_size_free import polyak_sgd
from gradtx.transforms.block_clipping import clip_by_block_rms
from gradtx.transforms.factored import FactoredState, scale_by_factored_rms
from gradtx.transforms.layerwise import (
    ScaleByTrustRatioState,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from gradtx.transforms.noise import AddNoiseState, add_noise
from gradtx.transforms.step_size_free import (
    scale_by_distance_over_gradients,
    scale_by_polyak,
)

STEPS = 120
DTYPE = np.float64 if X64 else np.float32
RTOL = 1e-10 if X64 else 1e-6
SHAPES = [(3,), (2, 4), (), (0,), (3, 2, 5)]
LAMB_F32_TOLERANCE = 3e-6
POLYAK_F32_TOLERANCE = 3e-6
ADAFACTOR_MOMENTUM_X64_TOLERANCE = 1e-7

OURS = {
    f.__name__: f
    for f in (
        scale_by_trust_ratio,
        scale_by_param_block_norm,
        scale_by_param_block_rms,
        clip_by_block_rms,
        scale_by_factored_rms,
        scale_by_polyak,
        scale_by_distance_over_gradients,
        fromage,
        lars,
        lamb,
        adafactor,
        polyak_sgd,
        add_noise,
        noisy_sgd,
    )
}
NEEDS_VALUE = {"scale_by_polyak", "polyak_sgd"}


def _start():
    rng = np.random.default_rng(7)
    return [3.0 + rng.uniform(0.0, 1.0, size=s) for s in SHAPES]


def _loss(params, xp=jnp):
    terms = [
        xp.sum(0.5 * (p - 0.5) ** 2 - xp.cos(3.0 * p) / 6.0 + 1.0 / 6.0) for p in params
    ]
    return sum(terms)


def _sched(t):
    return 0.02 * 0.99**t


def _run_jax(tx, apply_updates, value=False, dtype=DTYPE):
    params = [jnp.asarray(p, dtype) for p in _start()]

    def step(carry, _):
        p, s = carry
        f, g = jax.value_and_grad(_loss)(p)
        extra = {"value": f} if value else {}
        u, s = tx.update(g, s, p, **extra)
        p = apply_updates(p, u)
        return (p, s), p

    scan = lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1]
    return [np.asarray(x, np.float64) for x in jax.jit(scan)(params)]


def _run_numpy(ref):
    params, traj = [p.astype(DTYPE) for p in _start()], []
    for _ in range(STEPS):
        p64 = [p.astype(np.float64) for p in params]
        grads = [(p - 0.5) + 0.5 * np.sin(3.0 * p) for p in p64]
        updates = ref.update(grads, p64)
        params = [(p + u).astype(DTYPE) for p, u in zip(params, updates, strict=True)]
        traj.append(params)
    return [
        np.stack([p[i] for p in traj]).astype(np.float64) for i in range(len(SHAPES))
    ]


def _rel_err(ours, other):
    errs = [
        np.max(np.abs(a - b)) / np.max(np.abs(b))
        for a, b in zip(ours, other, strict=True)
        if a.size
    ]
    return max(errs)


# (name, kwargs); primitives get a final scale(-0.01).
PRIMITIVES = [
    ("scale_by_trust_ratio", dict()),
    ("scale_by_trust_ratio", dict(min_norm=1e-2, trust_coefficient=0.1, eps=1e-3)),
    ("scale_by_param_block_norm", dict()),
    ("scale_by_param_block_norm", dict(min_scale=0.5)),
    ("scale_by_param_block_rms", dict()),
    ("scale_by_param_block_rms", dict(min_scale=10.0)),
    ("clip_by_block_rms", dict(threshold=1.0)),
    ("scale_by_factored_rms", dict(min_dim_size_to_factor=2)),
    ("scale_by_factored_rms", dict(min_dim_size_to_factor=3, decay_rate=0.5)),
    ("scale_by_factored_rms", dict(factored=False, epsilon=1e-3)),
    ("scale_by_polyak", dict()),
    ("scale_by_polyak", dict(f_min=0.5, max_learning_rate=0.2, eps=1e-3)),
    ("scale_by_polyak", dict(f_min=30.0, variant="sps+")),
]

# Used alone (no final scale): DoG's step is its own learning rate.
ALONE = [
    ("scale_by_distance_over_gradients", dict(reps_rel=1e-2, global_scale=-1.0)),
    (
        "scale_by_distance_over_gradients",
        dict(reps_rel=1e-4, eps=1e-4, global_scale=-0.5, param_dtype=None),
    ),
]

ALIASES = [
    ("fromage", dict(learning_rate=0.01)),
    ("fromage", dict(learning_rate=_sched, min_norm=1e-2)),
    ("lars", dict(learning_rate=0.5)),
    (
        "lars",
        dict(
            learning_rate=_sched,
            weight_decay=0.1,
            trust_coefficient=0.01,
            eps=1e-3,
            momentum=0.5,
            nesterov=True,
        ),
    ),
    (
        "lars",
        dict(
            learning_rate=0.05,
            weight_decay=0.1,
            weight_decay_mask=[True, False, True, True, False],
            trust_ratio_mask=[False, True, True, False, True],
        ),
    ),
    ("lamb", dict(learning_rate=0.01)),
    ("lamb", dict(learning_rate=_sched, b1=0.5, b2=0.99, weight_decay=0.1)),
    ("adafactor", dict(learning_rate=0.01, min_dim_size_to_factor=2)),
    (
        "adafactor",
        dict(
            learning_rate=_sched,
            min_dim_size_to_factor=3,
            multiply_by_parameter_scale=False,
            clipping_threshold=None,
            momentum=0.9,
            weight_decay_rate=0.01,
        ),
    ),
    ("adafactor", dict(learning_rate=0.02, factored=False, clipping_threshold=0.5)),
    ("polyak_sgd", dict(max_learning_rate=0.1)),
    ("polyak_sgd", dict(max_learning_rate=0.1, scaling=0.5, f_min=1.0, eps=1e-2)),
    ("polyak_sgd", dict(scaling=_sched, variant="sps+", f_min=40.0)),
]

CASES = [(n, k, True) for n, k in PRIMITIVES] + [
    (n, k, False) for n, k in ALIASES + ALONE
]


def _ids(cases):
    seen, out = {}, []
    for name, *_ in cases:
        seen[name] = seen.get(name, -1) + 1
        out.append(f"{name}-{seen[name]}")
    return out


def _with_scale(lib, tx, primitive):
    return lib.chain(tx, lib.scale(-0.01)) if primitive else tx


def _reference(name, kwargs, primitive):
    kw = {k: (list(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    if name in NEEDS_VALUE:
        kw["loss"] = lambda p: float(_loss(p, np))
    ref = RL.REFERENCES[name](**kw)
    return R.Chain(ref, R.Scale(-0.01)) if primitive else ref


def _reshaped_like_gradient(tx):
    """In float64 (``JAX_ENABLE_X64=1``) every case matches the reference to 1e-10
    except Adafactor with momentum, whose buffer is float32 by default
    (``dtype_momentum``, as in Optax): measured 4.1e-8, bound 1e-7.

    Optax's DoG returns shape (1,) for a scalar leaf; undo that to compare."""

    def update(updates, state, params=None):
        new, state = tx.update(updates, state, params)
        return jax.tree.map(lambda u, g: u.reshape(g.shape), new, updates), state

    return optax.GradientTransformation(tx.init, update)


@pytest.mark.parametrize("name,kwargs,primitive", CASES, ids=_ids(CASES))
def test_matches_numpy_reference_and_optax(name, kwargs, primitive):
    value = name in NEEDS_VALUE
    ours = _with_scale(gradtx, OURS[name](**kwargs), primitive)
    theirs = _with_scale(optax, getattr(optax, name)(**kwargs), primitive)
    if name == "scale_by_distance_over_gradients":
        theirs = _reshaped_like_gradient(theirs)
    traj = _run_jax(ours, gradtx.apply_updates, value)
    err_optax = _rel_err(traj, _run_jax(theirs, optax.apply_updates, value))
    err_ref = _rel_err(traj, _run_numpy(_reference(name, kwargs, primitive)))
    tol = RTOL
    if name == "lamb" and kwargs.get("b2", 0.999) == 0.999 and not X64:
        tol = LAMB_F32_TOLERANCE
    if name in NEEDS_VALUE and not X64:
        tol = POLYAK_F32_TOLERANCE
    if name == "adafactor" and kwargs.get("momentum") is not None and X64:
        tol = ADAFACTOR_MOMENTUM_X64_TOLERANCE
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"
    for a, p in zip(traj, _start(), strict=True):  # not vacuous: every leaf moves
        assert not p.size or np.max(np.abs(a[-1] - p)) > 1e-3
    assert err_ref <= tol, f"vs NumPy reference: {err_ref:.2e}"


def test_every_name_is_checked():
    names = {name for name, _, _ in CASES}
    assert names | {"add_noise", "noisy_sgd"} == set(OURS)
    assert names == set(RL.REFERENCES)


def test_signatures_match_optax():
    for name, ours in OURS.items():
        a = inspect.signature(ours).parameters
        b = inspect.signature(getattr(optax, name)).parameters
        # gradtx may add keyword-only options (mu_dtype, nu_dtype) at the end
        extra = list(a)[len(b) :]
        assert list(a)[: len(b)] == list(b), name
        assert all(a[k].kind is a[k].KEYWORD_ONLY for k in extra), name
        for k in b:
            assert a[k].kind == b[k].kind, (name, k)
            if k != "decay_rate_fn":  # our own (equal) default schedule
                assert a[k].default == b[k].default, (name, k)


def _fields(state):
    """Class names and field names, recursively (what a checkpoint keys on)."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    return None


def _make(lib, name, kwargs):
    if name in ("add_noise", "noisy_sgd"):
        kwargs = {**kwargs, "key": 3}
    factory = OURS[name] if lib is gradtx else getattr(optax, name)
    return factory(**kwargs)


STATE_CASES = [
    *CASES,
    ("add_noise", dict(eta=0.01, gamma=0.55), True),
    ("noisy_sgd", dict(learning_rate=0.01), False),
    ("scale_by_factored_rms", dict(min_dim_size_to_factor=2), True),
]


@pytest.mark.parametrize("name,kwargs,primitive", STATE_CASES, ids=_ids(STATE_CASES))
def test_state_fields_match_optax(name, kwargs, primitive):
    p = [
        jnp.ones(3),
        jnp.zeros(()),
        jnp.ones((2, 3)),
        jnp.zeros(0),
        jnp.ones((4, 1, 3)),
    ]
    ours = _make(gradtx, name, kwargs).init(p)
    theirs = _make(optax, name, kwargs).init(p)
    assert _fields(ours) == _fields(theirs)
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
    for x, y in pairs:
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


def test_state_classes_are_optax_names():
    assert ScaleByTrustRatioState is gradtx.EmptyState
    assert FactoredState._fields == optax.FactoredState._fields
    assert AddNoiseState._fields == optax.AddNoiseState._fields


# ------------------------------------------------------------ state and dtypes


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
@pytest.mark.parametrize("name,kwargs,primitive", STATE_CASES, ids=_ids(STATE_CASES))
def test_state_is_stable_and_update_dtype_follows_gradient(
    name, kwargs, primitive, dtype
):
    tx = _make(gradtx, name, kwargs)
    w = jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3)
    full = lambda shape, v: jnp.full(shape, v, dtype)
    params = [w, full((), 0.5), full((4,), 2.0), full((0,), 1.0), full((3, 1, 4), 1.0)]
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    extra = {"value": jnp.asarray(3.0, dtype)} if name in NEEDS_VALUE else {}
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, **extra))
    s0 = tx.init(params)
    u, s1 = update(grads, s0, params)
    assert _signature(s0) == _signature(s1)
    for x, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads), strict=True):
        assert (x.dtype, x.shape) == (g.dtype, g.shape)
        assert bool(jnp.all(jnp.isfinite(x)))
    _, s2 = update(grads, s1, params)
    assert _signature(s2) == _signature(s0)


# ------------------------------------------------- Polyak: the `value` argument


def test_polyak_needs_a_scalar_value():
    tx = polyak_sgd()
    p = jnp.ones(3)
    with pytest.raises(TypeError, match="value"):
        tx.update(p, tx.init(p), p)
    with pytest.raises(ValueError, match="value"):
        tx.update(p, tx.init(p), p, value=jnp.ones(2))


def test_polyak_zero_gradient_gives_zero_step_and_finite_grad():
    tx = scale_by_polyak()
    g = {"a": jnp.zeros(3)}
    u, _ = tx.update(g, tx.init(None), value=1.0)
    assert float(jnp.sum(jnp.abs(u["a"]))) == 0.0
    d = jax.grad(lambda v: jnp.sum(tx.update(g, tx.init(None), value=v)[0]["a"]))(1.0)
    assert np.isfinite(d)


def test_polyak_through_chain_and_masked():
    """`value` reaches a Polyak rule nested in chains."""
    tx = gradtx.chain(gradtx.scale(1.0), polyak_sgd(max_learning_rate=10.0))
    x = jnp.array([1.0, 2.0])
    f, g = jax.value_and_grad(lambda x: jnp.sum(x**2))(x)
    u, _ = tx.update(g, tx.init(x), x, value=f)
    np.testing.assert_allclose(x + u, [0.5, 1.0], rtol=1e-6)


# ------------------------------------------------------ deviations from Optax


def test_dog_scalar_leaf_keeps_its_shape():
    tx = scale_by_distance_over_gradients()
    p = {"s": jnp.asarray(2.0), "v": jnp.ones(2)}
    u, _ = tx.update(p, tx.init(p), p)
    assert u["s"].shape == () and u["v"].shape == (2,)
    ou, _ = optax.scale_by_distance_over_gradients().update(
        p, optax.scale_by_distance_over_gradients().init(p), p
    )
    assert ou["s"].shape == (1,)  # Optax's bug, fixed here
    np.testing.assert_allclose(u["s"], ou["s"][0], rtol=1e-6)


def test_factored_step_offset_before_offset_is_finite():
    tx = scale_by_factored_rms(step_offset=5, min_dim_size_to_factor=2)
    p = jnp.ones((2, 3))
    u, _ = tx.update(p, tx.init(p), p)
    assert bool(jnp.all(jnp.isfinite(u)))
    o = optax.scale_by_factored_rms(step_offset=5, min_dim_size_to_factor=2)
    assert not bool(jnp.all(jnp.isfinite(o.update(p, o.init(p), p)[0])))


def test_adafactor_without_learning_rate_matches_optax():
    p = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}
    outs = []
    for lib, tx in (
        (gradtx, adafactor(min_dim_size_to_factor=2)),
        (optax, optax.adafactor(min_dim_size_to_factor=2)),
    ):
        q, s = p, tx.init(p)
        for t in range(5):
            g = jax.tree.map(lambda x: jnp.cos(x + t) + 0.1, q)
            u, s = tx.update(g, s, q)
            q = lib.apply_updates(q, u)
        outs.append(q)
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_factored_needs_no_params():
    tx = scale_by_factored_rms(min_dim_size_to_factor=2)
    p = jnp.ones((2, 3))
    u, _ = tx.update(p, tx.init(p))
    np.testing.assert_allclose(u, tx.update(p, tx.init(p), p)[0])


# ------------------------------------------------------------------ bad input

BAD = [
    (scale_by_trust_ratio, dict(min_norm=-1.0), "min_norm"),
    (scale_by_trust_ratio, dict(trust_coefficient=-0.1), "trust_coefficient"),
    (scale_by_trust_ratio, dict(eps=float("nan")), "eps"),
    (scale_by_param_block_norm, dict(min_scale=-1e-3), "min_scale"),
    (scale_by_param_block_rms, dict(min_scale=float("nan")), "min_scale"),
    (clip_by_block_rms, dict(threshold=0.0), "threshold"),
    (scale_by_factored_rms, dict(decay_rate=-0.8), "decay_rate"),
    (scale_by_factored_rms, dict(step_offset=-1), "step_offset"),
    (scale_by_factored_rms, dict(min_dim_size_to_factor=-1), "min_dim_size"),
    (scale_by_factored_rms, dict(epsilon=0.0), "epsilon"),
    (scale_by_polyak, dict(max_learning_rate=-1.0), "max_learning_rate"),
    (scale_by_polyak, dict(eps=-1.0), "eps"),
    (scale_by_polyak, dict(variant="sps++"), "variant"),
    (scale_by_polyak, dict(f_min=float("nan")), "f_min"),
    (scale_by_distance_over_gradients, dict(reps_rel=0.0), "reps_rel"),
    (scale_by_distance_over_gradients, dict(eps=-1.0), "eps"),
    (scale_by_distance_over_gradients, dict(param_dtype=jnp.int32), "param_dtype"),
    (add_noise, dict(eta=-0.1, gamma=0.5, key=0), "eta"),
    (add_noise, dict(eta=0.1, gamma=-0.5, key=0), "gamma"),
    (fromage, dict(learning_rate=-0.1), "learning_rate"),
    (fromage, dict(learning_rate=0.1, min_norm=-1.0), "min_norm"),
    (lars, dict(learning_rate=-0.1), "learning_rate"),
    (lars, dict(learning_rate=0.1, weight_decay=-1.0), "weight_decay"),
    (lars, dict(learning_rate=0.1, momentum=1.5), "lars: `momentum`"),
    (lars, dict(learning_rate=0.1, trust_coefficient=-1.0), "trust_coefficient"),
    (lamb, dict(learning_rate=0.1, b1=1.0), "b1"),
    (lamb, dict(learning_rate=0.1, weight_decay=-0.1), "weight_decay"),
    (lamb, dict(learning_rate=None), "learning_rate"),
    (adafactor, dict(learning_rate=-0.1), "learning_rate"),
    (adafactor, dict(clipping_threshold=0.0), "threshold"),
    (adafactor, dict(eps=0.0), "adafactor: `eps`"),
    (adafactor, dict(momentum=1.5), "adafactor: `momentum`"),
    (adafactor, dict(weight_decay_rate=-0.1), "weight_decay"),
    (noisy_sgd, dict(learning_rate=-0.1, key=0), "learning_rate"),
    (noisy_sgd, dict(learning_rate=0.1, eta=-1.0, key=0), "eta"),
    (polyak_sgd, dict(scaling=-1.0), "scaling"),
    (polyak_sgd, dict(max_learning_rate=-1.0), "max_learning_rate"),
    (polyak_sgd, dict(variant="bad"), "variant"),
]


@pytest.mark.parametrize(
    "factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


@pytest.mark.parametrize(
    "tx",
    [
        scale_by_trust_ratio(),
        scale_by_param_block_norm(),
        scale_by_param_block_rms(),
        scale_by_distance_over_gradients(),
        fromage(0.1),
    ],
    ids=["trust_ratio", "block_norm", "block_rms", "dog", "fromage"],
)
def test_params_are_required(tx):
    p = jnp.ones(3)
    with pytest.raises(ValueError, match="params"):
        tx.update(p, tx.init(p))


@pytest.mark.parametrize(
    "tx",
    [
        scale_by_trust_ratio(),
        scale_by_factored_rms(min_dim_size_to_factor=2),
        scale_by_distance_over_gradients(),
        add_noise(0.1, 0.5, key=0),
    ],
    ids=["trust_ratio", "factored", "dog", "noise"],
)
def test_a_mismatched_tree_names_the_leaf(tx):
    p = {"a": jnp.ones((2, 3))}
    state = tx.init(p)
    bad = {"a": jnp.ones((3, 3))}
    if isinstance(state, AddNoiseState):
        return  # stateless per leaf: any shape is fine
    with pytest.raises(ValueError, match=r"\['a'\]"):
        tx.update(bad, state, bad if isinstance(state, FactoredState) else p)


def test_hyperparameters_may_be_traced():
    def run(lr, b1):
        tx = lamb(lr, b1=b1)
        p = jnp.ones(2)
        u, _ = tx.update(jnp.array([1.0, 2.0]), tx.init(p), p)
        return u

    out = jax.jit(jax.vmap(run))(jnp.array([0.1, 0.2]), jnp.array([0.9, 0.8]))
    np.testing.assert_allclose(out[1], run(0.2, 0.8), rtol=1e-6)
