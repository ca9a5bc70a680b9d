"""The catalogue of bad inputs (docs/bad-inputs.md): each raises, naming its cause.

Every row of ``BAD_INPUTS`` is a call that Optax 0.2.8 (or a careless caller)
lets through silently, the exception gradtx raises, and a pattern the message
must match: the argument or the leaf path at fault, and both sides where two
things disagree. ``test_docs_catalogue_lists_every_row`` keeps the docs page and
this table in step.
"""

from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

P3 = jnp.ones(3)
TREE = {"encoder": {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, "head": jnp.ones(4)}


def _update(tx, grads, params=None, state_params=None):
    """``tx.update(grads, tx.init(state_params or params), params)``."""
    state = tx.init(params if state_params is None else state_params)
    return tx.update(grads, state, params)


def _adam_state_into_adabelief():
    state = gradtx.adam(0.1).init(P3)
    return gradtx.adabelief(0.1).update(P3, state, P3)


def _int_state():
    tx = gradtx.scale_by_adam()
    state = tx.init(P3)
    state = state._replace(mu=jnp.zeros(3, jnp.int32))
    return tx.update(P3, state)


def _lists_for_tuples():
    tx = gradtx.chain(gradtx.clip(1.0), gradtx.adam(0.1))
    return tx.update(P3, list(tx.init(P3)), P3)


def _dict_for_namedtuple():
    tx = gradtx.scale_by_adam()
    return tx.update(P3, tx.init(P3)._asdict())


def _scan_with_int_leaf():
    params = {"w": jnp.ones(2), "step": jnp.array(3)}
    tx = gradtx.sgd(0.1)
    grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2) * p["step"], allow_int=True)(params)
    return tx.update(grads, tx.init(params), params)


def _renamed_leaf():
    tx = gradtx.adam(0.1)
    state = tx.init(TREE)
    renamed = {"encoder": TREE["encoder"], "tail": TREE["head"]}
    return tx.update(renamed, state, renamed)


def _missing_leaf():
    tx = gradtx.sgd(0.1, momentum=0.9)
    state = tx.init(TREE)
    return tx.update({"encoder": TREE["encoder"]}, state)


def _masked_wrong_mask():
    tx = gradtx.masked(gradtx.scale(2.0), {"encoder": True, "tail": False})
    return tx.update(TREE, tx.init(TREE))


def _partition_missing_label():
    tx = gradtx.partition({"a": gradtx.sgd(0.1)}, {"encoder": "a", "head": "b"})
    return tx.init(TREE)


def _multisteps_wrong_state():
    tx = gradtx.MultiSteps(gradtx.adam(0.1), 2)
    return tx.update(P3, gradtx.adam(0.1).init(P3), P3)


def _inject_state_from_plain():
    tx = gradtx.inject_hyperparams(gradtx.adam)(0.1)
    return tx.update(P3, gradtx.adam(0.1).init(P3), P3)


# (id, thunk, exception, pattern the message must match)
BAD_INPUTS = [
    # params that are not arrays (an unfiltered Equinox model)
    (
        "function_leaf_in_params_at_init",
        lambda: gradtx.adam(0.1).init({"w": jnp.ones(2), "act": jax.nn.relu}),
        TypeError,
        r"adam: params leaf \['act'\] is a custom_jvp, not an array.*eqx\.filter",
    ),
    # shapes: never a silent broadcast
    (
        "grad_shape_1_vs_param_3",
        lambda: _update(gradtx.adam(0.1), jnp.ones(1), P3),
        ValueError,
        r"adam: shape mismatch at leaf <root>: `updates` has shape \(1,\)"
        r" but `mu` has shape \(3,\)",
    ),
    (
        "grad_shape_3x1_vs_param_3",
        lambda: _update(gradtx.adam(0.1), jnp.ones((3, 1)), P3),
        ValueError,
        r"shape \(3, 1\) but `mu` has shape \(3,\)",
    ),
    (
        "grad_shape_in_nested_tree",
        lambda: _update(
            gradtx.sgd(0.1, momentum=0.9),
            {**TREE, "encoder": {**TREE["encoder"], "w": jnp.ones((2, 3))}},
            TREE,
        ),
        ValueError,
        r"\['encoder'\]\['w'\]: `updates` has shape \(2, 3\) but `trace` has shape"
        r" \(3, 2\)",
    ),
    (
        "apply_updates_shape_2x3_to_3",
        lambda: gradtx.apply_updates(P3, jnp.ones((2, 3))),
        ValueError,
        r"apply_updates: shape mismatch at leaf <root>: `params` has shape \(3,\)"
        r" but `updates` has shape \(2, 3\)",
    ),
    (
        "apply_updates_other_tree",
        lambda: gradtx.apply_updates(TREE, {"encoder": TREE["encoder"]}),
        ValueError,
        r"apply_updates: `updates` does not have the tree structure of `params`;"
        r" first difference: leaf \['head'\] is in `params` but not in `updates`",
    ),
    (
        "weight_decay_params_shape",
        lambda: gradtx.adamw(0.1).update(
            {"w": jnp.ones(4)},
            gradtx.adamw(0.1).init({"w": jnp.ones(4)}),
            {"w": jnp.ones(5)},
        ),
        ValueError,
        r"\['w'\].*`params` has shape \(5,\)",
    ),
    # tree structure: the first difference is named
    (
        "state_for_renamed_leaf",
        _renamed_leaf,
        ValueError,
        r"`mu` does not have the tree structure of `updates`; first difference:"
        r" leaf \['tail'\] is in `updates` but not in `mu`",
    ),
    (
        "state_for_missing_leaf",
        _missing_leaf,
        ValueError,
        r"`trace` does not have the tree structure of `updates`; first difference:"
        r" leaf \['head'\] is in `trace` but not in `updates`",
    ),
    (
        "mask_tree_mismatch",
        _masked_wrong_mask,
        ValueError,
        r"masked: the mask's tree structure does not match `params`.*; leaf"
        r" \['tail'\] of `mask` is not in `params`",
    ),
    (
        "partition_label_without_transform",
        _partition_missing_label,
        ValueError,
        r"'b'",  # the label, named
    ),
    # integer, boolean and float0 leaves
    (
        "int_gradient_leaf",
        lambda: _update(gradtx.adam(0.1), {"i": jnp.array(5)}, {"i": jnp.array(5)}),
        TypeError,
        r"adam: leaf \['i'\] of `updates` has dtype int32.*`scale_by_adam`",
    ),
    (
        "bool_gradient_leaf",
        lambda: _update(
            gradtx.adam(0.1), jnp.array([True, False]), jnp.array([True, False])
        ),
        TypeError,
        r"leaf <root> of `updates` has dtype bool",
    ),
    (
        "float0_gradient_leaf",
        _scan_with_int_leaf,
        TypeError,
        r"sgd: leaf \['step'\] of `updates` has a float0 gradient.*`scale`",
    ),
    (
        "float_update_to_int_param",
        lambda: gradtx.apply_updates({"i": jnp.array(5)}, {"i": jnp.array(-0.9)}),
        TypeError,
        r"apply_updates: leaf \['i'\] is a int32 parameter and its update is float32",
    ),
    (
        "bool_update_to_bool_param",
        lambda: gradtx.apply_updates(jnp.array([True, False]), jnp.array([True, True])),
        TypeError,
        r"apply_updates: leaf <root> is a bool parameter",
    ),
    (
        "complex_update_to_real_param",
        lambda: gradtx.apply_updates({"w": P3}, {"w": P3 * 1j}),
        TypeError,
        r"apply_updates: leaf \['w'\] is a real float32 parameter but its update is"
        r" complex64",
    ),
    (
        "function_leaf_in_params",
        lambda: gradtx.apply_updates(
            {"w": P3, "act": jax.nn.relu}, {"w": P3, "act": None}
        ),
        TypeError,
        r"apply_updates: the param at leaf \['act'\] is not an array but a "
        r"custom_jvp \(relu\).*eqx\.apply_updates",
    ),
    (
        "int_state_leaf",
        _int_state,
        TypeError,
        r"scale_by_adam: leaf <root> of `mu` has dtype int32 where `updates` has"
        r" float32",
    ),
    # learning rates must be scalars
    (
        "learning_rate_shape_2x1",
        lambda: gradtx.sgd(jnp.ones((2, 1))),
        ValueError,
        r"sgd: `learning_rate` must be a scalar, got an array of shape \(2, 1\)",
    ),
    (
        "schedule_returns_shape_2x1",
        lambda: _update(gradtx.sgd(lambda t: jnp.ones((2, 1))), jnp.ones(2)),
        ValueError,
        r"sgd: the schedule must return a scalar, got shape \(2, 1\)"
        r".*`scale_by_schedule`",
    ),
    # states: missing, foreign, or restored without their structure
    (
        "update_with_state_none",
        lambda: gradtx.adam(0.1).update(P3, None, P3),
        ValueError,
        r"adam: expected a state tuple of 2 states .* got NoneType",
    ),
    (
        "primitive_update_with_state_none",
        lambda: gradtx.scale_by_adam().update(P3, None),
        ValueError,
        r"scale_by_adam: `state` must be the `ScaleByAdamState` .* got None: was"
        r" `init` called",
    ),
    (
        "update_before_init_empty_state",
        lambda: gradtx.trace(0.9).update(P3, gradtx.EmptyState()),
        ValueError,
        r"trace: `state` must be the `TraceState` .* got a `EmptyState`",
    ),
    (
        "adam_state_into_adabelief",
        _adam_state_into_adabelief,
        ValueError,
        r"adabelief: `state` must be the `ScaleByBeliefState` .* got a"
        r" `ScaleByAdamState`, the state of another transformation",
    ),
    (
        "lists_for_tuples",
        _lists_for_tuples,
        ValueError,
        r"chain: expected a state tuple of 2 states .* got list",
    ),
    (
        "dict_for_namedtuple",
        _dict_for_namedtuple,
        ValueError,
        r"scale_by_adam: .* got a dict: a checkpoint restored without its structure"
        r"\? Rebuild it with `gradtx.restore_state`",
    ),
    (
        "multisteps_given_inner_state",
        _multisteps_wrong_state,
        ValueError,
        r"MultiSteps: `state` must be the `MultiStepsState`",
    ),
    (
        "inject_given_plain_state",
        _inject_state_from_plain,
        ValueError,
        r"inject_hyperparams: `state` must be the `InjectStatefulHyperparamsState`",
    ),
    # transforms that need params or extra arguments
    (
        "params_none_for_weight_decay",
        lambda: _update(gradtx.adamw(0.1), P3, None, P3),
        ValueError,
        r"adamw: `update` needs the current parameters.*its part `add_decayed_weights`",
    ),
    (
        "params_none_for_trust_ratio",
        lambda: _update(gradtx.scale_by_trust_ratio(), P3, None, P3),
        ValueError,
        r"scale_by_trust_ratio: `update` needs the current parameters",
    ),
    (
        "polyak_without_loss",
        lambda: _update(gradtx.polyak_sgd(), P3, P3),
        TypeError,
        r"polyak_sgd: `update` needs the loss.*`scale_by_polyak`",
    ),
    (
        "plateau_without_loss",
        lambda: _update(gradtx.reduce_on_plateau(), P3, P3),
        TypeError,
        r"reduce_on_plateau: `update` needs the monitored loss as the keyword"
        r" argument `value`",
    ),
    # hyperparameters the issue lists (the rest: tests/core/test_validation.py)
    (
        "clip_by_global_norm_negative",
        lambda: gradtx.clip_by_global_norm(-1.0),
        ValueError,
        r"clip_by_global_norm: `max_norm` must be in \(0, inf\], got -1.0",
    ),
    (
        "lion_b1_2",
        lambda: gradtx.lion(0.1, b1=2.0),
        ValueError,
        r"lion: `b1` must be in \[0, 1\], got 2.0",
    ),
    (
        "multisteps_every_k_0",
        lambda: gradtx.MultiSteps(gradtx.sgd(0.1), every_k_schedule=0),
        ValueError,
        r"MultiSteps: `every_k_schedule` must be >= 1, got 0",
    ),
    (
        "inject_schedule_not_scalar",
        lambda: gradtx.inject_hyperparams(gradtx.sgd)(lambda t: jnp.ones(2)),
        TypeError,
        r"inject_hyperparams: `learning_rate` is callable, so it is taken for a"
        r" schedule, but at step 0 it returned",
    ),
    (
        "inject_unknown_static_arg",
        lambda: gradtx.inject_hyperparams(gradtx.adam, static_args="nesterovv"),
        ValueError,
        r"inject_hyperparams: `static_args` names \['nesterovv'\]",
    ),
]

IDS = [row[0] for row in BAD_INPUTS]


def test_ids_are_unique():
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("thunk,exc,pattern", [r[1:] for r in BAD_INPUTS], ids=IDS)
def test_bad_input_raises_naming_its_cause(thunk, exc, pattern):
    with pytest.raises(exc) as info:
        thunk()
    assert re.search(pattern, str(info.value), re.S), str(info.value)


@pytest.mark.parametrize(
    "thunk,exc,pattern",
    [
        r[1:]
        for r in BAD_INPUTS
        if r[0] in ("grad_shape_1_vs_param_3", "int_state_leaf")
    ],
    ids=["grad_shape_1_vs_param_3", "int_state_leaf"],
)
def test_checks_run_at_trace_time_under_jit(thunk, exc, pattern):
    with pytest.raises(exc, match=pattern):
        jax.jit(thunk)()


def test_docs_catalogue_lists_every_row():
    page = pathlib.Path(__file__).parents[1] / "docs" / "bad-inputs.md"
    text = page.read_text()
    missing = [i for i in IDS if f"`{i}`" not in text]
    assert not missing, f"docs/bad-inputs.md lacks rows for {missing}"


def test_masked_lets_integer_leaves_through_unchanged():
    # The documented way to keep integer leaves in the tree.
    params = {"w": jnp.ones(2), "step": jnp.array(3)}
    grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2) * p["step"], allow_int=True)(params)
    is_float = lambda p: jax.tree.map(lambda x: jnp.issubdtype(x.dtype, jnp.inexact), p)
    tx = gradtx.masked(gradtx.adam(0.1), is_float)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = gradtx.apply_updates(params, updates)
    assert new["step"].dtype == jnp.int32 and int(new["step"]) == 3
    np.testing.assert_allclose(new["w"], 0.9, rtol=1e-6)
    # Integer zero updates (e.g. from set_to_zero) add exactly.
    assert int(gradtx.apply_updates(jnp.array(5), jnp.array(0))) == 5
