"""Finding, replacing and mapping values inside optimizer states.

Optimizer states are nests of NamedTuples, dicts and tuples. These helpers
address their parts by name: ``get(state, "learning_rate")`` finds the field or
dict key of that name at any depth; ``set`` returns a copy with it replaced;
``map_params`` applies a function to the parts of a state that mirror the
params (momenta, second moments, …) and leaves counters alone.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from .base import OptState, Params

KeyPath = tuple[Any, ...]
Filtering = Callable[[KeyPath, Any], bool] | None


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A path entry for the field ``name`` of a NamedTuple of class ``tuple_name``."""

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


@jax.tree_util.register_pytree_node_class
class ParamsPlaceholder:
    """Stands in for the params when an ``init`` is traced to find their mirrors."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux, children
        return cls()


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]]:
    """The immediate children of a container node, with their paths."""
    if _is_namedtuple(node):
        cls = type(node).__name__
        return [
            ((*path, NamedTupleKey(cls, f)), getattr(node, f)) for f in node._fields
        ]
    if isinstance(node, dict):
        return [((*path, jax.tree_util.DictKey(k)), v) for k, v in node.items()]
    flat, _ = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node
    )
    if len(flat) == 1 and flat[0][1] is node:
        return []  # a leaf
    return [(path + p, child) for p, child in flat]


def _has_key(node: Any, key: Any) -> bool:
    if _is_namedtuple(node):
        return key in node._fields or type(node).__name__ == key
    return isinstance(node, dict) and key in node


def _found(path: KeyPath, node: Any, key: Any) -> tuple[KeyPath, Any]:
    if _is_namedtuple(node):
        if type(node).__name__ == key:
            return path, node
        return (*path, NamedTupleKey(type(node).__name__, key)), getattr(node, key)
    return (*path, jax.tree_util.DictKey(key)), node[key]


def _topmost(path: KeyPath, node: Any, key: Any) -> list[tuple[KeyPath, Any]]:
    """The highest nodes holding ``key``, in tree order."""
    if _has_key(node, key):
        return [(path, node)]
    out = []
    for child_path, child in _children(path, node):
        out += _topmost(child_path, child, key)
    return out


def _find(path: KeyPath, node: Any, key: Any) -> list[tuple[KeyPath, Any]]:
    holders = _topmost(path, node, key)
    found = [_found(p, n, key) for p, n in holders]
    for p, n in holders:
        for child_path, child in _children(p, n):
            found += _find(child_path, child, key)
    return found


def get_all_with_path(
    tree: Any, key: Any, filtering: Filtering = None
) -> list[tuple[KeyPath, Any]]:
    """Every value stored under ``key`` (a field, dict key or NamedTuple name).

    Args:
      tree: an optimizer state (or any pytree).
      key: the name to look for.
      filtering: optional ``(path, value) -> bool`` to keep only some matches.

    Returns:
      A list of ``(path, value)`` pairs.
    """
    found = _find((), tree, key)
    return [(p, v) for p, v in found if filtering is None or filtering(p, v)]


def get(tree: Any, key: Any, default: Any = None, filtering: Filtering = None) -> Any:
    """The single value stored under ``key``; ``default`` when there is none.

    Raises:
      KeyError: when several values match (narrow them with ``filtering``).

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> state = gradtx.adam(1e-3).init(jnp.zeros(2))
      >>> int(gradtx.tree.get(state, "count"))
      0
    """
    found = get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = [jax.tree_util.keystr(p) for p, _ in found]
        raise KeyError(f"get: several values match {key!r}, at {paths}.")
    return found[0][1] if found else default


def _replace(path: KeyPath, node: Any, kwargs: dict, filtering: Filtering) -> Any:
    ok = lambda p, v: filtering is None or filtering(p, v)
    if _is_namedtuple(node) and type(node).__name__ in kwargs and ok(path, node):
        return kwargs[type(node).__name__]
    children = _children(path, node)
    if not children:
        return node
    new = []
    for (child_path, child), name in zip(children, _child_names(node), strict=True):
        if name is not None and name in kwargs and ok(child_path, child):
            new.append(kwargs[name])
        else:
            new.append(_replace(child_path, child, kwargs, filtering))
    if _is_namedtuple(node):
        return type(node)(*new)
    if isinstance(node, dict):
        return type(node)(zip(node.keys(), new, strict=True))
    treedef = jax.tree.structure(node, is_leaf=lambda x: x is not node)
    return treedef.unflatten(new)


def _child_names(node: Any) -> list[Any]:
    if _is_namedtuple(node):
        return list(node._fields)
    if isinstance(node, dict):
        return list(node.keys())
    return [None] * len(_children((), node))


def set(tree: Any, filtering: Filtering = None, /, **kwargs: Any) -> Any:
    """A copy of ``tree`` with the values under each keyword's name replaced.

    Raises:
      KeyError: when a name matches nothing.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> state = gradtx.adam(1e-3).init(jnp.zeros(2))
      >>> state = gradtx.tree.set(state, count=jnp.int32(10))
      >>> int(gradtx.tree.get(state, "count"))
      10
    """
    for key in kwargs:
        if not get_all_with_path(tree, key, filtering):
            raise KeyError(f"set: nothing in the tree matches {key!r}.")
    return _replace((), tree, kwargs, filtering)


def map_params(
    initable: Callable[[Params], OptState] | Any,
    f: Callable[..., Any],
    state: OptState,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> OptState:
    """Applies ``f`` to the parts of ``state`` that mirror the params.

    ``initable`` (a transformation, or its ``init``) is traced once with a
    placeholder for the params, which shows which subtrees of the state are
    built from the params. ``f`` maps their leaves (with matching leaves of
    ``rest``); other leaves go through ``transform_non_params`` if given.

    Args:
      initable: a :class:`GradientTransformation`, or its ``init`` function.
      f: ``f(leaf, *rest_leaves) -> leaf``, applied to each leaf of the
        params-shaped parts of ``state``.
      state: the state made by ``initable``'s ``init``.
      rest: more trees shaped like the params (as in Optax); ``f`` takes
        their matching leaves after the state's.
      transform_non_params: a function of one leaf, applied to every other
        leaf of ``state`` (default: those are left unchanged).
      is_leaf: passed to ``jax.tree.map`` over the params-shaped parts.

    Returns:
      ``state`` with the mapped leaves, of the same structure.

    Examples:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> opt = gradtx.adam(1e-3)
      >>> state = opt.init({"w": jnp.ones(3)})
      >>> half = gradtx.tree.map_params(opt, lambda x: x.astype(jnp.bfloat16), state)
      >>> half[0].mu["w"].dtype, half[0].count.dtype
      (dtype(bfloat16), dtype('int32'))
    """
    init = initable.init if hasattr(initable, "init") else initable
    skeleton = init(ParamsPlaceholder())

    def visit(marker, value):
        if isinstance(marker, ParamsPlaceholder):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        if transform_non_params is not None:
            return transform_non_params(value)
        return value

    return jax.tree.map(
        visit, skeleton, state, is_leaf=lambda x: isinstance(x, ParamsPlaceholder)
    )
