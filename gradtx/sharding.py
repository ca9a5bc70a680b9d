"""Optimizer state on a mesh: abstract placement, ZeRO-1 and per-device bytes.

``state_shardings`` evaluates ``init`` abstractly and reads where every state
leaf lands; ``zero1_shardings`` splits each state leaf further over a data
axis (ZeRO stage 1); ``per_device_bytes`` measures what each device holds.
How a single state leaf follows its parameter lives in
:mod:`gradtx._core.placement`.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._core.base import GradientTransformation
from ._core.placement import spec_axes

try:  # typed mesh axes (Auto / Explicit / Manual): jax >= 0.5
    from jax.sharding import AbstractMesh, AxisType
except ImportError:  # pragma: no cover - older jax: every axis is Auto
    AbstractMesh = AxisType = None

__all__ = ["per_device_bytes", "state_shardings", "zero1_shardings"]


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    x = x if hasattr(x, "shape") and hasattr(x, "dtype") else jnp.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


def state_shardings(tx: GradientTransformation, params: Any) -> Any:
    """The sharding of every leaf of ``tx.init(params)``, allocating nothing.

    ``params`` may hold arrays or ``jax.ShapeDtypeStruct`` with shardings.
    Leaves made like a parameter get that parameter's sharding; derived
    leaves get the split their dimensions inherit (a factored row statistic
    of a row-split matrix is row-split, 8-bit blocks of a leaf split on its
    leading dimension are split by block); scalars such as step counts are
    replicated. These are the shardings an eager ``tx.init(params)`` gives,
    found by evaluating ``init`` abstractly with the mesh's axes typed
    Explicit, so they also hold under ``jax.jit``, where the compiler would
    otherwise place the derived leaves itself. Use it to create or restore
    state straight into place (``docs/sharding.md``).

    Args:
      tx: the gradient transformation.
      params: the parameters, concrete or abstract, on at most one mesh.

    Returns:
      A pytree of ``jax.sharding.Sharding`` with the structure of the state.

    Raises:
      ValueError: the parameters are on more than one mesh.

    Examples:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx, params = gradtx.adam(1e-3), {"w": jnp.zeros((4, 2))}
      >>> shardings = gradtx.state_shardings(tx, params)
      >>> state = jax.jit(tx.init, out_shardings=shardings)(params)
      >>> state[0].mu["w"].sharding == shardings[0].mu["w"]
      True
    """
    return _placed_state(tx, params)[1]


def _placed_state(tx: GradientTransformation, params: Any) -> tuple[Any, Any]:
    """``(shapes, shardings)`` of ``tx.init(params)``: one abstract ``init``."""
    abstract = jax.tree.map(_abstract, params)
    meshes = {
        x.sharding.mesh
        for x in jax.tree.leaves(abstract)
        if isinstance(x.sharding, NamedSharding)
    }
    if not meshes:  # one device, or not placed yet: where compiled init puts it
        return _compiled_placement(tx, abstract)
    if len(meshes) > 1:
        raise ValueError(
            "state_shardings: the params are on more than one mesh "
            f"({len(meshes)} distinct meshes); put them on one."
        )
    if AxisType is None:  # no Explicit axes to evaluate with: compile init
        return _compiled_placement(tx, abstract)
    (mesh,) = meshes
    explicit = AbstractMesh(
        tuple(mesh.axis_sizes),
        tuple(mesh.axis_names),
        axis_types=(AxisType.Explicit,) * len(mesh.axis_names),
    )

    def view(x: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
        spec = getattr(x.sharding, "spec", PartitionSpec())
        return jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=NamedSharding(explicit, spec)
        )

    with jax.sharding.use_abstract_mesh(explicit):
        shapes = jax.eval_shape(tx.init, jax.tree.map(view, abstract))
    shardings = jax.tree.map(
        lambda x: NamedSharding(mesh, getattr(x.sharding, "spec", PartitionSpec())),
        shapes,
    )
    return shapes, shardings


def _compiled_placement(tx: GradientTransformation, abstract: Any) -> tuple[Any, Any]:
    """``(shapes, shardings)`` off the compiled ``init`` (no mesh to evaluate on)."""
    compiled = jax.jit(tx.init).lower(abstract).compile()
    return jax.eval_shape(tx.init, abstract), compiled.output_shardings


def _split(shape: tuple, spec: PartitionSpec, mesh: Mesh, axis: str) -> PartitionSpec:
    """``spec`` with ``axis`` added to the largest dimension it divides evenly."""
    entries = list(spec) + [None] * (len(shape) - len(spec))
    if axis in spec_axes(spec):
        return PartitionSpec(*entries)
    size = mesh.shape[axis]
    best = None
    for d, n in enumerate(shape):
        entry = entries[d]
        present = (
            () if entry is None else (entry if isinstance(entry, tuple) else (entry,))
        )
        shards = math.prod(mesh.shape[a] for a in present) * size
        if n % shards == 0 and (best is None or n > shape[best]):
            best = d
    if best is not None:
        entry = entries[best]
        present = (
            () if entry is None else (entry if isinstance(entry, tuple) else (entry,))
        )
        entries[best] = (*present, axis) if present else axis
    return PartitionSpec(*entries)


def zero1_shardings(
    tx: GradientTransformation, params: Any, mesh: Mesh, axis: str = "data"
) -> Any:
    """State shardings that split the optimizer state across ``axis`` (ZeRO-1).

    In data-parallel training every device holds the whole model, and with
    it the whole optimizer state: Adam's two moments are twice the params.
    ZeRO stage 1 (Rajbhandari et al., 2020) shards the *state* across the
    data-parallel devices instead. Each state leaf of ``tx.init(params)`` is
    split along ``axis`` on its largest dimension that the axis size divides
    (counting shards the leaf already has on other mesh axes), so per-device
    state memory falls to ``1/mesh.shape[axis]``. Leaves no dimension of
    which is divisible (scalars such as step counts, odd sizes) keep the
    sharding :func:`state_shardings` gives them; leaves already split on
    ``axis`` are left alone.

    The step stays an ordinary ``jax.jit``: each device updates its slice of
    the state from the (replicated, all-reduced) gradient, and the compiler
    all-gathers the updates for the replicated params (pin the params'
    shardings in the step's ``out_shardings``). The numbers are those of the
    unsharded run (``docs/sharding.md``, ``examples/data_parallel.py``).

    Args:
      tx: the gradient transformation.
      params: the parameters (arrays or ``jax.ShapeDtypeStruct``), usually
        replicated over ``mesh``.
      mesh: the device mesh.
      axis: the data-parallel mesh axis to split the state over.

    Returns:
      A pytree of ``NamedSharding`` with the structure of the state.

    Raises:
      ValueError: ``axis`` is not an axis of ``mesh``.

    Examples:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> mesh = jax.make_mesh((1,), ("data",))  # 8 devices: each holds 1/8
      >>> params = {"w": jnp.zeros((4, 2)), "b": jnp.zeros(3)}
      >>> shardings = gradtx.zero1_shardings(gradtx.adam(1e-3), params, mesh, "data")
      >>> shardings[0].mu["w"].spec, shardings[0].count.spec
      (P('data', None), P())
    """
    if axis not in mesh.axis_names:
        raise ValueError(
            f"zero1_shardings: axis={axis!r} is not an axis of the mesh "
            f"(its axes: {tuple(mesh.axis_names)})."
        )
    shapes, base = _placed_state(tx, params)

    def one(shape: jax.ShapeDtypeStruct, sharding: Any) -> NamedSharding:
        spec = getattr(sharding, "spec", PartitionSpec())
        same_mesh = isinstance(sharding, NamedSharding) and (
            tuple(sharding.mesh.axis_names) == tuple(mesh.axis_names)
            and sharding.mesh.shape == mesh.shape
        )
        if not same_mesh:
            spec = PartitionSpec()  # one device or another mesh: start replicated
        return NamedSharding(mesh, _split(tuple(shape.shape), spec, mesh, axis))

    return jax.tree.map(one, shapes, base)


def per_device_bytes(tree: Any) -> dict:
    """Bytes of ``tree``'s arrays held on each device.

    Sums the shards each device holds, so a replicated leaf counts in full on
    every device and a leaf split ``n`` ways counts ``1/n`` on each: what
    :func:`zero1_shardings` saves shows here.

    Args:
      tree: a pytree of ``jax.Array`` (non-array leaves are skipped).

    Returns:
      ``{device: bytes}`` over the devices holding any of ``tree``.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> list(gradtx.per_device_bytes({"w": jnp.zeros((4, 2))}).values())
      [32]
    """
    total: dict = {}
    for x in jax.tree.leaves(tree):
        if not isinstance(x, jax.Array):
            continue
        for shard in x.addressable_shards:
            nbytes = int(np.prod(shard.data.shape)) * shard.data.dtype.itemsize
            total[shard.device] = total.get(shard.device, 0) + nbytes
    return total
