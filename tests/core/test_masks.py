"""Masks and labels given as a callable pytree (an Equinox module, optax#913).

A mask may be a tree or a function of the params. A tree that is itself
callable (an Equinox module has ``__call__``) is used as a tree when its leaves
are not all callable: Optax's rule, here applied wherever a mask or labels "or
a function" is accepted.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx._core.masks import is_mask_function
from gradtx.combinators.partition import freeze, selective_transform

eqx = pytest.importorskip("equinox")


class Model(eqx.Module):
    w: jax.Array
    b: jax.Array

    def __call__(self, x):
        return self.w.dot(x) + self.b


def _params():
    return Model(jnp.array([1.0, -2.0, 3.0]), jnp.array([0.5, 0.25, -1.0]))


def _run(tx, params, steps=3):
    state = tx.init(params)
    for t in range(steps):
        grads = jax.tree.map(lambda p, t=t: jnp.cos(p + t), params)
        updates, state = tx.update(grads, state, params)
        params = gradtx.apply_updates(params, updates)
    return params


def test_the_rule_matches_optax():
    assert is_mask_function(lambda p: p)
    assert is_mask_function(functools.partial(lambda p, x: p, x=1))
    assert not is_mask_function(Model(True, False))
    assert not is_mask_function({"w": True})
    assert not is_mask_function(True)
    # A callable pytree with no leaves is an (empty) tree, as in Optax.
    assert not is_mask_function(jax.tree_util.Partial(lambda p: p))
    # A callable pytree whose leaves are functions is called.
    assert is_mask_function(jax.tree_util.Partial(lambda f, p: p, lambda q: q))


@pytest.mark.parametrize(
    "make",
    [
        lambda lib, m: lib.masked(lib.sgd(0.1), m),
        lambda lib, m: lib.add_decayed_weights(0.1, m),
        lambda lib, m: lib.adamw(0.1, weight_decay=0.5, mask=m),
        lambda lib, m: lib.lamb(0.1, mask=m),
    ],
    ids=["masked", "add_decayed_weights", "adamw", "lamb"],
)
def test_an_equinox_module_mask_is_used_as_a_tree(make):
    params, mask = _params(), Model(True, False)
    got = _run(make(gradtx, mask), params)
    want = _run(make(optax, mask), params)
    assert isinstance(got, Model)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    # The mask is honoured: only `w` is zeroed.
    only = _run(gradtx.masked(gradtx.set_to_zero(), mask), params)
    np.testing.assert_array_equal(only.w, params.w)
    assert not np.array_equal(only.b, params.b)


@pytest.mark.parametrize("name", ["partition", "multi_transform"])
def test_an_equinox_module_of_labels_is_used_as_a_tree(name):
    # Optax 0.2.8 calls the module here ('bool' object has no attribute 'dot').
    params = _params()
    labels = Model("train", "frozen")
    tx = getattr(gradtx, name)(
        {"train": gradtx.sgd(0.1), "frozen": gradtx.set_to_zero()}, labels
    )
    got = _run(tx, params)
    want = _run(optax.masked(optax.sgd(0.1), Model(True, False)), params)
    np.testing.assert_allclose(got.w, want.w, rtol=1e-6)
    np.testing.assert_array_equal(got.b, params.b)


def test_freeze_and_selective_transform_take_an_equinox_module_mask():
    params, frozen = _params(), Model(False, True)
    for tx in (
        gradtx.chain(freeze(frozen), gradtx.sgd(0.1)),
        selective_transform(gradtx.sgd(0.1), freeze_mask=frozen),
    ):
        got = _run(tx, params)
        np.testing.assert_array_equal(got.b, params.b)
        assert not np.array_equal(got.w, params.w)


def test_a_mask_function_is_still_called():
    params = _params()
    tx = gradtx.masked(gradtx.set_to_zero(), lambda p: type(p)(True, False))
    got = _run(tx, params)
    np.testing.assert_array_equal(got.w, params.w)
    assert not np.array_equal(got.b, params.b)
