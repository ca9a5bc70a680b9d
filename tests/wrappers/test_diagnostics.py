"""layer_diagnostics and monitor_layers: NumPy norms, groups, zero params, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx import (
    MonitorLayersState,
    adam,
    apply_updates,
    layer_diagnostics,
    monitor_layers,
    sgd,
)

RNG = np.random.default_rng(0)


def _tree(scale=1.0):
    draw = lambda *shape: (scale * RNG.standard_normal(shape)).astype(np.float32)
    return {
        "blocks": [
            {"attn": {"w": draw(4, 3), "b": draw(3)}, "mlp": {"w": draw(3, 5)}}
            for _ in range(2)
        ],
        "embed": draw(6, 4),
    }


PATHS = [
    "blocks/0/attn/b",
    "blocks/0/attn/w",
    "blocks/0/mlp/w",
    "blocks/1/attn/b",
    "blocks/1/attn/w",
    "blocks/1/mlp/w",
    "embed",
]


def _np_norms(tree):
    leaves = jax.tree.leaves(tree)
    return {
        p: float(np.linalg.norm(np.asarray(x, np.float64)))
        for p, x in zip(PATHS, leaves, strict=True)
    }


def _group_norm(norms, paths):
    return float(np.sqrt(sum(norms[p] ** 2 for p in paths)))


def test_per_leaf_norms_and_ratios_match_numpy():
    grads, updates, params = _tree(), _tree(1e-3), _tree()
    d = jax.jit(layer_diagnostics)(grads, updates, params)
    assert set(d) == {"grad_norm", "update_norm", "param_norm", "update_ratio"}
    assert list(d["grad_norm"]) == PATHS
    ng, nu, np_ = _np_norms(grads), _np_norms(updates), _np_norms(params)
    for p in PATHS:
        np.testing.assert_allclose(d["grad_norm"][p], ng[p], rtol=1e-6)
        np.testing.assert_allclose(d["update_norm"][p], nu[p], rtol=1e-6)
        np.testing.assert_allclose(d["param_norm"][p], np_[p], rtol=1e-6)
        np.testing.assert_allclose(d["update_ratio"][p], nu[p] / np_[p], rtol=1e-6)
        assert d["grad_norm"][p].dtype == jnp.float32


def test_groups_by_pattern_and_the_other_group():
    grads, updates, params = _tree(), _tree(1e-2), _tree()
    groups = {"attention": r"attn/", "mlp": r"mlp"}
    d = jax.jit(lambda *t: layer_diagnostics(*t, groups=groups))(grads, updates, params)
    members = {
        "attention": [p for p in PATHS if "attn" in p],
        "mlp": [p for p in PATHS if "mlp" in p],
        "other": ["embed"],
    }
    assert list(d["grad_norm"]) == ["attention", "mlp", "other"]
    ng, nu, np_ = _np_norms(grads), _np_norms(updates), _np_norms(params)
    for g, paths in members.items():
        np.testing.assert_allclose(d["grad_norm"][g], _group_norm(ng, paths), 1e-6)
        ratio = _group_norm(nu, paths) / _group_norm(np_, paths)
        np.testing.assert_allclose(d["update_ratio"][g], ratio, 1e-6)


def test_first_matching_pattern_wins_and_a_function_may_drop_leaves():
    grads = _tree()
    d = layer_diagnostics(grads, groups={"w": r"/w$", "block0": r"blocks/0"})
    assert sorted(d["grad_norm"]) == ["block0", "other", "w"]
    np.testing.assert_allclose(
        d["grad_norm"]["block0"], _np_norms(grads)["blocks/0/attn/b"], 1e-6
    )
    by_layer = lambda path: path.split("/")[1] if path.startswith("blocks") else None
    d = layer_diagnostics(grads, groups=by_layer)
    assert list(d) == ["grad_norm"] and list(d["grad_norm"]) == ["0", "1"]
    np.testing.assert_allclose(
        d["grad_norm"]["1"], _group_norm(_np_norms(grads), PATHS[3:6]), 1e-6
    )


def test_zero_params_give_ratio_zero_and_huge_norms_stay_finite():
    params = {"b": jnp.zeros(3), "w": jnp.full(4, 3e30)}
    updates = {"b": jnp.ones(3), "w": jnp.full(4, 3e29)}
    d = layer_diagnostics(updates, updates, params)
    assert float(d["update_ratio"]["b"]) == 0.0 and float(d["param_norm"]["b"]) == 0.0
    np.testing.assert_allclose(d["param_norm"]["w"], 6e30, rtol=1e-6)
    np.testing.assert_allclose(d["update_ratio"]["w"], 0.1, rtol=1e-6)
    d = layer_diagnostics(updates, updates, params, groups=lambda p: "all")
    np.testing.assert_allclose(d["update_norm"]["all"], np.sqrt(4 * 9e58 + 3), 1e-6)
    nan = layer_diagnostics(
        {"b": jnp.array([1.0, jnp.nan]), "w": jnp.ones(1)}, groups=lambda p: "all"
    )
    assert np.isnan(nan["grad_norm"]["all"])


def test_monitor_layers_keeps_the_last_step_in_the_state_under_jit():
    params = jax.tree.map(jnp.asarray, _tree())
    inner = adam(1e-2)
    tx = monitor_layers(inner, groups={"attention": "attn"})
    state = tx.init(params)
    assert isinstance(state, MonitorLayersState)
    assert all(float(v) == 0 for v in jax.tree.leaves(state.diagnostics))

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state, updates

    diagnose = jax.jit(lambda *t: layer_diagnostics(*t, groups={"attention": "attn"}))
    ref_state = inner.init(params)
    for _ in range(3):
        grads = jax.tree.map(jnp.asarray, _tree())
        before = params
        params, state, updates = step(params, state, grads)
        ref_updates, ref_state = inner.update(grads, ref_state, before)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, 1e-5, 1e-9),
            updates,
            ref_updates,
        )
        want = diagnose(grads, updates, before)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, 1e-6), state.diagnostics, want
        )
    jaxpr = str(jax.make_jaxpr(step)(params, state, grads))
    assert "callback" not in jaxpr


def test_monitor_layers_state_is_a_stable_scan_carry():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    tx = monitor_layers(sgd(0.1))

    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.tree.map(jnp.ones_like, p), s, p)
        return (apply_updates(p, u), s), s.diagnostics["update_ratio"]["w"]

    _, ratios = jax.lax.scan(body, (params, tx.init(params)), length=3)
    np.testing.assert_allclose(ratios, [0.1, 0.1 / 0.9, 0.1 / 0.8], rtol=1e-5)


BAD_GROUPS = [
    ({"attn": "("}, ValueError, "`groups['attn']` is not a valid regular expression"),
    ({"attn": 3}, TypeError, "`groups` must map group names"),
    ({1: "x"}, TypeError, "`groups` must map group names"),
    (["attn"], TypeError, "`groups` must be None, a dict"),
]


@pytest.mark.parametrize("groups,error,message", BAD_GROUPS)
@pytest.mark.parametrize("owner", ["layer_diagnostics", "monitor_layers"])
def test_bad_groups_are_rejected_in_the_callers_words(owner, groups, error, message):
    with pytest.raises(error) as info:
        if owner == "layer_diagnostics":
            layer_diagnostics({"w": jnp.ones(2)}, groups=groups)
        else:
            monitor_layers(sgd(0.1), groups=groups)
    assert str(info.value).startswith(f"{owner}: {message}"), str(info.value)


def test_bad_uses_are_named():
    with pytest.raises(
        TypeError, match=r"^layer_diagnostics: `groups` must return a group name"
    ):
        layer_diagnostics({"w": jnp.ones(2)}, groups=lambda p: 1)
    with pytest.raises(
        ValueError, match=r"^layer_diagnostics: `updates` does not have the tree"
    ):
        layer_diagnostics({"w": jnp.ones(2)}, {"v": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"^monitor_layers: argument 0"):
        monitor_layers(sgd)
    tx = monitor_layers(sgd(0.1))
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(
        ValueError, match=r"^monitor_layers: `update` needs the current parameters"
    ):
        tx.update({"w": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match=r"^monitor_layers: `state` must be"):
        tx.update({"w": jnp.ones(2)}, state.inner_state, {"w": jnp.ones(2)})
