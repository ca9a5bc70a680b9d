"""Routing updates by label: partition (multi_transform), freeze, selective_transform.

A label tree has the structure of the params (or a prefix of it: a label then
covers a whole subtree) and holds a hashable label at each leaf. Each label
names the transformation that owns those leaves. Everything here is built on
:func:`gradtx.masked`: one masked copy of each transformation sees only the
leaves with its label, and keeps state only for them.
"""

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._core.base import (
    GradientTransformation,
    OptState,
    Params,
    check_state,
    set_to_zero,
    with_extra_args_support,
)
from .._core.lifting import first_difference
from .._core.masks import is_mask_function
from .._core.state_paths import ParamsPlaceholder
from .._core.traits import composed, declare
from .masked import masked


def _keystr(path: Any) -> str:
    return jax.tree_util.keystr(path) or "<root>"


def _check_prefix(owner: str, name: str, labels: Any, tree: Any, what: str) -> None:
    try:
        jax.tree.structure(labels).flatten_up_to(tree)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{owner}: the tree structure of `{name}` does not match `{what}` "
            f"(it must have the structure of the params, or a prefix of it); "
            f"{first_difference(labels, tree, (name, what), prefix=True)}.\n"
            f"  {name}: {jax.tree.structure(labels)}\n"
            f"  {what}: {jax.tree.structure(tree)}"
        ) from e


def _to_bool(owner: str, name: str, path: Any, m: Any) -> bool:
    if isinstance(m, bool):
        return m
    dtype = getattr(m, "dtype", None)
    if getattr(m, "shape", None) == () and dtype is not None and dtype == jnp.bool_:
        try:
            return bool(m)
        except jax.errors.ConcretizationTypeError as e:
            raise TypeError(
                f"{owner}: `{name}` must be static, but the leaf at "
                f"{_keystr(path)} is a traced array. Build the mask from "
                "Python bools outside `jit`."
            ) from e
    raise TypeError(
        f"{owner}: `{name}` leaves must be bools (or 0-d bool arrays), got "
        f"{m!r} ({type(m).__name__}) at leaf {_keystr(path)}."
    )


def _static_bools(owner: str, name: str, mask: Any) -> Any:
    """``mask`` with every leaf checked and made a Python bool (lazily if callable)."""

    def convert(tree):
        return jax.tree_util.tree_map_with_path(
            lambda p, m: _to_bool(owner, name, p, m), tree
        )

    if is_mask_function(mask):
        return lambda tree: convert(mask(tree))
    return convert(mask)


def _check_labels(owner: str, name: str, labels: Any, known: Mapping) -> None:
    missing: dict[Hashable, str] = {}
    for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
        try:
            hash(label)
        except TypeError as e:
            raise TypeError(
                f"{owner}: labels in `{name}` must be hashable (they are keys "
                f"of `transforms`), got {label!r} at leaf {_keystr(path)}."
            ) from e
        if label not in known:
            missing.setdefault(label, _keystr(path))
    if missing:
        where = ", ".join(f"{k!r} (at leaf {p})" for k, p in missing.items())
        raise ValueError(
            f"{owner}: no transformation for label(s) {list(missing)} found in "
            f"`{name}`: {where}. `transforms` has labels {list(known)}. Add a "
            "transformation for each label (`gradtx.set_to_zero()` freezes)."
        )


def _mask_for(labels: Any, label: Hashable) -> Any:
    return jax.tree.map(lambda x: bool(x == label), labels)


class PartitionState(NamedTuple):
    """One :class:`MaskedState` per label in ``transforms``, keyed by label."""

    inner_states: Mapping[Hashable, OptState]


# Optax's older name for the same class.
MultiTransformState = PartitionState


def _partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any,
    mask_compatible_extra_args: bool,
    owner: str,
    name: str,
    computed: bool | None = None,
) -> GradientTransformation:
    if not isinstance(transforms, Mapping):
        raise TypeError(
            f"{owner}: `transforms` must be a mapping from labels to "
            f"transformations, got {type(transforms).__name__}."
        )
    for label, tx in transforms.items():
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"{owner}: `transforms[{label!r}]` is not a gradient "
                f"transformation (an object with `init` and `update`), got {tx!r}."
            )
    txs = {label: with_extra_args_support(tx) for label, tx in transforms.items()}

    def labels_for(tree, what):
        labels = param_labels(tree) if is_mask_function(param_labels) else param_labels
        _check_prefix(owner, name, labels, tree, what)
        _check_labels(owner, name, labels, txs)
        return labels

    def init_fn(params):
        if isinstance(params, ParamsPlaceholder):  # traced by tree.map_params
            return PartitionState(
                {k: masked(t, True).init(params) for k, t in txs.items()}
            )
        labels = labels_for(params, "params")
        return PartitionState(
            {
                label: masked(tx, _mask_for(labels, label)).init(params)
                for label, tx in txs.items()
            }
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state("_partition", state, PartitionState)
        inner = getattr(state, "inner_states", None)
        if not isinstance(inner, Mapping) or set(txs) - set(inner):
            raise ValueError(
                f"{owner}: expected a PartitionState with one inner state per "
                f"label {list(txs)}, got {type(state).__name__}. Was it made by "
                "this transformation's `init`?"
            )
        labels = labels_for(updates, "updates")
        new_states = {}
        for label, tx in txs.items():
            tx = masked(
                tx,
                _mask_for(labels, label),
                mask_compatible_extra_args=mask_compatible_extra_args,
            )
            updates, new_states[label] = tx.update(
                updates, inner[label], params, **extra_args
            )
        return updates, PartitionState(new_states)

    # labels computed by a function see whatever tree they are given: not
    # elementwise (a tree of labels is). `computed`: the caller's labels are.
    computed = is_mask_function(param_labels) if computed is None else computed
    why = f"its `{name}` is a function of the params" if computed else None
    tx = GradientTransformation(init_fn, update_fn)
    return declare(composed(tx, transforms.values(), reason=why), name=owner)


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any | Callable[[Params], Any],
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """Applies a different transformation to each labelled group of params.

    Every leaf of the params carries a label; ``transforms[label]`` is applied
    (through :func:`gradtx.masked`) to the leaves with that label only, and
    keeps state only for them. A typical use is Adam on the weights and a
    frozen (``set_to_zero``) or differently scaled update for the biases.
    ``multi_transform`` is the same function under Optax's older name.

    Differences from Optax (same numbers and state layout otherwise):

    * a label tree whose structure is neither the params' nor a prefix of it
      raises ``ValueError`` showing both structures;
    * a label with no entry in ``transforms`` raises ``ValueError`` naming the
      missing label(s) and a leaf path that carries each; unhashable labels
      raise ``TypeError`` naming the leaf. The check runs in ``update`` too,
      for labels computed from the updates. Transforms with no leaf are
      allowed (their state is built on an empty tree), as in Optax;
    * a state that is not this transformation's ``PartitionState`` raises
      ``ValueError`` instead of a ``KeyError``.

    Args:
      transforms: a mapping from labels to transformations.
      param_labels: a tree of hashable labels with the structure of the params
        (or a prefix of it: a label then covers a whole subtree), or a function
        from the params (in ``init``) or updates (in ``update``) to such a tree.
      mask_compatible_extra_args: if True, extra keyword arguments of
        ``update`` that have the tree structure of the updates are masked like
        the updates before they reach each transformation. Other extra
        arguments always reach every transformation unchanged.

    Returns:
      A :class:`GradientTransformation` with state :class:`PartitionState`,
      whose ``inner_states`` maps each label to a :class:`MaskedState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adam, apply_updates, set_to_zero
      >>> from gradtx import partition
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
      >>> tx = partition({"train": adam(0.1), "frozen": set_to_zero()},
      ...                {"w": "train", "b": "frozen"})
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["b"]
      Array([0., 0.], dtype=float32)
      >>> new_params = apply_updates(params, updates)
      >>> round(float(new_params["w"][0, 0]), 4), float(new_params["b"][0])
      (0.9, 1.0)
    """
    return _partition(
        transforms,
        param_labels,
        mask_compatible_extra_args,
        owner="partition",
        name="param_labels",
    )


# Optax's older name for the same function.
multi_transform = partition


def freeze(mask: Any | Callable[[Params], Any]) -> GradientTransformation:
    """Zeroes the updates where ``mask`` is True, so those params stay fixed.

    Other updates pass through unchanged. It is :func:`gradtx.masked` around
    :func:`gradtx.set_to_zero`; to run an optimizer on the other leaves, use
    :func:`selective_transform`.

    Differences from Optax: ``mask`` may also be a function of the params;
    leaves must be bools or 0-d bool arrays (anything else, e.g. ``1``, raises
    ``TypeError`` naming the leaf, where Optax would use its truth value); a
    mask whose structure is neither the params' nor a prefix of it raises
    ``ValueError`` showing both structures.

    Args:
      mask: a bool (freeze everything or nothing), or a tree of bools with the
        structure of the params or a prefix of it (True freezes that leaf or
        subtree), or a function from the params to such a tree. It must be
        static: not computed from traced values.

    Returns:
      A :class:`GradientTransformation` with state :class:`MaskedState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import freeze
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
      >>> tx = freeze({"w": False, "b": True})
      >>> updates, _ = tx.update(params, tx.init(params))
      >>> updates["b"], updates["w"]
      (Array([0., 0.], dtype=float32), Array([1., 1.], dtype=float32))
    """
    computed = is_mask_function(mask)
    mask = _static_bools("freeze", "mask", mask)
    inner = masked(set_to_zero(), mask)

    def checked(tree, what):
        mask_tree = mask(tree) if is_mask_function(mask) else mask
        _check_prefix("freeze", "mask", mask_tree, tree, what)

    def init_fn(params):
        checked(params, "params")
        return inner.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        checked(updates, "updates")
        return inner.update(updates, state, params, **extra_args)

    why = "its `mask` is a function of the params" if computed else None
    return composed(GradientTransformation(init_fn, update_fn), [], reason=why)


def selective_transform(
    optimizer: GradientTransformation,
    *,
    freeze_mask: Any | Callable[[Params], Any],
) -> GradientTransformation:
    """Runs ``optimizer`` on the trainable params only; frozen ones get zeros.

    A :func:`partition` with two labels: ``"train"`` (``optimizer``, where
    ``freeze_mask`` is False) and ``"freeze"`` (:func:`gradtx.set_to_zero`,
    where it is True). Unlike :func:`freeze` followed by an optimizer, the
    optimizer keeps no state for the frozen leaves and never sees them.

    Differences from Optax: ``freeze_mask`` may also be a function of the
    params (Optax would treat the function itself as one True leaf and freeze
    everything); leaves must be bools or 0-d bool arrays (``TypeError``
    otherwise, naming the leaf); a structure mismatch raises ``ValueError``
    showing both structures.

    Args:
      optimizer: the transformation for the trainable leaves.
      freeze_mask: keyword only. A bool, or a tree of bools with the structure
        of the params or a prefix of it (True freezes), or a function from the
        params to such a tree. It must be static.

    Returns:
      A :class:`GradientTransformation` with state :class:`PartitionState`
      (labels ``"train"`` and ``"freeze"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adam
      >>> from gradtx import selective_transform
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
      >>> tx = selective_transform(adam(1e-3), freeze_mask={"w": False, "b": True})
      >>> updates, state = tx.update(params, tx.init(params), params)
      >>> updates["b"]
      Array([0., 0.], dtype=float32)
      >>> sorted(state.inner_states)
      ['freeze', 'train']
    """
    computed = is_mask_function(freeze_mask)
    freeze_mask = _static_bools("selective_transform", "freeze_mask", freeze_mask)

    def labels(tree):
        mask = freeze_mask(tree) if is_mask_function(freeze_mask) else freeze_mask
        return jax.tree.map(lambda frozen: "freeze" if frozen else "train", mask)

    return _partition(
        {"train": optimizer, "freeze": set_to_zero()},
        labels,
        False,
        owner="selective_transform",
        name="freeze_mask",
        computed=computed,
    )
