"""NovoGrad, AdaDelta, Adan, SM3, Rprop, optimistic GD/Adam: Optax, NumPy, bad input.

The trajectory test follows :mod:`test_reference`: closed loop over 120 steps
from the same start, parameters compared at every step, norm-wise relative
error below 1e-6 in float32, against Optax and against the float64 references
of :mod:`reference_adaptive` (params stored in float32 between steps).

Where gradtx deliberately differs from Optax 0.2.8 the Optax comparison is
replaced by a test of the documented relation:

* Rprop: Optax returns the previous call's step (a one-step lag,
  google-deepmind/optax#1725); ``test_rprop_is_optax_without_its_lag`` checks
  that Optax's update at ``t`` is gradtx's at ``t − 1`` (zeroed where the sign
  flips at ``t``), open loop on the same gradients, and that the states agree;
* SM3: Optax fails on scalar leaves, so its trajectory is compared on a start
  without them (the reference covers the scalar);
* ``adadelta(learning_rate=None)``: Optax ascends; compared with ``η = 1``.

Measured float32-format exceptions against the float64 reference only (gradtx
equals Optax to 1e-6, or Optax's lagged steps exactly):

* optimistic Adam with ``b2 = 0.999``, whose bias correction is ~1e-5 off in
  float32 (see :mod:`test_reference`): measured 2.6e-6, bound 3e-6;
* Rprop with ``eta_plus = 1.2``: float32 holds 1.2000000477, and the step size
  ``Δ0·1.2^k`` compounds that 4e-8 over the ~40 growth steps before it reaches
  its cap: measured 1.34e-5 (primitive) and 6.1e-6 (alias), bound 2e-5. With
  the float32 values of ``eta_plus`` and ``learning_rate`` in the reference
  the same runs measure 6e-7 and 1.1e-6; ``eta_plus = 1.5`` passes 1e-6.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as R
import reference_adaptive as RA
from test_reference import DTYPE, STEPS, X64, _jax_grad, _np_grad, _rel_err

from gradtx.combinators.chain import chain
from gradtx.optimizers.adadelta import adadelta
from gradtx.optimizers.adan import adan
from gradtx.optimizers.novograd import novograd
from gradtx.optimizers.optimistic import (
    optimistic_adam,
    optimistic_adam_v2,
    optimistic_gradient_descent,
)
from gradtx.optimizers.rprop import rprop
from gradtx.optimizers.sm3 import sm3
from gradtx.transforms.adadelta import scale_by_adadelta
from gradtx.transforms.adan import scale_by_adan
from gradtx.transforms.novograd import scale_by_novograd
from gradtx.transforms.optimistic import scale_by_optimistic_gradient
from gradtx.transforms.rprop import scale_by_rprop
from gradtx.transforms.scaling import scale
from gradtx.transforms.sm3 import scale_by_sm3

RTOL = 1e-10 if X64 else 1e-6
# float32 only, see the module docstring (measured 2.6e-6 and 1.34e-5).
B2_0999_TOLERANCE = 3e-6
RPROP_ETA_1_2_TOLERANCE = 2e-5
OURS = {
    f.__name__: f
    for f in (
        scale_by_novograd,
        scale_by_adadelta,
        scale_by_adan,
        scale_by_sm3,
        scale_by_rprop,
        scale_by_optimistic_gradient,
        novograd,
        adadelta,
        adan,
        sm3,
        rprop,
        optimistic_gradient_descent,
        optimistic_adam_v2,
        optimistic_adam,
    )
}
SHAPES = [(3,), (2, 4), (), (0,)]
NO_SCALAR = [(3,), (2, 4), (3, 2, 2), (0,)]  # Optax's SM3 fails on () and (0, 3)


def _sched(t):
    return 0.02 * 0.99**t


PRIMITIVES = [
    ("scale_by_novograd", dict()),
    ("scale_by_novograd", dict(b1=0.5, b2=0.9, eps=1e-6, eps_root=1e-8)),
    ("scale_by_novograd", dict(weight_decay=0.1)),
    ("scale_by_adadelta", dict(rho=0.5, eps=1e-4)),
    ("scale_by_adan", dict()),
    ("scale_by_adan", dict(b1=0.9, b2=0.8, b3=0.95, eps=1e-6, eps_root=1e-8)),
    ("scale_by_sm3", dict()),
    ("scale_by_sm3", dict(b1=0.5, b2=0.9, eps=1e-6)),
    ("scale_by_rprop", dict(learning_rate=0.05)),
    ("scale_by_rprop", dict(learning_rate=0.1, eta_minus=0.3, eta_plus=1.5,
                            min_step_size=1e-3, max_step_size=0.5)),
    ("scale_by_optimistic_gradient", dict(alpha=0.5, beta=2.0)),
]  # fmt: skip

ALIASES = [
    ("novograd", dict(learning_rate=0.01)),
    ("novograd", dict(learning_rate=_sched, b2=0.5, weight_decay=0.05)),
    ("adadelta", dict(learning_rate=1.0)),
    ("adadelta", dict(learning_rate=_sched, rho=0.8, weight_decay=0.1)),
    ("adadelta", dict(learning_rate=1.0, weight_decay=0.1,
                      weight_decay_mask=[True, False, True, False])),
    ("adan", dict(learning_rate=0.01)),
    ("adan", dict(learning_rate=_sched, weight_decay=0.1)),
    ("adan", dict(learning_rate=0.01, weight_decay=0.1,
                  mask=[True, False, True, True])),
    ("sm3", dict(learning_rate=0.05)),
    ("sm3", dict(learning_rate=0.05, momentum=0.5)),
    ("rprop", dict(learning_rate=0.05)),
    ("optimistic_gradient_descent", dict(learning_rate=0.01)),
    ("optimistic_gradient_descent", dict(learning_rate=_sched, alpha=0.5, beta=0.3)),
    ("optimistic_adam_v2", dict(learning_rate=0.01)),
    ("optimistic_adam_v2", dict(learning_rate=_sched, alpha=0.5, b2=0.99,
                                nesterov=False)),
    ("optimistic_adam", dict(learning_rate=0.01, optimism=0.1, b2=0.99)),
]  # fmt: skip

CASES = [(n, k, True) for n, k in PRIMITIVES] + [(n, k, False) for n, k in ALIASES]


def _ids(cases=CASES):
    seen, out = {}, []
    for name, *_ in cases:
        seen[name] = seen.get(name, -1) + 1
        out.append(f"{name}-{seen[name]}")
    return out


def _start(shapes):
    rng = np.random.default_rng(7)
    return [3.0 + rng.uniform(0.0, 1.0, size=s) for s in shapes]


def _run_jax(txs, shapes):
    """Trajectories of several optimizers, compiled together (one compile)."""
    params = [jnp.asarray(p, DTYPE) for p in _start(shapes)]

    def trajectory(tx, p):
        def step(carry, _):
            p, s = carry
            u, s = tx.update(_jax_grad(p), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        return jax.lax.scan(step, (p, tx.init(p)), None, length=STEPS)[1]

    runs = jax.jit(lambda p: [trajectory(tx, p) for tx in txs])(params)
    return [[np.asarray(x, np.float64) for x in run] for run in runs]


def _run_numpy(ref, shapes):
    params, traj = [p.astype(DTYPE) for p in _start(shapes)], []
    for _ in range(STEPS):
        updates = ref.update(_np_grad(params), params)
        params = [(p + u).astype(DTYPE) for p, u in zip(params, updates, strict=True)]
        traj.append(params)
    return [
        np.stack([p[i] for p in traj]).astype(np.float64) for i in range(len(shapes))
    ]


def _ours(name, kwargs, primitive=False):
    tx = OURS[name](**kwargs)
    return chain(tx, scale(-0.01)) if primitive else tx


def _theirs(name, kwargs, primitive=False):
    tx = getattr(optax, name)(**kwargs)
    return optax.chain(tx, optax.scale(-0.01)) if primitive else tx


def _tolerance(name, kwargs):
    if not X64 and "rprop" in name and kwargs.get("eta_plus", 1.2) == 1.2:
        return RPROP_ETA_1_2_TOLERANCE
    if (
        not X64
        and name.startswith("optimistic_adam")
        and kwargs.get("b2", 0.999) == 0.999
    ):
        return B2_0999_TOLERANCE
    return RTOL


@pytest.mark.filterwarnings("ignore:.*optimistic_adam_v2:DeprecationWarning")
@pytest.mark.parametrize("name,kwargs,primitive", CASES, ids=_ids())
def test_matches_numpy_reference_and_optax(name, kwargs, primitive):
    ours = _ours(name, kwargs, primitive)
    ref = RA.REFERENCES[name](**kwargs)
    if primitive:
        ref = R.Chain(ref, R.Scale(-0.01))
    if "rprop" in name:  # Optax lags one step: test_rprop_is_optax_without_its_lag
        (traj,), err_optax = _run_jax([ours], SHAPES), 0.0
    elif "sm3" in name:  # Optax's SM3 fails on scalar leaves
        (traj,) = _run_jax([ours], SHAPES)
        err_optax = _rel_err(
            *_run_jax([ours, _theirs(name, kwargs, primitive)], NO_SCALAR)
        )
    else:
        traj, theirs = _run_jax([ours, _theirs(name, kwargs, primitive)], SHAPES)
        err_optax = _rel_err(traj, theirs)
    err_ref = _rel_err(traj, _run_numpy(ref, SHAPES))
    assert err_ref <= _tolerance(name, kwargs), f"vs NumPy reference: {err_ref:.2e}"
    assert err_optax <= RTOL, f"vs Optax: {err_optax:.2e}"


def test_every_name_is_checked():
    assert {name for name, _, _ in CASES} == set(OURS) == set(RA.REFERENCES)


def test_signatures_match_optax():
    for name, ours in OURS.items():
        a = inspect.signature(ours).parameters
        b = inspect.signature(getattr(optax, name)).parameters
        assert list(a) == list(b), name
        for k in a:
            assert a[k].default == b[k].default, (name, k)
            assert a[k].kind == b[k].kind, (name, k)


def _fields(state):
    """Class names and field names, recursively (what a checkpoint keys on)."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return (type(state).__name__, state._fields, [_fields(x) for x in state])
    if isinstance(state, (tuple, list)):
        return [_fields(x) for x in state]
    return None


@pytest.mark.filterwarnings("ignore:.*optimistic_adam_v2:DeprecationWarning")
@pytest.mark.parametrize("name,kwargs,primitive", CASES, ids=_ids())
def test_state_fields_match_optax(name, kwargs, primitive):
    p = [jnp.ones(3), jnp.ones((2, 2)), jnp.zeros(0), jnp.ones((2, 1, 3))]
    if "sm3" not in name:
        p.append(jnp.zeros(()))  # Optax's SM3 has a different (unusable) state
    kwargs = _callable_masks(kwargs)
    ours = OURS[name](**kwargs).init(p)
    theirs = getattr(optax, name)(**kwargs).init(p)
    assert _fields(ours) == _fields(theirs)
    assert str(jax.tree.structure(ours)).replace("gradtx", "") == str(
        jax.tree.structure(theirs)
    ).replace("optax", "")
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
    for x, y in pairs:
        assert (x.shape, x.dtype) == (y.shape, y.dtype)


# ---------------------------------------------------------- Optax's differences


def test_rprop_is_optax_without_its_lag():
    kwargs = dict(learning_rate=0.1, eta_minus=0.4, min_step_size=0.05)
    ours, theirs = scale_by_rprop(**kwargs), optax.scale_by_rprop(**kwargs)
    p = jnp.zeros(4)
    so, st, previous = ours.init(p), theirs.init(p), jnp.zeros(4)
    rng = np.random.default_rng(0)
    for _ in range(60):
        g = jnp.asarray(rng.choice([-2.0, -0.5, 0.0, 0.5, 1.0], size=4), jnp.float32)
        flipped = jnp.sign(g) * jnp.sign(so.prev_updates) < 0
        uo, so = ours.update(g, so)
        ut, st = theirs.update(g, st)
        np.testing.assert_array_equal(ut, jnp.where(flipped, 0.0, previous))
        np.testing.assert_array_equal(so.step_sizes, st.step_sizes)
        np.testing.assert_array_equal(so.prev_updates, st.prev_updates)
        previous = uo


def test_adadelta_without_learning_rate_descends():
    p = jnp.array([1.0, -2.0])
    u, _ = adadelta().update(2 * p, adadelta().init(p), p)
    assert bool(jnp.all(u * p < 0))  # towards the minimum of |p|²
    v, _ = adadelta(1.0).update(2 * p, adadelta(1.0).init(p), p)
    np.testing.assert_array_equal(u, v)
    w, _ = optax.adadelta().update(2 * p, optax.adadelta().init(p), p)
    np.testing.assert_allclose(w, -u, rtol=1e-6)  # Optax 0.2.8 climbs


def test_sm3_on_scalar_and_empty_leaves():
    p = {"s": jnp.array(2.0), "e": jnp.zeros((0, 3)), "m": jnp.ones((2, 3))}
    tx = sm3(0.1)
    s0 = tx.init(p)
    assert [x.shape for x in s0[0].mu["s"]] == [()]
    assert [x.shape for x in s0[0].mu["e"]] == [(0,), (3,)]
    step = jax.jit(tx.update)
    u, s1 = step(p, s0, p)
    u, s2 = step(p, s1, p)
    assert _signature(s2) == _signature(s0)
    # A scalar is a rank-0 Adagrad: the first step is −η(1−β)·g/|g|.
    u0, _ = tx.update(p, s0, p)
    np.testing.assert_allclose(u0["s"], -0.1 * 0.1, rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))
    # Complex leaves work (tests/test_complex.py checks them against real views).
    c = {"c": jnp.ones(2, jnp.complex64)}
    assert tx.update(c, tx.init(c))[0]["c"].dtype == jnp.complex64


def test_sm3_without_momentum():
    p = jnp.array([[3.0, 4.0]])
    u, _ = sm3(0.1, momentum=None).update(p, sm3(0.1, None).init(p))
    v, _ = sm3(0.1, momentum=0.0).update(p, sm3(0.1, 0.0).init(p))
    np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(u, [[-0.1, -0.1]], rtol=1e-6)


def test_novograd_needs_params_only_for_weight_decay():
    g = {"a": jnp.ones(3)}
    tx = scale_by_novograd()
    tx.update(g, tx.init(g))
    tx = scale_by_novograd(weight_decay=0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(g, tx.init(g))


def test_optimistic_adam_warns_like_optax_pointing_to_v2():
    with pytest.warns(DeprecationWarning, match="optimistic_adam_v2") as ours:
        optimistic_adam(0.01)
    with pytest.warns(DeprecationWarning, match="optimistic_adam_v2") as theirs:
        optax.optimistic_adam(0.01)
    assert [w.category for w in ours] == [w.category for w in theirs]
    # Attributed to the caller's line, so Python's default filters show it
    # in user code.
    assert ours[0].filename == __file__
    # Even when the learning rate is refused, as Optax (it warns first).
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError):
        optimistic_adam(lambda t: 0.1)


def test_optimistic_adam_is_v2_with_alpha_and_beta():
    p, g = jnp.ones(3), jnp.array([0.5, -1.0, 2.0])
    with pytest.warns(DeprecationWarning, match="optimistic_adam_v2"):
        a = optimistic_adam(0.01, 0.3)
    b = optimistic_adam_v2(1.0, alpha=0.01, beta=0.3)
    sa, sb = a.init(p), b.init(p)
    for k in range(4):
        ua, sa = a.update(g * (k + 1), sa, p)
        ub, sb = b.update(g * (k + 1), sb, p)
        np.testing.assert_allclose(ua, ub, rtol=1e-6)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="lear"):
        optimistic_adam(lambda t: 0.1)


# ------------------------------------------------------------ state and dtypes


def _callable_masks(kwargs):
    """List masks (for the 4-leaf trajectories) as functions of any params."""
    key = next((k for k in ("mask", "weight_decay_mask") if k in kwargs), None)
    if key is None:
        return kwargs
    return {**kwargs, key: lambda p: [i % 2 == 0 for i in range(len(p))]}


def _signature(tree):
    return jax.tree.structure(tree), [
        (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(tree)
    ]


# float32 stability is already enforced by lax.scan in the trajectory tests.
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
@pytest.mark.parametrize(
    "name,kwargs,primitive",
    [c for c in CASES if c[2]],  # the aliases are in the optimizer table
    ids=[i for i, c in zip(_ids(), CASES, strict=True) if c[2]],
)
def test_state_is_stable_and_update_dtype_follows_gradient(
    name, kwargs, primitive, dtype
):
    tx = OURS[name](**_callable_masks(kwargs))
    w = jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3)
    full = lambda shape, v: jnp.full(shape, v, dtype)
    params = [w, full((), 0.5), full((4,), 2.0), full((0,), 1.0), full((2, 1, 2), 1)]
    grads = jax.tree.map(lambda x: (0.25 - x).astype(dtype), params)
    s0 = tx.init(params)
    u, s1 = jax.jit(tx.update)(grads, s0, params)
    assert _signature(s0) == _signature(s1)
    for x, g in zip(jax.tree.leaves(u), jax.tree.leaves(grads), strict=True):
        assert x.dtype == g.dtype
        assert bool(jnp.all(jnp.isfinite(x)))
    _, s2 = jax.jit(tx.update)(grads, s1, params)
    assert _signature(s2) == _signature(s0)


def test_novograd_mu_dtype_is_kept():
    tx = scale_by_novograd(mu_dtype=jnp.bfloat16)
    p = jnp.ones(3)
    _, s = tx.update(jnp.ones(3), tx.init(p), p)
    assert s.mu.dtype == jnp.bfloat16 and s.nu.dtype == jnp.float32


# ------------------------------------------------------------------ bad input

BAD = [
    (scale_by_novograd, dict(b1=1.5), "b1"),
    (scale_by_novograd, dict(b2=-0.1), "b2"),
    (scale_by_novograd, dict(eps=-1.0), "eps"),
    (scale_by_novograd, dict(eps_root=float("nan")), "eps_root"),
    (scale_by_novograd, dict(weight_decay=-0.1), "weight_decay"),
    (scale_by_novograd, dict(mu_dtype=jnp.int32), "mu_dtype"),
    (scale_by_adadelta, dict(rho=1.1), "rho"),
    (scale_by_adadelta, dict(eps=0.0), "eps"),  # Optax: never moves, or NaN
    (scale_by_adan, dict(b1=1.0), "b1"),  # 1 − b^t = 0: NaN in Optax
    (scale_by_adan, dict(b2=-0.5), "b2"),
    (scale_by_adan, dict(b3=1.0), "b3"),
    (scale_by_adan, dict(eps=-1e-8), "eps"),
    (scale_by_adan, dict(eps_root=-1.0), "eps_root"),
    (scale_by_sm3, dict(b1=2.0), "b1"),
    (scale_by_sm3, dict(b2=1.5), "b2"),
    (scale_by_sm3, dict(eps=-1.0), "eps"),
    (scale_by_rprop, dict(learning_rate=0.0), "learning_rate"),
    (scale_by_rprop, dict(learning_rate=0.1, eta_minus=1.5), "eta_minus"),
    (scale_by_rprop, dict(learning_rate=0.1, eta_plus=0.9), "eta_plus"),
    (scale_by_rprop, dict(learning_rate=0.1, min_step_size=-1.0), "min_step_size"),
    (
        scale_by_rprop,
        dict(learning_rate=0.1, min_step_size=1.0, max_step_size=0.5),
        "max_step_size",
    ),
    (scale_by_optimistic_gradient, dict(alpha=-1.0), "alpha"),
    (scale_by_optimistic_gradient, dict(beta=float("nan")), "beta"),
    (novograd, dict(learning_rate=-0.1), "learning_rate"),
    (novograd, dict(learning_rate=None), "learning_rate"),
    (adadelta, dict(learning_rate=-1.0), "learning_rate"),
    (adadelta, dict(weight_decay=-1.0), "weight_decay"),
    (adan, dict(learning_rate=0.1, b3=1.5), "b3"),
    (adan, dict(learning_rate=0.1, weight_decay=-0.1), "weight_decay"),
    (sm3, dict(learning_rate=-0.1), "learning_rate"),
    (sm3, dict(learning_rate=0.1, momentum=1.5), "momentum"),
    (rprop, dict(learning_rate=-0.1), "learning_rate"),
    (optimistic_gradient_descent, dict(learning_rate=0.1, beta=-1.0), "beta"),
    (optimistic_adam_v2, dict(learning_rate=0.1, b2=1.0), "b2"),
    (optimistic_adam, dict(learning_rate=-0.1), "learning_rate"),
    (optimistic_adam, dict(learning_rate=0.1, optimism=-1.0), "optimism"),
]


@pytest.mark.filterwarnings("ignore:optimistic_adam is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    "factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD]
)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


def test_schedules_are_rejected_where_a_number_is_needed():
    with pytest.raises(TypeError, match="alpha"):
        optimistic_gradient_descent(0.1, alpha=lambda t: 1.0)


@pytest.mark.parametrize(
    "factory", [scale_by_novograd, scale_by_sm3], ids=lambda f: f.__name__
)
def test_a_mismatched_state_names_the_leaf(factory):
    tx = factory()
    state = tx.init({"a": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"\['a'\]"):
        tx.update({"a": jnp.zeros((2, 4))}, state, {"a": jnp.zeros((2, 4))})


def test_hyperparameters_may_be_traced():
    def run(b1, b2, lr):
        p = jnp.ones((2, 3))
        out = []
        for tx in (adan(0.1, b1=b1, b2=b2), sm3(lr, b1), rprop(lr), novograd(lr, b1)):
            u, _ = tx.update(jnp.ones((2, 3)), tx.init(p), p)
            out.append(u)
        return out

    args = jnp.array([0.9, 0.8]), jnp.array([0.92, 0.5]), jnp.array([0.1, 0.2])
    out = jax.jit(jax.vmap(run))(*args)
    for x, y in zip(out, run(0.9, 0.92, 0.1), strict=True):
        np.testing.assert_allclose(x[0], y, rtol=1e-6)
