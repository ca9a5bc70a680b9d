"""Non-finite gradients: what every optimizer does, the guards, norm overflow.

1. Every optimizer of the table gets one NaN (then one +Inf) gradient element,
   ``w[0, 0]`` at step 3 of 6, in a tree of three leaves. The outcome is pinned
   per optimizer in :data:`EXPECTED` (the table of ``docs/non-finite.md``):
   which elements of the update are non-finite at step 3 and at step 6, whether
   the other leaves' updates are bit-identical to a run without the bad value,
   and whether the state still holds a non-finite number at the end. The
   params follow a fixed path, so only the optimizer state carries the bad
   value forward. The runs are eager: they share XLA's per-primitive cache with
   the rest of the suite (~3 s for the table when warm) where one jitted scan
   per optimizer costs ~25 s of compilation. Eager and jitted runs agree.
2. The guards never let a bad value reach the params unannounced:
   ``apply_if_finite`` and ``MultiSteps(…, skip_not_finite)`` make a bad call
   invisible (the state is kept bit for bit), ``zero_nans`` turns NaN into a
   zero gradient. What they do not guard is pinned too.
3. Norms of large finite updates: the squares overflow float32 long before the
   norm does, so the norms are recomputed from scaled elements when they do.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optimizers import OPTIMIZERS, make

import gradtx

IDS = [entry[0] for entry in OPTIMIZERS]
NAN, INF = float("nan"), float("inf")
BAD_STEP, STEPS = 2, 6  # the bad gradient arrives at step 3 of 6

# --------------------------------------------------- 1. every optimizer

# id: (outcome with a NaN gradient element, outcome with a +Inf one), each
# "<at step 3> > <at step 6> <other leaves> <state>":
#   none: every element of the update is finite;  elem: only w[0, 0] is not;
#   leaf: more elements of w are not;  all: the other leaves are not either.
#   same: the other leaves' updates are bit-identical to a clean run at every
#   step;  changed: finite but different;  nan: non-finite somewhere.
#   clean / poisoned: whether the final state holds a NaN or an Inf.
ELEM_STUCK = ("elem>elem same poisoned", "elem>elem same poisoned")
EXPECTED = {
    "sgd": ("elem>none same clean", "elem>none same clean"),
    "sgd_momentum": ELEM_STUCK,
    "sgd_nesterov": ELEM_STUCK,
    "adagrad": ("elem>elem same poisoned", "elem>none same poisoned"),
    "rmsprop": ("elem>elem same poisoned", "elem>none same poisoned"),
    "rmsprop_eps_out": ("elem>elem same poisoned", "elem>none same poisoned"),
    "rmsprop_centered_momentum": ELEM_STUCK,
    "rmsprop_debiased": ("elem>elem same poisoned", "elem>none same poisoned"),
    "adam": ELEM_STUCK,
    "adam_nesterov": ELEM_STUCK,
    "adamw": ELEM_STUCK,
    "adam_l2": ELEM_STUCK,
    "nadam": ELEM_STUCK,
    "nadamw": ELEM_STUCK,
    "adamax": ELEM_STUCK,
    "adamaxw": ELEM_STUCK,
    "amsgrad": ELEM_STUCK,
    "sign_sgd": ("elem>none same clean", "none>none same clean"),
    "signum": ("elem>elem same poisoned", "none>none same poisoned"),
    "lion": ("elem>elem same poisoned", "none>none same poisoned"),
    "lion_masked": ("elem>elem same poisoned", "none>none same poisoned"),
    "adabelief": ELEM_STUCK,
    "yogi": ELEM_STUCK,
    "radam": ELEM_STUCK,
    "radam_nesterov": ELEM_STUCK,
    "novograd": ("leaf>leaf same poisoned", "elem>elem same poisoned"),
    "adan": ELEM_STUCK,
    "sm3": ("elem>leaf same poisoned", "elem>elem same poisoned"),
    "rprop": ("elem>none same clean", "none>none same clean"),
    "ogd": ("elem>none same clean", "elem>none same clean"),
    "optimistic_adam_v2": ELEM_STUCK,
    "optimistic_adam": ELEM_STUCK,
    "adadelta": ELEM_STUCK,
    "schedule_free_sgd": ELEM_STUCK,
    "schedule_free_adamw": ELEM_STUCK,
    "schedule_free_adamw_wd": ELEM_STUCK,
    "muon": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "muon_polar_express_gram": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "normuon": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "shampoo": ("elem>leaf same poisoned", "elem>leaf same poisoned"),
    "shampoo_adagrad": ("elem>leaf same poisoned", "elem>leaf same poisoned"),
    "adopt": ("elem>elem same poisoned", "none>none same poisoned"),
    "ademamix": ELEM_STUCK,
    "simplified_ademamix": ELEM_STUCK,
    "prodigy": ("elem>elem changed poisoned", "all>all nan poisoned"),
    "fromage": ("leaf>none same clean", "elem>none same clean"),
    "lars": ("leaf>leaf same poisoned", "elem>elem same poisoned"),
    "lamb": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "adafactor": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "adafactor_momentum": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "noisy_sgd": ("elem>none same clean", "elem>none same clean"),
    # 8-bit state: a bad value spreads to its block of the quantised moments
    "adam_8bit": ("elem>leaf same poisoned", "elem>leaf same poisoned"),
    "adamw_8bit": ("elem>leaf same poisoned", "elem>leaf same poisoned"),
    "adamw_8bit_float": ELEM_STUCK,
    "sgd_8bit": ("elem>leaf same poisoned", "elem>leaf same poisoned"),
    "sgd_8bit_nesterov": ("elem>leaf same poisoned", "elem>leaf same poisoned"),
    "cocob": ELEM_STUCK,
    # one step size from global norms: a NaN reaches every leaf
    "dog": ("all>all nan poisoned", "elem>none changed poisoned"),
    "dowg": ("all>all nan poisoned", "elem>none changed poisoned"),
    "madgrad": ELEM_STUCK,
    "acprop": ("elem>elem same poisoned", "elem>none same poisoned"),
    # one step-size estimate over the whole tree: a bad value reaches every leaf
    "dadapt_adamw": ("elem>all nan poisoned", "elem>all nan poisoned"),
    # one low-rank projection (an SVD) per matrix: the leaf is coupled
    "galore": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "soap": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
    "cautious_adamw": ELEM_STUCK,
    "laprop": ELEM_STUCK,
    "mars_adamw": ELEM_STUCK,
    "adam_mini": ("leaf>leaf same poisoned", "elem>elem same poisoned"),
    # Kronecker factors fitted to the whole leaf: the leaf is coupled
    "psgd_kron": ("leaf>leaf same poisoned", "leaf>leaf same poisoned"),
}


def _tree(rng):
    """A tree shaped like the property tests' params (shared eager caches)."""
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
        "s": jnp.asarray(rng.normal(), jnp.float32),
    }


_RNG = np.random.default_rng(0)
PARAMS, DRIFT = _tree(_RNG), _tree(_RNG)
GRADS = [_tree(_RNG) for _ in range(STEPS)]
PATH = [jax.tree.map(lambda p, d: p + 0.1 * t * d, PARAMS, DRIFT) for t in range(6)]


JITTED = {"psgd_kron", "shampoo", "shampoo_adagrad", "soap", "normuon"}


def _trajectory(opt, bad=None, update=None):
    """The updates (NumPy) of six steps and the final state.

    ``bad`` replaces the gradient element ``w[0, 0]`` at step 3; the params
    follow :data:`PATH` whatever the updates are. ``update`` replaces
    ``opt.update`` (a jitted one).
    """
    state, updates = opt.init(PARAMS), []
    update = update or opt.update
    for t in range(STEPS):
        grads = GRADS[t]
        if t == BAD_STEP and bad is not None:
            grads = {**grads, "w": grads["w"].at[0, 0].set(bad)}
        u, state = update(grads, state, PATH[t])
        updates.append({k: np.asarray(v) for k, v in u.items()})
    return updates, state


def _spread(update):
    bad = {k: ~np.isfinite(v) for k, v in update.items()}
    if bad["b"].any() or bad["s"].any():
        return "all"
    if not bad["w"].any():
        return "none"
    return "elem" if bad["w"].sum() == 1 and bad["w"][0, 0] else "leaf"


def _others(updates, clean):
    pairs = [(u[k], c[k]) for u, c in zip(updates, clean, strict=True) for k in "bs"]
    if not all(np.isfinite(u).all() for u, _ in pairs):
        return "nan"
    return "same" if all(np.array_equal(u, c) for u, c in pairs) else "changed"


def _poisoned(state):
    leaves = jax.tree.leaves(gradtx.tree.unwrap_random_key_data(state))
    floats = [np.asarray(x) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    return not all(np.isfinite(x).all() for x in floats)


def _outcome(opt, bad, clean, update=None):
    updates, state = _trajectory(opt, bad, update)
    at, after = _spread(updates[BAD_STEP]), _spread(updates[-1])
    poisoned = "poisoned" if _poisoned(state) else "clean"
    return f"{at}>{after} {_others(updates, clean)} {poisoned}"


def test_the_expectations_cover_the_optimizer_table():
    assert list(EXPECTED) == IDS


@pytest.mark.parametrize("id_,name,kwargs", OPTIMIZERS, ids=IDS)
def test_one_non_finite_gradient_element(id_, name, kwargs):
    opt = make(name, **kwargs)
    # Loops and conds run op by op eagerly: these compile one step instead.
    update = jax.jit(opt.update) if id_ in JITTED else None
    clean, state = _trajectory(opt, update=update)
    assert all(_spread(u) == "none" for u in clean) and not _poisoned(state)
    got = tuple(_outcome(opt, bad, clean, update) for bad in (NAN, INF))
    assert got == EXPECTED[id_]


# ------------------------------------------------------------- 2. guards


def _bad_grads(t, bad):
    return {**GRADS[t], "w": GRADS[t]["w"].at[0, 0].set(bad)}


def _assert_same_bits(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def _assert_zero_like(updates, like):
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(like), strict=True):
        assert u.dtype == g.dtype and not np.asarray(u).any()


@functools.cache
def _guarded_adam():
    """``apply_if_finite(adam)`` and plain Adam, jitted once for every case."""
    tx, ref = gradtx.apply_if_finite(gradtx.adam(0.1), 2), gradtx.adam(0.1)
    return tx, jax.jit(tx.update), ref, jax.jit(ref.update)


@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_apply_if_finite_makes_bad_steps_invisible_beyond_max_errors(bad):
    # Five bad steps in a row with max_consecutive_errors=2: every one is
    # skipped (Optax applies the third). Params and inner state keep their
    # bits; afterwards the run is Adam on the good gradients alone.
    tx, step, ref, ref_step = _guarded_adam()
    params = ref_params = PARAMS
    state, ref_state = tx.init(params), ref.init(params)
    for t in [0, 1, None, None, None, None, None, 2, 3]:  # None: a bad step
        if t is None:
            grads = _bad_grads(0, bad)
            u, new = step(grads, state, params)
            _assert_zero_like(u, grads)
            _assert_same_bits(gradtx.apply_updates(params, u), params)
            _assert_same_bits(new.inner_state, state.inner_state)
            assert not bool(new.last_finite)
            state = new
            continue
        u, state = step(GRADS[t], state, params)
        ref_u, ref_state = ref_step(GRADS[t], ref_state, ref_params)
        params = gradtx.apply_updates(params, u)
        ref_params = gradtx.apply_updates(ref_params, ref_u)
    assert int(state.total_notfinite) == 5 and int(state.notfinite_count) == 0
    for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    assert not _poisoned(state)


def test_apply_if_finite_checks_its_input_not_the_inner_output():
    # Finite gradients that the inner transformation overflows are not caught:
    # the guard looks at what it receives (as in Optax).
    inner = gradtx.chain(gradtx.scale(1e30), gradtx.scale(1e30))
    tx = gradtx.apply_if_finite(inner, max_consecutive_errors=0)
    u, state = tx.update(GRADS[0], tx.init(PARAMS))
    assert np.isinf(np.asarray(u["w"])).all() and bool(state.last_finite)


def test_zero_nans_in_front_of_an_optimizer_keeps_it_finite_on_nan():
    # A NaN gradient element becomes a zero gradient: Adam takes the same step
    # as on the gradient with that element set to 0, and stays finite.
    guarded = gradtx.chain(gradtx.zero_nans(), gradtx.adam(0.1))
    ref = gradtx.adam(0.1)
    s, rs = guarded.init(PARAMS), ref.init(PARAMS)
    for t in range(STEPS):
        bad = t == BAD_STEP
        u, s = guarded.update(_bad_grads(t, NAN) if bad else GRADS[t], s, PARAMS)
        ru, rs = ref.update(_bad_grads(t, 0.0) if bad else GRADS[t], rs, PARAMS)
        _assert_same_bits(u, ru)
        assert bool(s[0].found_nan["w"]) == bad and not bool(s[0].found_nan["b"])
    assert not _poisoned(s)


def test_zero_nans_does_not_guard_against_infinities():
    tx = gradtx.chain(gradtx.zero_nans(), gradtx.adam(0.1))
    u, s = tx.update(_bad_grads(0, INF), tx.init(PARAMS), PARAMS)
    assert np.isnan(np.asarray(u["w"])[0, 0]) and _poisoned(s)


@functools.cache
def _accumulating_adam():
    opt = gradtx.MultiSteps(
        gradtx.adam(0.1), 3, should_skip_update_fn=gradtx.skip_not_finite
    )
    return opt, jax.jit(opt.update)


@pytest.mark.parametrize("bad", [NAN, INF], ids=["nan", "inf"])
def test_multisteps_skip_not_finite_makes_bad_calls_invisible(bad):
    # Bad calls where the window would emit (3rd call) and at a window's start:
    # each returns zeros and keeps the whole state except skip_state; the good
    # calls give what they give without the bad ones.
    opt, step = _accumulating_adam()
    state = ref_state = opt.init(PARAMS)
    for t in [0, 1, None, 2, None, None, 3, 4, 5]:  # None: a bad call
        if t is None:
            grads = _bad_grads(0, bad)
            u, new = step(grads, state, PARAMS)
            _assert_zero_like(u, grads)
            _assert_same_bits(
                new._replace(skip_state=()), state._replace(skip_state=())
            )
            assert int(new.skip_state["num_not_finite"]) == 1
            state = new
            continue
        u, state = step(GRADS[t], state, PARAMS)
        ref_u, ref_state = step(GRADS[t], ref_state, PARAMS)
        _assert_same_bits(u, ref_u)
    assert int(state.gradient_step) == 2 and not _poisoned(state)


def test_multisteps_without_a_skip_function_emits_the_nan():
    # By default (as in Optax) nothing is skipped: the NaN reaches the emitted
    # update of its window, in its element only; the next window is clean.
    opt = gradtx.MultiSteps(gradtx.sgd(0.1), 3)
    step, state, emitted = jax.jit(opt.update), opt.init(PARAMS), []
    for t in range(6):
        grads = _bad_grads(t, NAN) if t == 1 else GRADS[t]
        u, state = step(grads, state, PARAMS)
        emitted.append(u)
    assert _spread({k: np.asarray(v) for k, v in emitted[2].items()}) == "elem"
    assert not _poisoned(state) and all(
        np.isfinite(x).all() for x in emitted[5].values()
    )


# ------------------------------------------------------ 3. norm overflow


def _norm64(tree):
    """The exact norm of the (already rounded) leaves, in float64."""
    leaves = [
        np.asarray(x.astype(jnp.float32), np.float64) for x in jax.tree.leaves(tree)
    ]
    return float(np.sqrt(sum(np.sum(x * x) for x in leaves)))


def _big(value, dtype, n=3):
    return {"a": jnp.full((n,), value, dtype), "b": jnp.ones((2,), dtype)}


GLOBAL_NORM_OVERFLOW = (
    "the sum of squares overflows float32 although the norm does not; "
    "global_norm needs a rescaled path (see docs/non-finite.md)"
)
LARGE = [
    pytest.param(_big(1e20, jnp.float32), id="float32-1e20"),
    pytest.param(_big(3e38, jnp.float32, n=1), id="float32-3e38"),
    pytest.param(_big(1e20, jnp.bfloat16), id="bfloat16-1e20"),
]


@pytest.mark.parametrize("tree", LARGE)
def test_global_norm_is_finite_when_the_true_norm_is(tree):
    expected = _norm64(tree)
    for fn in (gradtx.global_norm, jax.jit(gradtx.global_norm)):
        assert float(fn(tree)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "tree,expected",
    [
        ({"a": jnp.array([3e38, 3e38])}, INF),  # the true norm overflows
        (_big(INF, jnp.float32), INF),
        (_big(-INF, jnp.bfloat16), INF),
        ({"a": jnp.array([NAN, 1e30]), "b": jnp.full(2, 1e30)}, NAN),
    ],
    ids=["overflowing", "inf", "-inf-bfloat16", "nan"],
)
def test_global_norm_is_inf_or_nan_only_when_it_must_be(tree, expected):
    got = float(gradtx.global_norm(tree))
    assert got == expected or (np.isnan(expected) and np.isnan(got))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_clip_by_global_norm_keeps_the_direction_of_large_updates(dtype):
    # Today the norm is inf, the factor 0, and every leaf is zeroed silently.
    g = _big(1e20, dtype)
    tx = gradtx.clip_by_global_norm(2.0)
    out, _ = jax.jit(tx.update)(g, tx.init(g))
    scale = 2.0 / _norm64(g)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-2
    for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(g), strict=True):
        assert x.dtype == dtype
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64) * scale, rtol=rtol
        )


@pytest.mark.parametrize("bad", [INF, -INF], ids=["inf", "-inf"])
def test_clip_by_global_norm_with_an_infinite_element(bad):
    # max_norm / inf = 0: every finite element becomes 0 (the limit of the
    # rescaling), the infinite one NaN (no finite step is invented from it).
    g = {"a": jnp.array([bad, 1.0, 2.0]), "b": jnp.ones(2)}
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = jax.jit(tx.update)(g, tx.init(g))
    assert np.isnan(out["a"][0])
    assert not np.asarray(out["a"][1:]).any() and not np.asarray(out["b"]).any()


def test_clip_by_global_norm_with_a_nan_element_poisons_every_leaf():
    # The norm is NaN, so no scale can be trusted: everything becomes NaN.
    g = {"a": jnp.array([NAN, 1.0]), "b": jnp.ones(2)}
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = tx.update(g, tx.init(g))
    assert all(np.isnan(np.asarray(x)).all() for x in jax.tree.leaves(out))


def _rms_clip(g, p):
    tx = gradtx.clip_by_block_rms(1.0)
    return tx.update(g, tx.init(g))[0]


def _agc(g, p):
    tx = gradtx.adaptive_grad_clip(0.1)
    return tx.update(g, tx.init(p), p)[0]


def _trust(g, p):
    tx = gradtx.scale_by_trust_ratio()
    return tx.update(g, tx.init(p), p)[0]


ONES, HUGE = jnp.ones(3), jnp.full(3, 1e20)
PER_LEAF = [  # (transformation, updates, params, wanted output)
    pytest.param(_rms_clip, HUGE, ONES, 1.0, id="clip_by_block_rms"),
    pytest.param(_agc, HUGE, ONES, 0.1, id="adaptive_grad_clip"),
    pytest.param(_trust, HUGE, ONES, 1.0, id="trust_ratio-large-updates"),
    pytest.param(_trust, ONES, HUGE, 1e20, id="trust_ratio-large-params"),
]


@pytest.mark.parametrize("fn,g,p,want", PER_LEAF)
def test_per_leaf_norms_do_not_overflow(fn, g, p, want):
    out = jax.jit(fn)(g, p)
    np.testing.assert_allclose(np.asarray(out), np.full(3, want), rtol=1e-6)
