"""Optimizer state that follows the parameters across devices.

gradtx adds no distribution layer of its own: a step is an ordinary function,
and ``jax.jit`` with ``NamedSharding`` (or ``shard_map``) distributes it. What
the library owes that machinery is state placed like the parameters, so the
compiled step moves nothing it does not have to:

* every state leaf made *like* a parameter leaf (a moment, an accumulator) is
  given that leaf's sharding at ``init`` — eagerly, by building it there; under
  ``jit`` by tying it to the parameter with ``shard_alike``, so the compiler's
  sharding propagation (Auto axes) or the types (Explicit axes) place it;
* :func:`gradtx.state_shardings` gives the sharding of every state leaf without
  allocating (``init`` evaluated abstractly with Explicit axes), for
  ``jax.jit(..., out_shardings=...)`` and checkpoint restores;
* maths that must see whole arrays runs in :func:`auto_axes` regions under
  Explicit axes, where JAX would refuse it;
* :func:`gradtx.zero1_shardings` splits the state of replicated parameters across a
  data-parallel mesh axis (ZeRO stage 1): each device keeps ``1/n`` of the
  moments while the parameters stay whole.

See ``docs/sharding.md``.
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

try:  # typed mesh axes (Auto / Explicit / Manual): jax >= 0.5
    from jax.sharding import AbstractMesh, AxisType
except ImportError:  # pragma: no cover - older jax: every axis is Auto
    AbstractMesh = AxisType = None


def _abstract_mesh(x: Any) -> Any:
    """The mesh in ``x``'s type, or ``None`` when it has none (one device)."""
    try:
        mesh = jax.typeof(x).sharding.mesh
        manual = AxisType is not None and AxisType.Manual in mesh.axis_types
        if mesh.empty or manual:
            return None  # single device, or inside shard_map: nothing to follow
    except AttributeError:  # an older jax, or an aval without a sharding
        return None
    return mesh


def on_mesh(x: Any) -> bool:
    """Whether ``x`` lives on several devices (an array, or an abstract value
    placed there), or is traced with a mesh in its type (under ``jit`` on a
    mesh, or inside ``shard_map``)."""
    if isinstance(x, jax.core.Tracer):
        try:
            return not jax.typeof(x).sharding.mesh.empty
        except AttributeError:
            return False
    sharding = getattr(x, "sharding", None)  # an array or a ShapeDtypeStruct
    return len(getattr(sharding, "device_set", ())) > 1


def follow(new: Any, like: Any, *, tie: bool = True) -> Any:
    """``new``, an array of ``like``'s shape, placed as ``like`` is.

    A concrete ``like`` has a sharding: ``new`` is put there. A traced one on
    Explicit axes carries its sharding in its type: ``new`` is resharded to it
    if it differs. A traced one on Auto axes has a sharding only once the
    compiler has chosen it, so the two are tied with ``shard_alike`` (unless
    ``tie=False``: new state from old state is left to propagation, which a
    tie could make reshard the old state on entry). On one device (no mesh
    in the type) nothing is added to the program.
    """
    if not isinstance(like, jax.Array) or jnp.shape(new) != like.shape:
        return new
    if isinstance(like, jax.core.Tracer):
        if _abstract_mesh(like) is None:
            return new
        known = _known_sharding(like)
        if known is not None:
            if jax.typeof(new).sharding.spec == known.spec:
                return new
            return jax.sharding.reshard(new, known)
        if not tie:
            return new
        from jax.experimental.shard_alike import shard_alike

        return shard_alike(like, new)[1]
    if not _placed(like) or isinstance(new, jax.core.Tracer):
        return new
    if new.sharding == like.sharding:
        return new
    return jax.device_put(new, like.sharding)


def whole(x: Any) -> Any:
    """``x`` gathered whole on every device of its mesh, inside a traced step.

    For the few operations that join differently split leaves into one array
    (the concatenation in the overflow rescue of the norms): left to
    propagation, the joined array's split spreads back through the program to
    leaves placed otherwise, and the step returns parameters and moments moved
    to it. Gathering small leaves where they are joined keeps every leaf where
    it came in. Outside a mesh (one device, or inside ``shard_map``) ``x`` is
    returned as it is.
    """
    mesh = _abstract_mesh(x) if isinstance(x, jax.core.Tracer) else None
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec()))


def rows_only(x: Any) -> Any:
    """``x`` (traced on a mesh) split at most along its first dimension.

    Blocks of a flattened leaf (8-bit moments) are split by rows where the
    leaf's leading dimension is (:func:`zeros_derived`); left to
    propagation, a leaf whose slices do not hold whole blocks would have its
    blocks' lanes split instead, and the step would return them placed
    otherwise than ``init`` did.
    """
    mesh = _abstract_mesh(x) if isinstance(x, jax.core.Tracer) else None
    if mesh is None or explicit_mesh(x) is not None or jnp.ndim(x) < 2:
        return x
    spec = PartitionSpec(PartitionSpec.UNCONSTRAINED, *([None] * (jnp.ndim(x) - 1)))
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def keep_tree(new: Any, old: Any) -> Any:
    """New state as the state it replaces: :func:`follow` (``tie=False``)
    leaf by leaf. Under Explicit axes its type is made the old one's."""
    return jax.tree.map(lambda n, o: follow(n, o, tie=False), new, old)


def _placed(x: Any) -> bool:
    """Whether ``x`` is a concrete array its user has placed (committed)."""
    return (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and getattr(x, "committed", getattr(x, "_committed", True))
    )


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> Any:
    """``jnp.full_like`` whose result has ``x``'s sharding (see :func:`follow`).

    An array the user has not placed (uncommitted, on the default device)
    gives an uncommitted result, as ``jnp.full_like`` does, so jit's cache
    sees the same kind of arguments as before.
    """
    if _placed(x):
        dtype = x.dtype if dtype is None else dtype
        return jnp.full(x.shape, fill_value, dtype, device=x.sharding)
    return follow(jnp.full_like(x, fill_value, dtype=dtype), x)


def _known_sharding(x: Any) -> Any:
    """``x``'s sharding where it is known before compiling: a concrete array's,
    or an Explicit-axes tracer's (its type carries it); else ``None``."""
    if _placed(x):
        return x.sharding
    if isinstance(x, jax.core.Tracer) and _abstract_mesh(x) is not None:
        sharding = jax.typeof(x).sharding
        if spec_axes(sharding.spec):
            return sharding
    return None


def leading_slices_align(like: Any, block: int) -> bool:
    """Whether ``like``'s leading dimension is known to be split (see
    :func:`zeros_derived`) into slices of a whole number of ``block``-element
    blocks of the flattened array."""
    sharding = _known_sharding(like)
    if not isinstance(sharding, NamedSharding) or not len(sharding.spec):
        return False
    shards = _shards(sharding.mesh, sharding.spec[0])
    size = math.prod(jnp.shape(like))
    return shards > 1 and size % (shards * block) == 0


def is_split(x: Any) -> bool:
    """Whether ``x`` is known to be split across devices (not replicated)."""
    if _placed(x):
        return not x.sharding.is_fully_replicated
    return _known_sharding(x) is not None


def device_group(x: Any) -> Any:
    """The devices a placed ``x`` is on (hashable), or ``None``."""
    if not _placed(x):
        return None
    return (tuple(sorted(d.id for d in x.sharding.device_set)), x.sharding.memory_kind)


def zeros_typed_like(shape: jax.ShapeDtypeStruct) -> jax.Array:
    """Zeros of an abstract value's shape and dtype, and of its sharding when
    its type carries one (Explicit axes: both branches of a ``lax.cond`` must
    have the same types)."""
    sharding = getattr(shape, "sharding", None)
    if isinstance(sharding, NamedSharding) and spec_axes(sharding.spec):
        return jnp.zeros(shape.shape, shape.dtype, out_sharding=sharding)
    return jnp.zeros(shape.shape, shape.dtype)


def zeros_derived(like: Any, shape: tuple, dtype: Any, dims: tuple) -> Any:
    """Zeros of ``shape`` for state derived from the array ``like``.

    Dimension ``k`` of the result is split as dimension ``dims[k]`` of
    ``like`` is (``None``: not split), where that sharding is known and the
    size divides evenly: a factored row statistic of a row-sharded matrix is
    row-sharded. Otherwise (a traced ``like`` on Auto axes) the compiler
    places it.
    """
    if tuple(dims) == tuple(range(jnp.ndim(like))) and tuple(shape) == jnp.shape(like):
        return full_like(like, 0, dtype)
    sharding = _known_sharding(like)
    if not isinstance(sharding, NamedSharding):
        if sharding is not None:  # one device: put it there
            return jnp.zeros(shape, dtype, device=sharding)
        return jnp.zeros(shape, dtype)
    entries = list(sharding.spec) + [None] * (jnp.ndim(like) - len(sharding.spec))
    mesh = sharding.mesh
    spec = []
    for n, d in zip(shape, dims, strict=True):
        entry = None if d is None else entries[d]
        spec.append(entry if n % _shards(mesh, entry) == 0 else None)
    new = NamedSharding(mesh, PartitionSpec(*spec))
    if isinstance(like, jax.core.Tracer):
        return jnp.zeros(shape, dtype, out_sharding=new)
    return jnp.zeros(shape, dtype, device=new)


def explicit_mesh(tree: Any) -> Any:
    """The mesh of the first leaf of ``tree`` typed with Explicit axes, or None.

    Traced values and concrete arrays alike: an eager computation on arrays
    placed on an Explicit mesh is typed too (``lax.cond`` traces its branches
    with those types).
    """
    for x in jax.tree.leaves(tree):
        typed = isinstance(x, (jax.core.Tracer, jax.Array))
        if typed and _abstract_mesh(x) is not None:
            mesh = _abstract_mesh(x)
            if AxisType is not None and AxisType.Explicit in mesh.axis_types:
                return mesh
    return None


def auto_axes(fn: Callable, *args: Any, out_like: Any = None) -> Any:
    """``fn(*args)``, with Explicit mesh axes treated as Auto inside ``fn``.

    Under Explicit axes every operation must say how its result is sharded,
    and a product over a split dimension or a gather from a split table is an
    error. Maths that needs the whole array (a Newton-Schulz iteration, a dot
    product of two leaves, a quantisation table) runs here with the compiler
    choosing how to partition it; each output gets the sharding of the
    matching leaf of ``out_like`` (replicated where ``out_like`` is ``None``).
    Without Explicit axes this is just ``fn(*args)``.
    """
    mesh = explicit_mesh(args)
    if mesh is None:
        return fn(*args)
    replicated = NamedSharding(mesh, PartitionSpec())
    shapes = jax.eval_shape(jax.sharding.auto_axes(fn, out_sharding=replicated), *args)
    likes = jax.tree.leaves(out_like) if out_like is not None else []

    def spec_of(i: int) -> PartitionSpec:
        if i < len(likes) and isinstance(likes[i], jax.core.Tracer):
            return jax.typeof(likes[i]).sharding.spec
        return PartitionSpec()

    leaves, treedef = jax.tree.flatten(shapes)
    out = treedef.unflatten(
        [NamedSharding(mesh, spec_of(i)) for i in range(len(leaves))]
    )
    return jax.sharding.auto_axes(fn, out_sharding=out)(*args)


def placement_key(x: Any) -> Any:
    """Where ``x`` lives, as its type says (hashable): leaves are stacked
    into one batched computation only with equally placed ones."""
    try:
        return jax.typeof(x).sharding
    except (AttributeError, TypeError):  # pragma: no cover - very old jax
        return None


def _entry_axes(entry: Any) -> tuple:
    """The mesh axes one ``PartitionSpec`` entry splits a dimension over."""
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def _shards(mesh: Any, entry: Any) -> int:
    return math.prod(mesh.shape[a] for a in _entry_axes(entry))


def spec_axes(spec: PartitionSpec) -> set:
    return {a for entry in spec for a in _entry_axes(entry)}
