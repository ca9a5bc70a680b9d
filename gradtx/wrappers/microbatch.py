"""Microbatching: evaluate a function on slices of a batch, one after another.

``microbatch(fun, argnums, microbatch_size)`` returns a function with ``fun``'s
signature that splits the batch arguments into ``batch / microbatch_size``
microbatches, evaluates ``fun`` on each inside one ``lax.fori_loop`` (so only
one microbatch's intermediates are alive at a time) and combines the outputs
with an :class:`Accumulator` (sum, mean, running mean or concatenation).

Microbatch ``i`` holds the rows ``i, i + n, i + 2n, …`` of the batch
(``n`` the number of microbatches), as in Optax: a batch sharded in contiguous
blocks then keeps each microbatch spread over every device.
"""

import dataclasses
import enum
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core import validation as _validate

__all__ = ["AccumulationType", "Accumulator", "microbatch", "reshape_batch_axis"]

_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
_OWNER = "microbatch"


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How the outputs of the microbatches are combined into one result.

    For outputs ``y_0, …, y_{n-1}`` the result is::

        carry = init(shape_dtype_of(y_0))
        for i in range(n):
            carry = update(carry, y_i, i)
        result = finalize(carry)

    A custom accumulator receives whole subtrees (the part of ``fun``'s output
    it is placed at); the built-in ones (:class:`AccumulationType`) act leaf by
    leaf.

    Attributes:
      init: ``init(shapes) -> carry`` from the shape/dtype structs of one
        microbatch's output.
      update: ``update(carry, value, index) -> carry``.
      finalize: ``finalize(carry) -> result``.
      aggregate: ``aggregate(values) -> value``, reducing a leading
        per-example axis in the same way (used by ``micro_vmap``-style code).
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


class AccumulationType(enum.Enum):
    """The built-in ways of combining microbatch outputs."""

    MEAN = enum.auto()
    """The sum divided by the number of microbatches (floating outputs)."""
    SUM = enum.auto()
    """The sum over microbatches."""
    RUNNING_MEAN = enum.auto()
    """The mean over the microbatches actually run (``num_real_microbatches``)."""
    CONCAT = enum.auto()
    """The outputs concatenated along axis 0, rows in the original batch order."""


def _floating(leaf: Any, kind: str) -> None:
    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
        raise ValueError(
            f"{_OWNER}: `accumulator` {kind} needs floating outputs, got an output "
            f"of dtype {leaf.dtype}; use SUM or CONCAT for integer outputs."
        )


class _Total(NamedTuple):
    """A running total kept in float32 for low-precision outputs.

    ``like`` is an empty array of the output's dtype, so ``finalize`` can cast
    back without any state outside the carry.
    """

    total: jax.Array
    like: jax.Array


def _sum_like(n: int, kind: str) -> Accumulator:
    """SUM, MEAN (the total divided by ``n``) or RUNNING_MEAN, leaf by leaf."""

    def init(leaf):
        if kind != "SUM":
            _floating(leaf, kind)
        dtype = leaf.dtype
        work = jnp.float32 if jnp.dtype(dtype) in _LOW_PRECISION else dtype
        return _Total(jnp.zeros(leaf.shape, work), jnp.zeros((0,), dtype))

    def update(carry, value, i):
        total, value = carry.total, value.astype(carry.total.dtype)
        if kind != "RUNNING_MEAN":
            return carry._replace(total=total + value)
        i = jnp.asarray(i)
        w = i.astype(total.dtype) / (i + 1).astype(total.dtype)
        return carry._replace(total=total * w + value * (1 - w))

    def finalize(carry):
        out = carry.total / n if kind == "MEAN" else carry.total
        return out.astype(carry.like.dtype)

    is_total = lambda x: isinstance(x, _Total)
    reduce = jnp.sum if kind == "SUM" else jnp.mean
    return Accumulator(
        lambda shapes: jax.tree.map(init, shapes),
        lambda carry, value, i: jax.tree.map(
            lambda v, c: update(c, v, i), value, carry, is_leaf=is_total
        ),
        lambda carry: jax.tree.map(finalize, carry, is_leaf=is_total),
        lambda values: jax.tree.map(lambda v: reduce(v, axis=0), values),
    )


def _concat(n: int) -> Accumulator:
    def init(leaf):
        return jnp.zeros((n, *leaf.shape), leaf.dtype)

    def update(carry, value, i):
        return lax.dynamic_update_index_in_dim(carry, value, i, 0)

    def finalize(carry):
        # carry[i, j] is row i + j·n of the batch: interleave back.
        if carry.ndim < 2:
            return carry.reshape(-1)
        return jnp.swapaxes(carry, 0, 1).reshape(-1, *carry.shape[2:])

    return Accumulator(
        lambda shapes: jax.tree.map(init, shapes),
        lambda carry, value, i: jax.tree.map(
            lambda c, v: update(c, v, i), carry, value
        ),
        lambda carry: jax.tree.map(finalize, carry),
        lambda values: values,
    )


def resolve_accumulator(accumulator: Any, n: int) -> Accumulator:
    """A pytree (prefix of the output) of accumulators/types as one Accumulator."""

    def one(acc):
        if all(hasattr(acc, a) for a in ("init", "update", "finalize", "aggregate")):
            return acc  # an Accumulator, or any object shaped like one
        name = acc.name if isinstance(acc, enum.Enum) else None
        if name in ("SUM", "MEAN", "RUNNING_MEAN"):
            return _sum_like(n, name)
        if name == "CONCAT":
            return _concat(n)
        raise ValueError(
            f"{_OWNER}: `accumulator` leaves must be Accumulator or "
            f"AccumulationType values, got {acc!r}."
        )

    accs = jax.tree.map(one, accumulator)

    def over(method):
        def run(tree, *rest):
            try:
                return jax.tree.map(
                    lambda a, t: getattr(a, method)(t, *rest), accs, tree
                )
            except ValueError as e:
                if "accumulator" in str(e):
                    raise
                raise ValueError(
                    f"{_OWNER}: `accumulator` must be a pytree prefix of fun's "
                    f"output: {e}"
                ) from e

        return run

    def update(carry, value, i):
        return jax.tree.map(lambda a, c, v: a.update(c, v, i), accs, carry, value)

    return Accumulator(over("init"), update, over("finalize"), over("aggregate"))


def _split(x: Any, axis: int, size: int) -> jax.Array:
    """Split axis ``axis`` (n·size rows) into (size, n): row r -> (r // n, r % n)."""
    x = jnp.asarray(x)
    return x.reshape(*x.shape[:axis], size, -1, *x.shape[axis + 1 :])


def reshape_batch_axis(tree: Any, microbatch_size: int, axis: int = 0) -> Any:
    """Splits the batch axis of every leaf into (microbatches, microbatch_size).

    A leaf whose axis ``axis`` has ``B = n · microbatch_size`` rows gets, in
    its place, two axes ``(n, microbatch_size)`` where entry ``[i, j]`` is row
    ``i + j·n`` of the batch: microbatch ``i`` holds the rows
    ``i, i + n, i + 2n, …`` (Optax's column-major split, the one
    :func:`microbatch` uses), so a batch sharded in contiguous blocks keeps
    each microbatch spread over every device.

    Unlike Optax, a ``microbatch_size`` that does not divide the batch raises
    ``ValueError`` naming both, and explicit-sharding meshes get no special
    ``out_sharding`` handling.

    Args:
      tree: a pytree of arrays, each with a batch axis ``axis``.
      microbatch_size: the rows per microbatch (>= 1, divides the batch).
      axis: the batch axis (negative counts from the end).

    Returns:
      The pytree with each leaf's batch axis split in two.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.microbatching import reshape_batch_axis
      >>> reshape_batch_axis(jnp.arange(6), 2).tolist()
      [[0, 3], [1, 4], [2, 5]]
    """
    owner = "reshape_batch_axis"
    _validate.integer(owner, "microbatch_size", microbatch_size, low=1)
    size = int(microbatch_size)

    def leaf(x):
        x = jnp.asarray(x)
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(
                f"{owner}: `axis` {axis} is out of range for a leaf of shape {x.shape}."
            )
        ax = axis % x.ndim
        if x.shape[ax] % size:
            raise ValueError(
                f"{owner}: `microbatch_size` {size} must divide the batch axis "
                f"{ax} of a leaf of shape {x.shape}."
            )
        return jnp.swapaxes(_split(x, ax, size), ax, ax + 1)

    return jax.tree.map(leaf, tree)


def microbatch(
    fun: Callable[..., Any],
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: Accumulator | AccumulationType | Any = AccumulationType.SUM,
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., Any]:
    """``fun`` evaluated one microbatch at a time, the outputs combined.

    With ``n = batch / microbatch_size`` microbatches and the default SUM,
    ``microbatch(fun, 0, s)(x)`` is ``Σ_i fun(x[i::n])``, computed in one
    sequential loop, so peak memory is that of one microbatch. MEAN divides by
    ``n``, RUNNING_MEAN by the number of microbatches run, and CONCAT
    concatenates along axis 0 in the original row order (so a per-example
    function gives the same result as on the full batch). ``accumulator`` may
    also be a pytree prefix of ``fun``'s output, with a strategy per subtree.

    Unlike Optax: the configuration (``microbatch_size``, ``argnums``,
    ``argnames``, ``in_axes``, ``num_real_microbatches``) is checked when built
    and at the call, naming the argument (Optax silently truncates mismatched
    ``in_axes`` and, for ``num_real_microbatches > n``, feeds NaN-filled
    microbatches); a traced ``num_real_microbatches`` is clamped to ``[0, n]``;
    negative ``in_axes`` count from the end; bfloat16/float16 outputs are
    summed in float32 and cast back; explicit-sharding meshes get no special
    ``out_sharding`` handling.

    Args:
      fun: the function.
      argnums: the positional argument(s) that carry a batch axis (each a
        pytree whose leaves all have it).
      microbatch_size: the rows per microbatch; must divide the batch size.
        ``None`` returns ``fun`` itself.
      accumulator: an :class:`AccumulationType`, an :class:`Accumulator`, or
        a pytree prefix of the output with those at its leaves.
      argnames: keyword argument(s) that carry a batch axis.
      in_axes: the batch axis, one for all or one per entry of
        ``argnums + argnames``.
      num_real_microbatches: run only the first this many microbatches (a
        traced value avoids recompiling for a smaller batch).

    Returns:
      A function with ``fun``'s arguments returning the combined output.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.microbatching import AccumulationType
      >>> from gradtx import microbatch
      >>> fun = lambda x: (x * 2, jnp.sum(x))
      >>> acc = (AccumulationType.CONCAT, AccumulationType.SUM)
      >>> ys, total = microbatch(fun, 0, 2, acc)(jnp.arange(6.0))
      >>> ys.tolist(), float(total)
      ([0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 15.0)
    """
    if microbatch_size is None:
        return fun
    _validate.integer(_OWNER, "microbatch_size", microbatch_size, low=1)
    size = int(microbatch_size)
    argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    argnames = (argnames,) if isinstance(argnames, str) else tuple(argnames)
    for i in argnums:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{_OWNER}: `argnums` must hold ints, got {i!r}.")
    n_batched = len(argnums) + len(argnames)
    if isinstance(in_axes, int):
        in_axes = (in_axes,) * n_batched
    in_axes = tuple(in_axes)
    if len(in_axes) != n_batched:
        raise ValueError(
            f"{_OWNER}: `in_axes` must have one entry per batch argument "
            f"(argnums + argnames: {n_batched}), got {len(in_axes)}."
        )
    if num_real_microbatches is not None and not isinstance(
        num_real_microbatches, jax.core.Tracer
    ):
        value = num_real_microbatches
        value = value.item() if hasattr(value, "item") else value
        _validate.integer(_OWNER, "num_real_microbatches", value)

    def microbatched(*args, **kwargs):
        args, kwargs = list(args), dict(kwargs)
        slots = []  # (container, key, axis)
        for i, ax in zip(argnums, in_axes, strict=False):
            if not -len(args) <= i < len(args):
                raise ValueError(
                    f"{_OWNER}: `argnums` has {i} but the call got {len(args)} "
                    "positional argument(s)."
                )
            slots.append((args, i, ax))
        for name, ax in zip(argnames, in_axes[len(argnums) :], strict=True):
            if name not in kwargs:
                raise ValueError(f"{_OWNER}: `argnames` has {name!r}, not passed.")
            slots.append((kwargs, name, ax))
        sizes, axes = set(), []
        for box, key, ax in slots:
            leaf_axes = []
            for path, leaf in jax.tree_util.tree_leaves_with_path(box[key]):
                nd = jnp.ndim(leaf)
                if not -nd <= ax < nd:
                    raise ValueError(
                        f"{_OWNER}: `in_axes` {ax} is out of range for batch "
                        f"argument {key!r}{jax.tree_util.keystr(path)} of shape "
                        f"{jnp.shape(leaf)}."
                    )
                leaf_axes.append(ax % nd)
                sizes.add(jnp.shape(leaf)[ax % nd])
            axes.append(leaf_axes)
        if len(sizes) != 1:
            raise ValueError(
                f"{_OWNER}: the batch arguments must share one batch size, got "
                f"{sorted(sizes)}."
            )
        batch = sizes.pop()
        if batch % size:
            raise ValueError(
                f"{_OWNER}: `microbatch_size` {size} must divide the batch size "
                f"{batch}."
            )
        n = batch // size
        split = []
        for (box, key, _), leaf_axes in zip(slots, axes, strict=True):
            leaves, treedef = jax.tree.flatten(box[key])
            leaves = [
                _split(x, a, size) for x, a in zip(leaves, leaf_axes, strict=True)
            ]
            split.append((treedef, leaves, leaf_axes))

        def call(index):
            a, k = list(args), dict(kwargs)
            for (box, key, _), (treedef, leaves, leaf_axes) in zip(
                slots, split, strict=True
            ):
                taken = [
                    lax.dynamic_index_in_dim(x, index, ax + 1, keepdims=False)
                    for x, ax in zip(leaves, leaf_axes, strict=True)
                ]
                (a if box is args else k)[key] = treedef.unflatten(taken)
            return fun(*a, **k)

        acc = resolve_accumulator(accumulator, n)
        carry = acc.init(jax.eval_shape(call, 0))
        if num_real_microbatches is None:
            stop = n
        elif isinstance(num_real_microbatches, jax.core.Tracer):
            stop = jnp.clip(num_real_microbatches, 0, n)
        elif int(num_real_microbatches) > n:
            raise ValueError(
                f"{_OWNER}: `num_real_microbatches` must be <= the number of "
                f"microbatches {n}, got {int(num_real_microbatches)}."
            )
        else:
            stop = int(num_real_microbatches)
        body = lambda i, c: acc.update(c, call(i), i)
        return acc.finalize(lax.fori_loop(0, stop, body, carry))

    return microbatched
