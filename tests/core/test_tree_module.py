"""gradtx.tree against optax.tree, name by name."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx import tree as gt

X = {"a": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "b": [jnp.array(-3.0), None]}
Y = {"a": jnp.array([[0.5, 4.0], [-1.0, 2.0]]), "b": [jnp.array(2.0), None]}


def _close(a, b, rtol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol)


def test_every_optax_tree_name_exists_with_the_same_parameters():
    for name in (n for n in dir(optax.tree) if not n.startswith("_")):
        assert hasattr(gt, name), f"gradtx.tree lacks {name}"
        theirs = getattr(optax.tree, name)
        if inspect.isfunction(theirs):
            ours = inspect.signature(getattr(gt, name)).parameters
            assert list(ours) == list(inspect.signature(theirs).parameters), name


@pytest.mark.parametrize(
    "name,args",
    [
        ("add", (X, Y)),
        ("add", (X, Y, X)),
        ("sub", (X, Y)),
        ("mul", (X, Y)),
        ("div", (X, Y)),
        ("scale", (0.5, X)),
        ("add_scale", (X, 0.3, Y)),
        ("vdot", (X, Y)),
        ("sum", (X,)),
        ("max", (X,)),
        ("min", (X,)),
        ("norm", (X,)),
        ("norm", (X, 1)),
        ("norm", (X, jnp.inf)),
        ("norm", (X, 2, True)),
        ("norm", (X, 1, True)),
        ("where", (True, X, Y)),
        ("clip", (X, -1.0, 1.0)),
        ("clip", (X, None, 0.0)),
        ("conj", (X,)),
        ("real", (X,)),
        ("ones_like", (X,)),
        ("zeros_like", (X, jnp.bfloat16)),
        ("full_like", (X, 3.0)),
        ("batch_shape", (X, (2, 3))),
        ("cast", (X, jnp.float16)),
        ("cast_like", (gt.cast(X, jnp.float16), X)),
        ("update_moment", (X, Y, 0.9, 2)),
        ("update_infinity_moment", (X, Y, 0.9, 1e-3)),
        ("bias_correction", (X, 0.9, jnp.int32(3))),
    ],
)
def test_values_match_optax(name, args):
    _close(getattr(gt, name)(*args), getattr(optax.tree, name)(*args))


@pytest.mark.parametrize(
    "call",
    [
        lambda T, a, b: T.add_scale(a, 0.5, b),
        lambda T, a, b: T.update_moment(a, b, 0.9, 2),
        lambda T, a, b: T.update_infinity_moment(a, b, 0.9, 1e-8),
        lambda T, a, b: T.update_moment_per_elem_norm(a, b, 0.9, 2),
    ],
    ids=[
        "add_scale", "update_moment", "update_infinity_moment",
        "update_moment_per_elem_norm",
    ],
)  # fmt: skip
def test_a_none_in_the_leading_tree_stays_none_as_in_optax(call):
    # Optax's test_none_arguments: `f(None, m)` is None.
    m = jnp.array([1.0, 2.0, 3.0])
    assert call(optax.tree, None, m) is None
    assert call(gt, None, m) is None
    # Leaf by leaf: a None of the leading tree ignores the other's subtree.
    other = {"a": Y["a"], "b": [jnp.array(2.0), {"k": m}]}
    got, want = call(gt, X, other), call(optax.tree, X, other)
    assert got["b"][1] is None and want["b"][1] is None
    _close(got, want)


def test_add_keeps_none_leaves_of_the_first_tree():
    # Matching None leaves, as Optax; a None of the first tree also absorbs
    # whatever the other trees hold there (as add_scale and apply_updates).
    _close(gt.add(X, Y), optax.tree.add(X, Y))
    _close(gt.add(X, Y, X), optax.tree.add(X, Y, X))
    other = {"a": Y["a"], "b": [jnp.array(2.0), jnp.ones(4)]}
    got = gt.add(X, other, other)
    assert got["b"][1] is None
    np.testing.assert_allclose(got["b"][0], -3.0 + 4.0)
    assert gt.add(None, None) is None


def test_sum_associative_and_size_allclose_dtype():
    many = [jnp.full((3,), float(i)) for i in range(7)]
    np.testing.assert_allclose(gt.sum(many, associative_reduction=True), 63.0)
    assert gt.size(X) == optax.tree.size(X) == 5
    assert bool(gt.allclose(X, X)) and not bool(gt.allclose(X, Y))
    mixed = {"h": jnp.ones(1, jnp.float16), "f": jnp.ones(1, jnp.float32)}
    for handler in ("promote", "highest", "lowest"):
        assert gt.dtype(mixed, handler) == optax.tree.dtype(mixed, handler)
    with pytest.raises(ValueError, match="several dtypes"):
        gt.dtype(mixed)
    with pytest.raises(ValueError, match="ord"):
        gt.norm(X, ord=3)


def test_random_helpers_match_optax():
    key = jax.random.key(0)
    _close(gt.random_like(key, X), optax.tree.random_like(key, X))
    a, b = gt.split_key_like(key, X), optax.tree.split_key_like(key, X)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(jax.random.key_data(x), jax.random.key_data(y))
    raw = gt.unwrap_random_key_data({"k": key, "x": jnp.ones(1)})
    assert raw["k"].dtype == jnp.uint32


def test_get_and_set_on_optimizer_states_match_optax():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    ours = gradtx.chain(gradtx.clip(1.0), gradtx.adam(1e-3)).init(params)
    theirs = optax.chain(optax.clip(1.0), optax.adam(1e-3)).init(params)
    for key in ("count", "mu", "nu", "ScaleByAdamState"):
        a = gt.get_all_with_path(ours, key)
        b = optax.tree.get_all_with_path(theirs, key)
        assert [str(jax.tree_util.keystr(p)) for p, _ in a] == [
            str(jax.tree_util.keystr(p)) for p, _ in b
        ]
    assert int(gt.get(ours, "count")) == 0
    assert gt.get(ours, "absent", default="x") == "x"
    new = gt.set(ours, count=jnp.int32(5))
    assert int(gt.get(new, "count")) == 5
    assert jax.tree.structure(new) == jax.tree.structure(ours)
    with pytest.raises(KeyError, match="absent"):
        gt.set(ours, absent=1)
    with pytest.raises(KeyError, match="several"):
        gt.get({"a": {"count": 1}, "b": {"count": 2}}, "count")
    only_b = gt.get({"a": {"count": 1}, "b": {"count": 2}}, "count",
                    filtering=lambda p, v: "b" in jax.tree_util.keystr(p))  # fmt: skip
    assert only_b == 2


def test_map_params_matches_optax():
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    mask = {"w": True, "b": False}
    ours_tx = gradtx.adamw(1e-3, mask=mask)
    theirs_tx = optax.adamw(1e-3, mask=mask)
    ours = gradtx.tree_map_params(ours_tx, lambda x: x + 1.0, ours_tx.init(params))
    theirs = optax.tree_map_params(theirs_tx, lambda x: x + 1.0, theirs_tx.init(params))
    _close(jax.tree.leaves(ours), jax.tree.leaves(theirs))
    counts = gt.map_params(
        ours_tx, lambda x: x, ours_tx.init(params), transform_non_params=lambda c: c + 9
    )
    assert int(gt.get_all_with_path(counts, "count")[0][1]) == 9
