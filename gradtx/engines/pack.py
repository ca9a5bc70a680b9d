"""Packed parameters: many small leaves stepped as a few large buffers.

Every leaf of a parameter tree costs an optimizer a few kernels per step, and
XLA a few kernels to compile; with thousands of small leaves (biases, norm
scales) that overhead dominates both. :func:`pack` moves the small leaves into
a few flat buffers per dtype (and label); large leaves and integer or boolean
leaves stay as they are. The result, a :class:`Packed`, is a pytree whose
leaves are those few buffers, so any optimizer, ``jax.grad`` and
``apply_updates`` see a handful of arrays, and the optimizer state built from
it (``init(packed)``) stays packed from one step to the next.

The model gets its tree back with :func:`unpack` *inside* the jitted loss::

    packed = gradtx.pack(params)
    def loss(packed, batch):
        return model_loss(gradtx.unpack(packed), batch)

Inside the loss each piece is a slice that XLA fuses into its consumer, and the
gradient comes back packed (the transpose of a split is one concatenation per
buffer), so the optimizer never carves thousands of outputs out of a buffer:
that is what makes a packed step fast to compile.

Elementwise transformations do the same arithmetic on a packed tree (the
results are bit-identical unless XLA fuses the two programs differently, see
``docs/packing.md``); reductions over all leaves (global norms) sum in another
order; transformations that treat each leaf as a whole (trust ratios,
factored moments, Muon, masks computed from the params) would treat a buffer
of many leaves as one. Step packed params through :func:`gradtx.packed`
(``packed(tx).init(packed_params)``), which refuses, when it is built, every
transformation that does not declare itself elementwise and hands packed
trees to it as they are; a transformation called directly on a packed tree is
not checked (no primitive knows that packing exists). :func:`refuse_packed`
stays for code of your own that wants to refuse packed trees itself.
"""

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._core import placement as _sharding
from .._core.masks import is_mask_function

DEFAULT_MIN_LEAF_SIZE = 16384
"""Leaves with fewer elements than this are packed by default (64 KiB in f32)."""

DEFAULT_MAX_LEAVES_PER_BUFFER = 64
"""At most this many leaves share a buffer (see :func:`pack`)."""

_MAX_BUFFER = np.iinfo(np.int32).max


@dataclasses.dataclass(frozen=True)
class _Key:
    """A key in the path of a :class:`Packed` child, printed as ``name``."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """Where one leaf of the original tree lives: child ``slot``, from ``offset``.

    ``offset`` is ``None`` for a leaf kept as its own child.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    slot: int
    offset: int | None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """Static description of a :class:`Packed` tree (its pytree aux data).

    Attributes:
      treedef: the structure of the original tree.
      leaves: one :class:`_Leaf` per leaf of the original tree, in order.
      children: for each child, ``(name, shape, dtype)``; packed buffers
        first, named ``<packed dtype>`` (``<packed dtype label>`` with labels).
    """

    treedef: Any
    leaves: tuple[_Leaf, ...]
    children: tuple[tuple[str, tuple[int, ...], np.dtype], ...]
    num_buffers: int

    def __post_init__(self):
        key = (self.treedef, self.leaves, self.children, self.num_buffers)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Layout) or self._hash != other._hash:
            return False
        return self._key == other._key

    def __getstate__(self):
        return (self.treedef, self.leaves, self.children, self.num_buffers)

    def __setstate__(self, state):
        for name, value in zip(
            ("treedef", "leaves", "children", "num_buffers"), state, strict=True
        ):
            object.__setattr__(self, name, value)
        self.__post_init__()

    @property
    def num_leaves(self) -> int:
        """The number of (non-``None``) leaves of the original tree."""
        return len(self.leaves)

    def pack(self, tree: Any) -> "Packed":
        """Packs ``tree`` (with the original structure and shapes) in this layout.

        For instance gradients computed on the unpacked tree, or a restored
        checkpoint of the unpacked params. Leaves are cast to their bucket's
        dtype; a tree of another structure or shape raises ``ValueError``.
        """
        try:
            leaves = self.treedef.flatten_up_to(tree)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"pack: the tree does not have the structure of the packed "
                f"tree.\n  expected: {self.treedef}\n  got: "
                f"{jax.tree.structure(tree)}"
            ) from e
        pieces: list[list[Any]] = [[] for _ in range(self.num_buffers)]
        children: list[Any] = [None] * len(self.children)
        concrete = not any(isinstance(x, jax.core.Tracer) for x in leaves)
        for spec, x in zip(self.leaves, leaves, strict=True):
            if jnp.shape(x) != spec.shape:
                raise ValueError(
                    f"pack: leaf {spec.path} has shape {jnp.shape(x)}; the "
                    f"layout expects {spec.shape}."
                )
            if spec.offset is None:
                children[spec.slot] = jnp.asarray(x, dtype=spec.dtype)
            elif concrete:  # on the host: no concatenation to compile
                pieces[spec.slot].append(np.ravel(np.asarray(x, dtype=spec.dtype)))
            else:
                pieces[spec.slot].append(jnp.ravel(jnp.asarray(x, dtype=spec.dtype)))
        cat = np.concatenate if concrete else jnp.concatenate
        for slot in range(self.num_buffers):
            _, shape, dtype = self.children[slot]
            flat = cat(pieces[slot]) if pieces[slot] else np.zeros(shape, dtype)
            children[slot] = jnp.asarray(flat)
        return Packed._make(self, children)


class Packed:
    """A parameter tree stored as a few flat buffers (see :func:`pack`).

    A pytree node: its children are the packed buffers (by dtype and label,
    at most ``max_leaves_per_buffer`` leaves each) followed by the leaves kept
    whole; its static data is the
    :class:`Layout`. ``jax.grad`` with respect to a ``Packed`` gives a
    ``Packed`` of gradients with the same layout, and ``jax.tree.map`` over
    ``Packed`` trees maps the buffers. Key paths name the children
    ``<packed float32>`` (the buffers) and by their original path (the leaves
    kept whole), so error messages point at them.
    """

    __slots__ = ("children", "layout")

    def __init__(self, *args, **kwargs):
        raise TypeError("build a Packed with gradtx.pack(params)")

    @classmethod
    def _make(cls, layout: Layout, children: Any) -> "Packed":
        obj = object.__new__(cls)
        object.__setattr__(obj, "layout", layout)
        object.__setattr__(obj, "children", tuple(children))
        return obj

    def __setattr__(self, name, value):
        raise AttributeError("Packed is immutable")

    def unpack(self) -> Any:
        """The original tree of arrays: see :func:`unpack`."""
        return unpack(self)

    @property
    def buffers(self) -> tuple[Any, ...]:
        """The packed buffers (without the leaves kept whole)."""
        return self.children[: self.layout.num_buffers]

    def __repr__(self) -> str:
        parts = []
        for (name, _, _), c in zip(self.layout.children, self.children, strict=True):
            shape = getattr(c, "shape", None)
            dtype = getattr(c, "dtype", None)
            desc = f"{dtype}{list(shape)}" if shape is not None else repr(c)
            parts.append(f"{name}: {desc}")
        return (
            f"Packed({self.layout.num_leaves} leaves in {len(parts)} children; "
            + ", ".join(parts)
            + ")"
        )

    def __reduce__(self):
        return (Packed._make, (self.layout, self.children))


def _flatten_with_keys(p: Packed):
    keys = [_Key(name) for name, _, _ in p.layout.children]
    return list(zip(keys, p.children, strict=True)), p.layout


def _flatten(p: Packed):
    return p.children, p.layout


def _unflatten(layout: Layout, children: Any) -> Packed:
    return Packed._make(layout, children)


jax.tree_util.register_pytree_with_keys(
    Packed, _flatten_with_keys, _unflatten, flatten_func=_flatten
)


def _label_leaves(labels: Any, params: Any, n: int) -> list[Hashable]:
    """One label per leaf of ``params`` from a prefix tree or a function."""
    if labels is None:
        return [None] * n
    if is_mask_function(labels):
        labels = labels(params)
    prefix = jax.tree.structure(labels)
    try:
        subtrees = prefix.flatten_up_to(params)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "pack: `labels` must be a prefix of the params' tree structure (or "
            f"a function returning one).\n  labels: {prefix}\n  params: "
            f"{jax.tree.structure(params)}"
        ) from e
    out: list[Hashable] = []
    for label, sub in zip(jax.tree.leaves(labels), subtrees, strict=True):
        out.extend([label] * len(jax.tree.leaves(sub)))
    return out


def _size(x: Any) -> int:
    return int(np.prod(jnp.shape(x), dtype=np.int64))


def _is_packable(x: Any, min_leaf_size: int) -> bool:
    # A leaf split across devices stays whole: a flat buffer of several
    # leaves cannot be split as each of them is.
    return (
        jnp.issubdtype(jnp.result_type(x), jnp.inexact)
        and _size(x) < min_leaf_size
        and not _sharding.is_split(x)
    )


def check_pack_options(min_leaf_size: Any, max_leaves_per_buffer: Any) -> None:
    """Raises for a ``min_leaf_size`` or ``max_leaves_per_buffer`` that is not
    an int >= 1 (:func:`pack`'s options)."""
    if isinstance(min_leaf_size, bool) or not isinstance(
        min_leaf_size, int | np.integer
    ):
        raise TypeError(f"pack: `min_leaf_size` must be an int; got {min_leaf_size!r}.")
    if min_leaf_size < 1:
        raise ValueError(f"pack: `min_leaf_size` must be >= 1; got {min_leaf_size}.")
    if isinstance(max_leaves_per_buffer, bool) or not isinstance(
        max_leaves_per_buffer, int | np.integer
    ):
        raise TypeError(
            "pack: `max_leaves_per_buffer` must be an int; got "
            f"{max_leaves_per_buffer!r}."
        )
    if max_leaves_per_buffer < 1:
        raise ValueError(
            f"pack: `max_leaves_per_buffer` must be >= 1; got {max_leaves_per_buffer}."
        )


def pack(
    params: Any,
    *,
    min_leaf_size: int = DEFAULT_MIN_LEAF_SIZE,
    max_leaves_per_buffer: int = DEFAULT_MAX_LEAVES_PER_BUFFER,
    labels: Any | Callable[[Any], Any] = None,
) -> Packed:
    """Packs the small float leaves of ``params`` into one flat buffer per dtype.

    Leaves with fewer than ``min_leaf_size`` elements and a float (or complex)
    dtype are raveled and concatenated, in tree order, into one buffer per
    dtype (and per label, and per set of devices); other leaves — large ones,
    integer and boolean ones, and ones split across devices (a flat buffer
    cannot be split as each of its leaves is; ``docs/sharding.md``) — stay
    as they are. ``None`` leaves are kept in the structure. Call it
    once, outside the training step; call :func:`unpack` inside the loss.

    Args:
      params: a tree of arrays.
      min_leaf_size: leaves with at least this many elements are not packed.
        ``1`` packs nothing; a very large value packs every float leaf.
      max_leaves_per_buffer: a buffer holds at most this many leaves; more
        leaves of one dtype go to further buffers (``<packed float32 #2>``).
        XLA:CPU compiles the split of one buffer into N pieces (and the
        concatenation of N gradients) in time that grows much faster than N:
        4,000 leaves in buffers of 64 compile in ~8 s, in one buffer in
        minutes. Dozens of buffers still cost the optimizer almost nothing.
      labels: optional tree prefix of ``params`` (or a function of ``params``
        returning one) of hashable labels; leaves with different labels never
        share a buffer, so a mask or a partition by those labels can act on
        the packed tree exactly (see :func:`pack_labels`).

    Returns:
      A :class:`Packed` holding the same values.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import pack, unpack
      >>> params = {"b": jnp.zeros(3), "s": jnp.ones(()), "w": jnp.ones((4, 4))}
      >>> packed = pack(params, min_leaf_size=10)
      >>> [x.shape for x in jax.tree.leaves(packed)]
      [(4,), (4, 4)]
      >>> unpack(packed)["s"].shape
      ()
    """
    check_pack_options(min_leaf_size, max_leaves_per_buffer)
    if contains_packed(params):
        raise TypeError("pack: `params` is already packed (holds a Packed node).")
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [jax.tree_util.keystr(k) or "<root>" for k, _ in flat]
    leaves = [x for _, x in flat]
    leaf_labels = _label_leaves(labels, params, len(leaves))
    open_slot: dict[tuple[Any, Hashable], int] = {}
    slots: list[tuple[Any, Hashable, int]] = []  # (dtype, label, n-th of key)
    sizes: list[int] = []
    counts: list[int] = []
    placed: list[tuple[int | None, int]] = []
    for x, label in zip(leaves, leaf_labels, strict=True):
        if not _is_packable(x, min_leaf_size):
            placed.append((None, 0))
            continue
        # Leaves on different devices never share a buffer either.
        key = (jnp.dtype(jnp.result_type(x)), label, _sharding.device_group(x))
        slot = open_slot.get(key)
        if slot is None or counts[slot] >= max_leaves_per_buffer:
            nth = 1 + sum(1 for d, lab, _ in slots if (d, lab) == key[:2])
            slot = open_slot[key] = len(slots)
            slots.append((*key[:2], nth))
            sizes.append(0)
            counts.append(0)
        placed.append((slot, sizes[slot]))
        sizes[slot] += _size(x)
        counts[slot] += 1
    if any(s > _MAX_BUFFER for s in sizes):
        raise ValueError(
            "pack: a packed buffer would exceed 2**31 - 1 elements; lower "
            "`min_leaf_size` or `max_leaves_per_buffer`."
        )
    children: list[tuple[str, tuple[int, ...], np.dtype]] = []
    for (dtype, label, nth), size in zip(slots, sizes, strict=True):
        name = f"<packed {dtype}" + ("" if label is None else f" {label}")
        name += ">" if nth == 1 else f" #{nth}>"
        children.append((name, (size,), dtype))
    specs = []
    for path, x, (slot, offset) in zip(paths, leaves, placed, strict=True):
        dtype = jnp.dtype(jnp.result_type(x))
        if slot is None:
            specs.append(_Leaf(path, tuple(jnp.shape(x)), dtype, len(children), None))
            children.append((path, tuple(jnp.shape(x)), dtype))
        else:
            specs.append(_Leaf(path, tuple(jnp.shape(x)), dtype, slot, offset))
    layout = Layout(treedef, tuple(specs), tuple(children), len(slots))
    return layout.pack(params)


def contains_packed(tree: Any) -> bool:
    is_packed = lambda x: isinstance(x, Packed)
    return any(is_packed(x) for x in jax.tree.leaves(tree, is_leaf=is_packed))


def refuse_packed(
    owner: str, *trees: Any, why: str, max_rank: int | None = None
) -> None:
    """Raises ``TypeError`` if any of ``trees`` holds a :class:`Packed` node.

    For code of your own that treats each leaf as a whole (a per-leaf norm, a
    matrix shape, a mask computed from the params) and may be handed a packed
    tree directly: it would silently treat a buffer of many leaves as one.
    gradtx's own transformations do not call it: :func:`gradtx.packed` refuses
    those that are not elementwise before they run.

    Args:
      owner: the transformation's name, for the message.
      *trees: the trees to inspect (``None`` is skipped).
      why: what the transformation does per leaf, for the message.
      max_rank: where the transformation is elementwise on leaves of rank
        ``<= max_rank`` (Muon and SM3 on vectors, ``centralize``), a packed
        tree whose packed leaves all have such ranks is accepted. ``None``
        refuses every packed tree.
    """
    is_packed = lambda x: isinstance(x, Packed)
    for tree in trees:
        if tree is None:
            continue
        for node in jax.tree.leaves(tree, is_leaf=is_packed):
            if not is_packed(node):
                continue
            inside = [s for s in node.layout.leaves if s.offset is not None]
            bad = [s for s in inside if max_rank is None or len(s.shape) > max_rank]
            if not bad:
                continue
            leaf = bad[0]
            allowed = (
                f"; leaves of rank <= {max_rank} may stay packed"
                if max_rank is not None
                else ""
            )
            raise TypeError(
                f"{owner}: the tree is packed (gradtx.pack) and {why}: on a "
                "packed buffer it would treat many leaves as one (leaf "
                f"{leaf.path} of shape {leaf.shape} is inside "
                f"{node.layout.children[leaf.slot][0]}). Use {owner} on unpacked "
                "params, or keep such leaves out of the buffers: `pack(params, "
                f"min_leaf_size=n)` packs only leaves smaller than n{allowed}."
            )


FUNCTION_OF_PACKED = (
    "its {what} is a function of the params, which would see whole buffers "
    "(pass a tree instead: gradtx.pack_labels(packed, fn))"
)


def packed_guard(
    owner: str, why: str, max_rank: int | None = None
) -> Callable[..., None]:
    """``refuse_packed`` bound to one transformation: ``guard(*trees)``."""
    return lambda *trees: refuse_packed(owner, *trees, why=why, max_rank=max_rank)


def _check_children(packed: Packed) -> None:
    layout = packed.layout
    for (name, shape, _), c in zip(layout.children, packed.children, strict=True):
        if not hasattr(c, "shape") or tuple(c.shape) != shape:
            got = list(c.shape) if hasattr(c, "shape") else repr(c)
            raise ValueError(
                f"unpack: child {name} has shape {got}; the layout expects "
                f"{list(shape)}. A Packed rebuilt by a tree function that changed "
                "shapes (or holds non-arrays) cannot be unpacked."
            )


def _pieces(buf: jax.Array, sizes: tuple[int, ...]) -> tuple[jax.Array, ...]:
    """``buf`` cut into consecutive pieces of ``sizes`` (which cover it).

    ``lax.split`` is one primitive: its transpose (what ``jax.grad`` runs) is
    a single concatenation, and its tangent another split.
    """
    if len(sizes) == 1:
        return (buf,)
    return tuple(lax.split(buf, sizes))


def unpack(packed: Packed) -> Any:
    """The original tree of ``packed``: slices of its buffers, reshaped.

    Call it inside the jitted function that uses the parameters (the loss,
    the model's forward pass): the slices fuse into their consumers, and the
    gradient with respect to ``packed`` is one concatenation per buffer. The
    values, shapes and dtypes are exactly those given to :func:`pack` (a tree
    mapped from ``packed`` — a moment in another dtype, ``float0`` gradients of
    integer leaves — unpacks with its own dtypes).

    Args:
      packed: a :class:`Packed` (params, gradients, or a state tree).

    Returns:
      A tree with the structure of the packed params.
    """
    if not isinstance(packed, Packed):
        raise TypeError(f"unpack: expected a Packed (gradtx.pack); got {type(packed)}.")
    _check_children(packed)
    layout = packed.layout
    members: list[list[_Leaf]] = [[] for _ in range(layout.num_buffers)]
    for spec in layout.leaves:
        if spec.offset is not None:
            members[spec.slot].append(spec)
    pieces: dict[int, jax.Array] = {}
    for slot, specs in enumerate(members):
        sizes = tuple(s.size for s in specs)
        for k, piece in enumerate(_pieces(packed.children[slot], sizes)):
            pieces[id(specs[k])] = piece
    out = []
    for spec in layout.leaves:
        if spec.offset is None:
            out.append(packed.children[spec.slot])
        else:
            out.append(jnp.reshape(pieces[id(spec)], spec.shape))
    return layout.treedef.unflatten(out)


def pack_labels(packed: Packed, labels: Any | Callable[[Any], Any]) -> Packed:
    """Per-leaf labels (or mask bools) turned into a tree shaped like ``packed``.

    ``gradtx.masked`` and ``gradtx.partition`` take one label per leaf of the
    tree they are given; on a packed tree that is one per buffer. This maps
    labels of the original leaves onto the buffers, and raises if a buffer
    holds leaves with different labels (pack with ``labels=`` to keep them
    apart).

    Args:
      packed: the packed params.
      labels: a tree prefix of the original params, or a function from the
        original params (unpacked) to one.

    Returns:
      A :class:`Packed` with the layout of ``packed`` whose children are labels.
    """
    layout = packed.layout
    if is_mask_function(labels):
        tree = unpack(packed)
    else:
        tree = layout.treedef.unflatten([0] * layout.num_leaves)
    leaf_labels = _label_leaves(labels, tree, layout.num_leaves)
    children: list[Any] = [_UNSET] * len(layout.children)
    for spec, label in zip(layout.leaves, leaf_labels, strict=True):
        current = children[spec.slot]
        if current is not _UNSET and current != label:
            raise ValueError(
                f"pack_labels: buffer {layout.children[spec.slot][0]} holds leaves "
                f"labelled {current!r} and {label!r} (leaf {spec.path}); pack with "
                "`labels=` so that differently labelled leaves get their own "
                "buffers."
            )
        children[spec.slot] = label
    children = [False if c is _UNSET else c for c in children]  # empty buffers
    return Packed._make(layout, children)


_UNSET = object()


def packed_value_and_grad(
    fun: Callable[..., Any], *, has_aux: bool = False
) -> Callable[..., Any]:
    """``jax.value_and_grad`` of ``fun(params, …)`` taken with respect to a Packed.

    ``fun`` takes the structured params as its first argument; the returned
    function takes the :class:`Packed` instead, unpacks it inside (so call it
    inside ``jit``) and returns ``(value, grads)`` with ``grads`` packed.

    Args:
      fun: ``fun(params, *args, **kwargs)``, a scalar loss of the structured
        (unpacked) params.
      has_aux: ``fun`` returns ``(loss, aux)``, as in ``jax.value_and_grad``;
        the value is then ``(loss, aux)``.

    Returns:
      ``f(packed, *args, **kwargs) -> (value, grads)``, ``grads`` a
      :class:`Packed` laid out as ``packed``.
    """
    wrapped = lambda packed, *args, **kwargs: fun(unpack(packed), *args, **kwargs)
    return jax.value_and_grad(wrapped, has_aux=has_aux)
