r"""GaLore: a base optimizer run on low-rank projections of matrix gradients.

For a gradient :math:`G` of a matrix parameter (:math:`m \times n`), GaLore
keeps an orthonormal projector :math:`P` of rank :math:`r`, recomputed every
``update_proj_gap`` steps from the SVD of the current gradient, runs the base
optimizer (Adam by default) on :math:`P^\top G` (or :math:`G P` when
:math:`m < n`), whose state is :math:`r \times n` instead of :math:`m \times
n`, and maps the result back with :math:`P`. Other leaves (vectors, scalars)
get the base optimizer's full update. Tensors of higher rank can be viewed as
matrices through :class:`GaLoreDimensionNumbers`.
"""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    GradientTransformation,
    OptState,
    ScalarOrSchedule,
    Updates,
    check_state,
)
from .._core.placement import auto_axes, whole, zeros_derived
from ..combinators.chain import chain
from ..transforms.adam import scale_by_adam
from ..transforms.scaling import learning_rate_step
from ..transforms.weight_decay import add_decayed_weights

__all__ = [
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "galore",
    "scale_by_galore",
]


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a tensor form the rows and the columns of its matrix view.

    The tensor is transposed to ``reduction_axis + output_axis`` and reshaped
    to ``(prod(reduction sizes), prod(output sizes))``; every axis must be in
    exactly one of the two.

    Attributes:
      reduction_axis: the input (row) axis or axes.
      output_axis: the output (column) axis or axes.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


def _is_dims(x: Any) -> bool:
    return isinstance(x, GaLoreDimensionNumbers)


def _is_dims_or_none(x: Any) -> bool:
    return x is None or _is_dims(x)


def _axes(axes: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return tuple(a % ndim for a in axes)


class _MatrixView(NamedTuple):
    """A leaf seen as an ``m × n`` matrix; ``left``: project the rows (m >= n)."""

    perm: tuple[int, ...]
    moved_shape: tuple[int, ...]
    m: int
    n: int
    rank: int
    n_rows: int  # how many of the leaf's axes (perm's first) make the rows

    @property
    def left(self) -> bool:
        return self.m >= self.n

    def axis(self, side: int) -> int | None:
        """The leaf's axis that is the matrix's rows (0) or columns (1), when
        that side is a single axis; else ``None``."""
        group = self.perm[self.n_rows :] if side else self.perm[: self.n_rows]
        return group[0] if len(group) == 1 else None

    def to_matrix(self, x: chex.Array) -> chex.Array:
        return jnp.transpose(x, self.perm).reshape(self.m, self.n)

    def from_matrix(self, y: chex.Array) -> chex.Array:
        inverse = tuple(sorted(range(len(self.perm)), key=lambda i: self.perm[i]))
        return y.reshape(self.moved_shape).transpose(inverse)


def _view(shape: tuple[int, ...], dims: GaLoreDimensionNumbers, rank: int):
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(
            f"scale_by_galore: a leaf of shape {shape} cannot be viewed as a "
            "matrix (rank >= 2 needed); give it None in weight_dimension_numbers."
        )
    rows, cols = _axes(dims.reduction_axis, ndim), _axes(dims.output_axis, ndim)
    if set(rows) & set(cols) or len(set(rows) | set(cols)) != ndim:
        raise ValueError(
            f"scale_by_galore: {dims} must split the axes of shape {shape} into "
            "two disjoint groups that together cover every axis."
        )
    perm = rows + cols
    m, n = math.prod(shape[a] for a in rows), math.prod(shape[a] for a in cols)
    moved = tuple(shape[a] for a in perm)
    return _MatrixView(perm, moved, m, n, min(rank, m, n), len(rows))


class GaLoreState(NamedTuple):
    """The state of :func:`scale_by_galore` (Optax's field names).

    Attributes:
      count: the step count (int32, saturating).
      base_optimizer_state: the base optimizer's state, made on the low-rank
        shapes for projected leaves and the full shapes for the others.
      projector: per leaf, :math:`P` (``(m, r)`` or ``(n, r)``), or a
        ``(0, 0)`` placeholder for leaves that are not projected.
    """

    count: chex.Array
    base_optimizer_state: OptState
    projector: Updates


def scale_by_galore(
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""GaLore's projection around a base optimizer (Adam by default).

    For each projected leaf viewed as an :math:`m \times n` matrix
    :math:`G_t`, :math:`r = \min(\text{rank}, m, n)` and :math:`U \Sigma
    V^\top` the SVD of :math:`G_t` at steps :math:`t \equiv 0` (mod
    ``update_proj_gap``, counting from 0):

    .. math::
        P_t = U_{:, :r} \ (m \ge n) \ \text{or}\ V_{:, :r}\ (m < n),\qquad
        R_t = P_t^\top G_t \ \text{or}\ G_t P_t,
        \\
        u_t = s\, P_t\, \mathrm{base}(R_t) \ \text{or}\
            s\, \mathrm{base}(R_t)\, P_t^\top

    (:math:`s` = ``scale``); between those steps :math:`P_t = P_{t-1}`.
    Leaves that are not projected get :math:`\mathrm{base}(G_t)` unscaled,
    as in Optax. The SVD is computed in float32; :math:`P` is stored in the
    leaf's dtype. The base optimizer must not need ``params`` (it sees
    low-rank shapes): use ``scale_by_adam`` and the like, with the weight
    decay of :func:`galore`.

    Reference: Zhao, Zhang, Chen, Wang, Anandkumar & Tian, 2024, "GaLore:
    Memory-Efficient LLM Training by Gradient Low-Rank Projection"
    (https://arxiv.org/abs/2403.03507).

    Args:
      rank: the largest rank :math:`r` of a projection (an int > 0).
      update_proj_gap: the steps between SVDs (an int >= 1).
      scale: :math:`s`, the factor of projected updates.
      base_optimizer: the transformation run on the projected gradients
        (default ``scale_by_adam()``).
      weight_dimension_numbers: which leaves to project and how: ``None``
        projects the 2-D leaves; one :class:`GaLoreDimensionNumbers` applies
        to every leaf of rank >= 2; a tree like the params with a
        :class:`GaLoreDimensionNumbers` or ``None`` per leaf; or a function of
        the params returning such a tree.

    Returns:
      A :class:`~gradtx.GradientTransformation` with state
      :class:`GaLoreState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib import scale_by_galore
      >>> tx = scale_by_galore(rank=1)
      >>> g = {"w": jnp.outer(jnp.array([1.0, 2.0, 2.0]), jnp.array([3.0, 4.0]))}
      >>> state = tx.init(g)
      >>> state.projector["w"].shape  # P: 3 x 1, Adam's moments: 1 x 2
      (3, 1)
      >>> u, state = tx.update(g, state)
      >>> [round(x, 3) for x in u["w"][:, 1].tolist()]  # P·adam(PᵀG) for rank-1 G
      [0.333, 0.667, 0.667]
    """
    owner = "scale_by_galore"
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"{owner}: `rank` must be an int, got {rank!r}.")
    _validate.integer(owner, "rank", rank, low=1)
    _validate.integer(owner, "update_proj_gap", update_proj_gap, low=1)
    _validate.number(owner, "scale", scale)
    if base_optimizer is None:
        base_optimizer = scale_by_adam()
    elif not (hasattr(base_optimizer, "init") and hasattr(base_optimizer, "update")):
        raise TypeError(
            f"{owner}: `base_optimizer` must be a GradientTransformation or None, "
            f"got {type(base_optimizer).__name__}."
        )
    dims_arg = weight_dimension_numbers

    def dims_for(tree):
        if dims_arg is None:
            pick = lambda x: GaLoreDimensionNumbers() if jnp.ndim(x) == 2 else None
            return jax.tree.map(pick, tree)
        if _is_dims(dims_arg):
            return jax.tree.map(lambda x: dims_arg if jnp.ndim(x) >= 2 else None, tree)
        if callable(dims_arg):
            return dims_arg(tree)
        return dims_arg

    def views(tree):
        """Per leaf of ``tree``: its matrix view, or None (not projected)."""
        dims = dims_for(tree)
        return jax.tree.map(
            lambda d, x: None if d is None else _view(jnp.shape(x), d, rank),
            dims,
            tree,
            is_leaf=_is_dims_or_none,
        )

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        vs = treedef.flatten_up_to(views(params)) if leaves else []
        projectors, proxies = [], []
        for x, v in zip(leaves, vs, strict=True):
            dtype = jnp.result_type(x)
            if v is None:
                projectors.append(jnp.zeros((0, 0), dtype))
                proxies.append(x)  # the base state follows the param's placement
                continue
            # On the leaf's devices: the projector whole on each (see
            # new_projector), the projection's long side split as that axis
            # of the leaf is (where it is one axis), as the products leave it.
            row, col = v.axis(0), v.axis(1)
            side = v.m if v.left else v.n
            proxy = (
                ((v.rank, v.n), (None, col)) if v.left else ((v.m, v.rank), (row, None))
            )
            projectors.append(zeros_derived(x, (side, v.rank), dtype, (None, None)))
            proxies.append(zeros_derived(x, proxy[0], dtype, proxy[1]))
        return GaLoreState(
            count=jnp.zeros([], jnp.int32),
            base_optimizer_state=base_optimizer.init(treedef.unflatten(proxies)),
            projector=treedef.unflatten(projectors),
        )

    def new_projector(g2, v, old, refresh):
        if v.rank == 0:
            return old

        def svd():
            # Explicit mesh axes: an SVD needs the whole matrix (auto_axes).
            u, _, vt = auto_axes(_svd, g2.astype(jnp.float32))
            p = u[:, : v.rank] if v.left else vt[: v.rank].T
            return p.astype(old.dtype)

        # Whole on every device (m × rank, small): left to propagation, one
        # leaf's split reached the others' projectors and a plain jit step
        # returned params moved to it (tests/multidevice/test_shardings_kept.py).
        return whole(jax.lax.cond(refresh, svd, lambda: old))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, GaLoreState)
        leaves, treedef = jax.tree.flatten(updates)
        vs = treedef.flatten_up_to(views(updates)) if leaves else []
        projectors = treedef.flatten_up_to(state.projector)
        refresh = state.count % update_proj_gap == 0
        low, new_ps = [], []
        for g, v, p in zip(leaves, vs, projectors, strict=True):
            if v is None:
                low.append(g)
                new_ps.append(p)
                continue
            g2 = v.to_matrix(g)
            p = new_projector(g2, v, p, refresh)
            low.append(auto_axes(functools.partial(_project_down, left=v.left), p, g2))
            new_ps.append(p)
        low_updates, base_state = base_optimizer.update(
            treedef.unflatten(low), state.base_optimizer_state, None
        )
        out = []
        for g, v, p, u in zip(
            leaves, vs, new_ps, treedef.flatten_up_to(low_updates), strict=True
        ):
            if v is None:
                out.append(u)
                continue
            full = auto_axes(functools.partial(_project_up, left=v.left), p, u)
            out.append((scale * v.from_matrix(full)).astype(jnp.result_type(g)))
        return treedef.unflatten(out), GaLoreState(
            count=_maths.safe_increment(state.count),
            base_optimizer_state=base_state,
            projector=treedef.unflatten(new_ps),
        )

    return GradientTransformation(init_fn, update_fn)


def _svd(a):
    return jnp.linalg.svd(a, full_matrices=False)


def _project_down(p, g2, *, left):
    return p.T @ g2 if left else g2 @ p


def _project_up(p, u, *, left):
    return p @ u if left else u @ p.T


def galore(
    learning_rate: ScalarOrSchedule,
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_decay: chex.Numeric = 0.0,
    mask: Any | Callable[[Any], Any] | None = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""GaLore: memory-efficient training by low-rank gradient projection.

    :func:`scale_by_galore` (Adam on the projections by default), then
    decoupled weight decay in the full parameter space, then the learning
    rate:

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \big(s\, P_t\, \mathrm{base}(P_t^\top
            G_t) + \lambda \theta_{t-1}\big)

    (:math:`G_t P_t` and :math:`\mathrm{base}(G_t P_t) P_t^\top` when the
    matrix is wider than tall; unprojected leaves get
    :math:`\mathrm{base}(G_t)`). With the default Adam the base state of an
    :math:`m \times n` matrix takes :math:`2 r \max(m, n)` numbers instead of
    :math:`2 m n`.

    Reference: Zhao, Zhang, Chen, Wang, Anandkumar & Tian, 2024, "GaLore:
    Memory-Efficient LLM Training by Gradient Low-Rank Projection"
    (https://arxiv.org/abs/2403.03507).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      rank: the largest rank of a projection (an int > 0).
      update_proj_gap: the steps between SVDs (an int >= 1).
      scale: :math:`s`, the factor of projected updates.
      base_optimizer: run on the projections (default ``scale_by_adam()``);
        it must not need ``params`` (no ``adamw``: use ``weight_decay``).
      weight_decay: :math:`\lambda` >= 0, or a schedule.
      mask: a tree of bools (or a function of the params returning one):
        decay only where True.
      weight_dimension_numbers: see :func:`scale_by_galore`.

    Returns:
      A :class:`~gradtx.GradientTransformation` (a chain whose first state is
      a :class:`GaLoreState`).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import galore
      >>> f = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)
      >>> params = {"w": jnp.ones((20, 10)), "b": jnp.ones(10)}
      >>> opt = galore(learning_rate=0.3, rank=4, update_proj_gap=10)
      >>> state = opt.init(params)
      >>> state[0].projector["w"].shape, state[0].projector["b"].shape
      ((20, 4), (0, 0))
      >>> @jax.jit
      ... def step(params, state):
      ...     u, state = opt.update(jax.grad(f)(params), state, params)
      ...     return gradtx.apply_updates(params, u), state
      >>> for _ in range(100):
      ...     params, state = step(params, state)
      >>> bool(f(params) < 1e-2)  # from 210
      True
    """
    return chain(
        scale_by_galore(
            rank=rank,
            update_proj_gap=update_proj_gap,
            scale=scale,
            base_optimizer=base_optimizer,
            weight_dimension_numbers=weight_dimension_numbers,
        ),
        add_decayed_weights(weight_decay, mask),
        learning_rate_step("galore", learning_rate),
    )
