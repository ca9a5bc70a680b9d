"""Checkpoint safety: bringing a saved optimizer state back, checked.

An optimizer state saved to disk rarely comes back as it left. ``pickle``
keeps it whole; ``flax.serialization.to_state_dict`` turns tuples into dicts
keyed ``'0'``, ``'1'``, … and NamedTuples into dicts keyed by field name; Orbax,
restoring without a target, turns tuples into lists, NamedTuples into dicts
and empty states into ``None``; arrays may come back as NumPy arrays. A state
restored into another optimizer (Adam's into AdaBelief's: same fields, other
meaning), or saved for other parameters, may be accepted silently.

:func:`restore_state` rebuilds the state from any of these forms into exactly
the structure, NamedTuple classes, shapes and dtypes that ``tx.init(params)``
would make (computed with :func:`jax.eval_shape`: nothing is allocated), or
raises ``ValueError`` naming the first difference by its path, e.g.
``state[0].mu['encoder']['w']``. :func:`validate_state` checks a state already
in memory without converting anything. :func:`state_signature` records the
state's classes as a string to save next to a checkpoint whose format loses
them.

Rules: values are never cast (a dtype difference is an error: a silent cast
would corrupt integer counters and change the numbers); a NumPy array becomes
a device array of the same dtype, a JAX array is kept as it is (its sharding
too); a typed PRNG key may come back as its ``uint32`` key data.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from ._core.base import GradientTransformation, OptState, Params
from ._core.placement import on_mesh
from .sharding import state_shardings

_HINTS = {
    "restore_state": "Was the checkpoint saved by another optimizer, or for other "
    "parameters?",
    "validate_state": "Was the state made by another optimizer, or for other "
    "parameters?",
}
_KEY_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")
_MAX_KEYS = 8


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _children(node: Any) -> tuple[list[Any], list[Any], Any]:
    """The key entries, children and one-level treedef of a container node."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node
    )
    return [p[0] for p, _ in flat], [c for _, c in flat], treedef


def _key_name(key: Any) -> Any:
    """The name a key entry has in a checkpoint's dict form (flax, Orbax)."""
    if isinstance(key, jax.tree_util.DictKey):
        return key.key
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    return str(key.key)  # FlattenedIndexKey


def _show_keys(keys: Any) -> str:
    keys = list(keys)
    more = f", … ({len(keys)} keys)" if len(keys) > _MAX_KEYS else ""
    return "[" + ", ".join(repr(k) for k in keys[:_MAX_KEYS]) + more + "]"


def _is_array(x: Any) -> bool:
    return (
        hasattr(x, "shape")
        and hasattr(x, "dtype")
        and not isinstance(x, (Mapping, list, tuple))
    )


def _spec(x: Any) -> str:
    return f"shape {tuple(x.shape)} {x.dtype}"


def _describe(x: Any) -> str:
    if x is None:
        return "None"
    if _is_namedtuple(x):
        return f"{type(x).__name__}({', '.join(x._fields)})"
    if _is_array(x):
        return f"an array of {_spec(x)}"
    if isinstance(x, Mapping):
        return f"a {type(x).__name__} with keys {_show_keys(x)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of length {len(x)}"
    text = repr(x)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(x).__name__} {text}"


def _is_key_dtype(dtype: Any) -> bool:
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _key_impl(dtype: Any) -> str:
    for name in _KEY_IMPLS:
        if jax.eval_shape(lambda n=name: jax.random.key(0, impl=n)).dtype == dtype:
            return name
    raise ValueError(f"restore_state: unknown PRNG key type {dtype}.")


class _Walk:
    """Walks the template (``init``'s abstract state) and the given state."""

    def __init__(self, owner: str, strict: bool):
        self.owner = owner
        self.strict = strict

    def fail(self, path: tuple, what: str) -> None:
        where = "state" + jax.tree_util.keystr(path)
        raise ValueError(f"{self.owner}: at {where}: {what}\n{_HINTS[self.owner]}")

    def node(self, t: Any, r: Any, path: tuple) -> Any:
        if t is None:
            if r is None or (not self.strict and _is_empty(r)):
                return None
            self.fail(path, f"expected None, got {_describe(r)}.")
        if isinstance(t, jax.ShapeDtypeStruct):
            return self.leaf(t, r, path)
        keys, ts, treedef = _children(t)
        rs = self.match(t, r, keys, path)
        out = [
            self.node(tc, rc, (*path, k))
            for k, tc, rc in zip(keys, ts, rs, strict=True)
        ]
        return treedef.unflatten(out)

    def match(self, t: Any, r: Any, keys: list, path: tuple) -> list:
        """The children of ``r`` in the order of ``t``'s, or an error."""
        if self.strict:
            return self.match_strict(t, r, keys, path)
        if not keys and (r is None or _is_empty(r)):
            return []
        if isinstance(r, Mapping) and not isinstance(t, Mapping):
            return self.by_name(t, r, keys, path)
        if isinstance(r, (list, tuple)) and not _is_namedtuple(r):
            if isinstance(t, (list, tuple)):
                if len(r) != len(t):
                    self.fail(path, f"expected {_describe(t)}, got {_describe(r)}.")
                return list(r)
        elif _same_class(t, r) or (isinstance(t, Mapping) and isinstance(r, Mapping)):
            return self.same_kind(t, r, keys, path)
        self.fail(path, f"expected {_describe(t)}, got {_describe(r)}.")
        return []  # unreachable

    def match_strict(self, t: Any, r: Any, keys: list, path: tuple) -> list:
        if type(r) is not type(t):
            got = _describe(r)
            if type(r).__name__ == type(t).__name__:
                got += f" from module {type(r).__module__}"
            self.fail(path, f"expected {_describe(t)}, got {got}.")
        return self.same_kind(t, r, keys, path)

    def same_kind(self, t: Any, r: Any, keys: list, path: tuple) -> list:
        if isinstance(t, Mapping):
            return self.by_name(t, r, keys, path)
        if isinstance(t, (list, tuple)):
            if len(r) != len(t):
                self.fail(path, f"expected {_describe(t)}, got {_describe(r)}.")
            return list(r)
        (_, rs, got), want = _children(r), _children(t)[2]
        if got != want:
            self.fail(path, f"expected the node {want}, got {got}.")
        return rs

    def by_name(self, t: Any, r: Mapping, keys: list, path: tuple) -> list:
        names = [_key_name(k) for k in keys]
        if _is_namedtuple(t) and set(r) == {str(i) for i in range(len(names))}:
            names = [str(i) for i in range(len(names))]
        picked, used = [], set()
        for name in names:
            if name not in r and not self.strict and str(name) in r:
                name = str(name)
            if name not in r:
                self.fail(
                    path,
                    f"missing key {name!r} (expected keys {_show_keys(names)}, "
                    f"got {_show_keys(r)}).",
                )
            picked.append(r[name])
            used.add(name)
        extra = [k for k in r if k not in used]
        if extra:
            self.fail(
                path,
                f"unexpected key {extra[0]!r} (expected keys {_show_keys(names)}, "
                f"got {_show_keys(r)}).",
            )
        return picked

    def leaf(self, t: jax.ShapeDtypeStruct, r: Any, path: tuple) -> Any:
        if not _is_array(r):
            self.fail(path, f"expected an array of {_spec(t)}, got {_describe(r)}.")
        if _is_key_dtype(t.dtype):
            return self.key_leaf(t, r, path)
        if tuple(r.shape) != t.shape or _is_key_dtype(r.dtype) or r.dtype != t.dtype:
            self.fail(path, f"expected {_spec(t)}, got {_spec(r)}.")
        if self.strict:
            return r
        x = jnp.asarray(r)  # a JAX array is returned as it is
        weak = bool(getattr(t, "weak_type", False))  # older jax: no such field
        if bool(getattr(x, "weak_type", False)) != weak:
            if not weak:
                x = jax.lax.convert_element_type(x, t.dtype)
            elif x.shape == () and jnp.asarray(x.item()).dtype == t.dtype:
                x = jnp.asarray(x.item())  # a weakly typed scalar, same value
        return x

    def key_leaf(self, t: jax.ShapeDtypeStruct, r: Any, path: tuple) -> Any:
        if tuple(r.shape) == t.shape and r.dtype == t.dtype:
            return r
        data = jax.eval_shape(jax.random.key_data, t)
        if (
            not self.strict
            and not _is_key_dtype(r.dtype)
            and r.dtype == data.dtype
            and tuple(r.shape) == data.shape
        ):
            return jax.random.wrap_key_data(jnp.asarray(r), impl=_key_impl(t.dtype))
        also = "" if self.strict else f" (or its key data, {_spec(data)})"
        self.fail(path, f"expected a PRNG key of {_spec(t)}{also}, got {_spec(r)}.")


def _is_empty(x: Any) -> bool:
    """A container holding nothing: ``{}``, ``[]``, ``()``, ``EmptyState()``."""
    return isinstance(x, (Mapping, list, tuple)) and len(x) == 0


def _same_class(t: Any, r: Any) -> bool:
    if type(r) is type(t):
        return True
    # A NamedTuple of the same name and fields from another library (a state
    # pickled from Optax's optimizer of the same name) has the same meaning.
    return (
        _is_namedtuple(t)
        and _is_namedtuple(r)
        and type(r).__name__ == type(t).__name__
        and r._fields == t._fields
    )


def _template(owner: str, tx: GradientTransformation, params: Params) -> Any:
    if not hasattr(tx, "init"):
        raise TypeError(
            f"{owner}: `tx` must be a gradient transformation (an object with "
            f"`init` and `update`), got {tx!r}."
        )
    return jax.eval_shape(tx.init, params)


def state_signature(state: OptState) -> str:
    """The classes of a state's NamedTuples, one ``path: Class(fields)`` a line.

    Saving a state through a format that turns NamedTuples into dicts (flax's
    ``to_state_dict``, Orbax without a target) loses the one thing that tells
    two optimizers with the same state layout apart: Adam's
    ``ScaleByAdamState(count, mu, nu)`` and AdaBelief's
    ``ScaleByBeliefState(count, mu, nu)``. Save this string next to the state
    and pass it to :func:`restore_state` as ``signature``. NamedTuples without
    fields (``EmptyState``, ``MaskedNode``) hold nothing and are left out.

    Args:
      state: an optimizer state (or its abstract form from ``jax.eval_shape``).

    Returns:
      A string, one line per NamedTuple with fields, in tree order.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> from gradtx import state_signature
      >>> print(state_signature(gradtx.adam(1e-3).init({"w": jnp.zeros(3)})))
      state[0]: ScaleByAdamState(count, mu, nu)
    """
    lines = []

    def visit(path, node):
        if node is None or _is_array(node):
            return
        if _is_namedtuple(node) and node._fields:
            where = "state" + jax.tree_util.keystr(path)
            lines.append(f"{where}: {_describe(node)}")
        flat, _ = jax.tree_util.tree_flatten_with_path(
            node, is_leaf=lambda x: x is not node
        )
        if len(flat) == 1 and flat[0][0] == ():
            return  # an object that is not a pytree node: a leaf
        for p, child in flat:
            visit(path + p, child)

    visit((), state)
    return "\n".join(lines)


def _check_signature(template: Any, signature: str) -> None:
    ours = state_signature(template).splitlines()
    theirs = signature.splitlines() if signature else []
    for i in range(max(len(ours), len(theirs))):
        want = ours[i] if i < len(ours) else None
        got = theirs[i] if i < len(theirs) else None
        if want == got:
            continue
        if want is not None and got is not None:
            w_path, _, w_cls = want.rpartition(": ")
            g_path, _, g_cls = got.rpartition(": ")
            if w_path == g_path:
                what = f"expected {w_cls}, the checkpoint has {g_cls}."
                hint = _HINTS["restore_state"]
                raise ValueError(f"restore_state: at {w_path}: {what}\n{hint}")
        raise ValueError(
            "restore_state: the checkpoint's `signature` differs from this "
            f"optimizer's: expected {want or 'nothing more'!r}, the checkpoint "
            f"has {got or 'nothing more'!r}.\n{_HINTS['restore_state']}"
        )


def restore_state(
    tx: GradientTransformation,
    params: Params,
    restored: Any,
    *,
    signature: str | None = None,
    shardings: Any = None,
) -> OptState:
    """Rebuilds a saved optimizer state for ``tx`` and ``params``, checked.

    ``restored`` may be the state itself (e.g. unpickled), its flax form
    (``flax.serialization.to_state_dict``, possibly through msgpack: tuples
    and NamedTuples as dicts keyed ``'0'``, ``'1'``, … or by field name), or
    Orbax's (restored without a target: tuples as lists, NamedTuples as dicts,
    empty states as ``None``), with NumPy or JAX arrays as leaves. The result
    has exactly the structure, NamedTuple classes, shapes and dtypes of
    ``tx.init(params)`` — computed abstractly, nothing is allocated — so
    training resumes bit-identically and a jitted step does not recompile.

    Nothing is cast: a leaf of another dtype is an error, since a silent cast
    would change the numbers (and corrupt integer counters). A NamedTuple of
    the same name and fields from another library is accepted (a state
    pickled from Optax's optimizer of the same name restores into gradtx's).
    A typed PRNG key may come back as its ``uint32`` key data (flax's msgpack
    cannot store typed keys: save ``jax.random.key_data(key)``).

    Where the state goes: onto ``shardings`` when given (a tree of shardings
    with the state's structure, e.g. :func:`gradtx.zero1_shardings`); else,
    when ``params`` are on a mesh of several devices, onto
    :func:`gradtx.state_shardings` (the placement ``init`` would give), so a
    sharded model's state never gathers on one device; else NumPy leaves
    land on the default device and JAX arrays stay where they are.

    Args:
      tx: the optimizer that will use the state.
      params: the parameters (arrays or ``jax.ShapeDtypeStruct``) it is for.
      restored: the state as loaded from the checkpoint.
      signature: optionally, :func:`state_signature` of the state when it was
        saved; checks that the classes lost by the format match ``tx``'s.
      shardings: optionally, where to put each state leaf (see above).

    Returns:
      The state, ready for ``tx.update``.

    Raises:
      ValueError: naming the first difference by its path (``state[0].mu['w']``)
        and both sides: another NamedTuple class, a missing or unexpected key,
        another length, a leaf of another shape or dtype, a leaf that is not
        an array, ``None`` where a state was expected.
      TypeError: when ``tx`` is not a gradient transformation.

    Examples:
      >>> import gradtx, jax.numpy as jnp, numpy as np
      >>> from gradtx import restore_state
      >>> params = {"w": jnp.zeros(3)}
      >>> state = gradtx.adam(1e-3).init(params)
      >>> as_orbax = [{"count": np.int32(5), "mu": {"w": np.ones(3, np.float32)},
      ...              "nu": {"w": np.ones(3, np.float32)}}, None]
      >>> state = restore_state(gradtx.adam(1e-3), params, as_orbax)
      >>> type(state[0]).__name__, int(state[0].count)
      ('ScaleByAdamState', 5)
      >>> restore_state(gradtx.adabelief(1e-3), params, state)
      Traceback (most recent call last):
      ...
      ValueError: restore_state: at state[0]: expected ScaleByBeliefState(count, mu, nu), got ScaleByAdamState(count, mu, nu).
      Was the checkpoint saved by another optimizer, or for other parameters?
    """  # noqa: E501
    template = _template("restore_state", tx, params)
    if signature is not None:
        _check_signature(template, signature)
    state = _Walk("restore_state", strict=False).node(template, restored, ())
    if shardings is None and any(on_mesh(x) for x in jax.tree.leaves(params)):
        shardings = state_shardings(tx, params)
    if shardings is None:
        return state
    try:
        return jax.device_put(state, shardings)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "restore_state: `shardings` must be a tree of shardings with the "
            f"structure of the state ({e})."
        ) from e


def validate_state(tx: GradientTransformation, params: Params, state: Any) -> None:
    """Checks that ``state`` is exactly what ``tx.init(params)`` would make.

    The same tree structure and NamedTuple classes, and leaves of the same
    shapes and dtypes; nothing is converted. Use it on a state in memory (it
    also works on traced states, inside ``jit``); a state read from a
    checkpoint goes through :func:`restore_state`, which also accepts the
    forms serialisation libraries give back.

    Args:
      tx: the optimizer.
      params: the parameters (arrays or ``jax.ShapeDtypeStruct``).
      state: the state to check.

    Raises:
      ValueError: naming the first difference by its path and both sides.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> from gradtx import validate_state
      >>> tx, params = gradtx.adam(1e-3), {"w": jnp.zeros(3)}
      >>> validate_state(tx, params, tx.init(params))
      >>> validate_state(tx, params, list(tx.init(params)))
      Traceback (most recent call last):
      ...
      ValueError: validate_state: at state: expected a tuple of length 2, got a list of length 2.
      Was the state made by another optimizer, or for other parameters?
    """  # noqa: E501
    template = _template("validate_state", tx, params)
    _Walk("validate_state", strict=True).node(template, state, ())
