"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner.

For every axis of a leaf (after optionally merging small axes) SOAP keeps a
Kronecker factor ``GG`` (an EMA of the gradient's Gram matrix over the other
axes) and an orthogonal basis ``Q`` of its eigenvectors. The gradient is
rotated into that basis, where a plain Adam second moment is kept; the first
moment stays in the original space and is rotated on the fly. The basis is
refreshed every ``precondition_frequency`` steps by one power iteration and a
QR decomposition. The alias, with the full rule and the reference, is
:func:`gradtx.soap`.

The state of a preconditioned leaf holds matrices whose shapes differ from
the leaf's, so the trees are walked with
:func:`gradtx._core.lifting.flatten_like`; the per-array maths is in the
``_leaf_*`` functions. Leaves without a factor on any axis (scalars, 0-size,
1-D unless ``precondition_1d``, axes all larger than ``max_precond_dim``) get
Adam with SOAP's step schedule.
"""

import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    GradientTransformation,
    Updates,
    check_state,
)
from .._core.lifting import (
    cast_to,
    check_array_leaves,
    check_leaf_dtypes,
    check_shapes,
    flatten_like,
    leaf_paths,
    reject_complex,
    square_state_like,
    state_zeros_like,
    upcast,
)
from .._core.placement import auto_axes, zeros_derived

REFRESH_METHODS = ("power_qr", "eigh")
_HIGHEST = jax.lax.Precision.HIGHEST
_REAL_ONLY = "SOAP's eigenbases are real"
_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def merge_small_dims(shape: tuple, max_dim: int) -> tuple:
    """Neighbouring axes merged while their product stays <= ``max_dim``.

    As pytorch-optimizer's ``merge_small_dims`` (an axis larger than
    ``max_dim`` stays alone, after a placeholder of size 1 when it comes
    first), except that a shape that merges into one axis gives that axis
    (the authors' SOAP), where pytorch-optimizer gives ``[1]`` and fails.
    """
    merged, product = [], 1
    for n in shape:
        product *= n
        if product > max_dim:
            merged.append(product // n)
            product = n
    merged.append(product)
    return tuple(merged)


def soap_layout(
    shape: tuple, max_precond_dim: int, merge_dims: bool, precondition_1d: bool
) -> tuple[tuple, tuple]:
    """``(view, axes)``: the shape the factors see and its axes that get one."""
    shape = tuple(shape)
    if len(shape) == 0 or math.prod(shape) == 0:
        return shape, ()
    if len(shape) == 1:
        keep = precondition_1d and shape[0] <= max_precond_dim
        return shape, (0,) if keep else ()
    view = merge_small_dims(shape, max_precond_dim) if merge_dims else shape
    return view, tuple(i for i, n in enumerate(view) if n <= max_precond_dim)


def _project(x, qs, view, axes, *, back=False):
    """``x`` rotated into the bases ``qs`` (``Qᵀ`` per axis), or back (``Q``)."""
    y = x.reshape(view)
    factors = dict(zip(axes, qs, strict=True))
    for i in range(len(view)):
        if i in factors:  # contracts axis 0, appends the new axis last
            y = jnp.tensordot(
                y, factors[i], ([0], [1 if back else 0]), precision=_HIGHEST
            )
        else:
            y = jnp.moveaxis(y, 0, -1)
    return y.reshape(x.shape)


def _gram(g, view, axis):
    """``G_(axis) G_(axis)ᵀ``: the Gram matrix of ``g`` over its other axes."""
    return _maths.axis_gram(g.reshape(view), axis)


def _eigenbasis(gg):
    """Eigenvectors of ``gg``, columns by decreasing eigenvalue."""
    eye = jnp.eye(gg.shape[0], dtype=gg.dtype)
    return jnp.linalg.eigh(gg + 1e-30 * eye)[1][:, ::-1]


def _leaf_refresh(gg, q, nu, view, axes, method):
    """New bases and ``nu`` permuted to follow them (sorted by ``qᵀ GG q``)."""
    shape, nu = nu.shape, nu.reshape(view)
    new = []
    for axis, a, b in zip(axes, gg, q, strict=True):
        ab = jnp.matmul(a, b, precision=_HIGHEST)
        order = jnp.argsort(jnp.sum(b * ab, axis=0), descending=True)
        nu = jnp.take(nu, order, axis=axis)
        if method == "eigh":
            new.append(_eigenbasis(a))
        else:
            new.append(jnp.linalg.qr(ab[:, order])[0])
    return tuple(c.astype(b.dtype) for c, b in zip(new, q, strict=True)), nu.reshape(
        shape
    )


def _leaf_step(g, mu, nu, gg, q, scalars, view, axes, normalize_grads):
    """Adam in the eigenbasis; returns ``(update, mu, nu, gg)``.

    ``scalars``: ``(b1, b2, shampoo_b2, eps, step_scale)``, passed as arrays
    (not closed over) so that they enter :func:`auto_axes` as arguments.
    """
    b1, b2, sb2, eps, step_scale = scalars
    g_rot = _project(g, q, view, axes)
    mu = _maths.ema(g, mu, b1)
    nu = _maths.ema(g_rot * g_rot, nu, b2)
    mu_rot = _project(mu, q, view, axes)
    u = _project(mu_rot / (jnp.sqrt(nu) + eps), q, view, axes, back=True)
    if normalize_grads and u.size:
        u = u / (jnp.sqrt(jnp.mean(u * u)) + eps)
    grams = (_gram(g, view, a) for a in axes)
    gg = tuple(_maths.ema(c, a, sb2) for c, a in zip(grams, gg, strict=True))
    return step_scale * u, mu, nu, gg


class ScaleBySoapState(NamedTuple):
    """Step count (int32, saturating); first moment (original space); second
    moment (eigenbasis); per leaf a tuple of Kronecker factors ``GG`` and a
    tuple of their eigenbases ``Q``, one per preconditioned axis (``()`` for
    a leaf without any)."""

    count: chex.Array
    mu: Updates
    nu: Updates
    gg: Any
    q: Any


def scale_by_soap(
    b1: chex.Numeric = 0.95,
    b2: chex.Numeric = 0.95,
    shampoo_b2: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    *,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    mu_dtype: Any = None,
    precond_dtype: Any = None,
    refresh: str = "power_qr",
) -> GradientTransformation:
    """SOAP's scaling: Adam in the eigenbasis of Shampoo's Kronecker factors.

    The first step only builds the factors and their eigenbases (the update
    is zero); see :func:`gradtx.soap` for the full rule and the reference.

    Args:
      b1, b2: Adam's decays, in [0, 1).
      shampoo_b2: decay of the factors ``GG`` in [0, 1) (``None``: ``b2``).
      eps: ε >= 0 added to ``sqrt(v)`` (and to the RMS with
        ``normalize_grads``).
      precondition_frequency: refresh the bases after steps ``f+1, 2f+1, …``
        (an integer >= 1).
      max_precond_dim: axes longer than this get no factor (an integer >= 1).
      merge_dims: merge neighbouring axes while their product stays <=
        ``max_precond_dim`` (1-D leaves are never merged).
      precondition_1d: give 1-D leaves a factor (otherwise plain Adam).
      normalize_grads: divide each leaf's update by its RMS (+ ε).
      correct_bias: Adam's bias correction (with the step count minus one).
      mu_dtype: dtype of the first moment (default: the params').
      precond_dtype: dtype of ``GG`` and ``Q`` (default: the params', float32
        for bfloat16/float16 params).
      refresh: ``"power_qr"`` (one power iteration and a QR, as the
        reference) or ``"eigh"`` (an exact eigendecomposition).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleBySoapState`.
    """
    owner = "scale_by_soap"
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    if shampoo_b2 is not None:
        _validate.decay(owner, "shampoo_b2", shampoo_b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.integer(owner, "precondition_frequency", precondition_frequency, low=1)
    _validate.integer(owner, "max_precond_dim", max_precond_dim, low=1)
    for name, value in (
        ("merge_dims", merge_dims),
        ("precondition_1d", precondition_1d),
        ("normalize_grads", normalize_grads),
        ("correct_bias", correct_bias),
    ):
        _validate.flag(owner, name, value)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype)
    precond_dtype = _validate.float_dtype(owner, "precond_dtype", precond_dtype)
    if refresh not in REFRESH_METHODS:
        raise ValueError(
            f"{owner}: `refresh` must be one of {REFRESH_METHODS}, got {refresh!r}."
        )
    frequency, max_dim = int(precondition_frequency), int(max_precond_dim)
    sb2 = b2 if shampoo_b2 is None else shampoo_b2

    def layout(x):
        return soap_layout(jnp.shape(x), max_dim, merge_dims, precondition_1d)

    def factor_dtype(x):
        if precond_dtype is not None:
            return precond_dtype
        dtype = jnp.result_type(x)
        return jnp.dtype(jnp.float32) if dtype in _LOW_PRECISION else dtype

    def factors(x):
        view, axes = layout(x)
        same = view == jnp.shape(x)
        return tuple(
            zeros_derived(
                x, (view[a], view[a]), factor_dtype(x), (a if same else None, None)
            )
            for a in axes
        )

    def init_fn(params):
        params = check_array_leaves(params)
        reject_complex(owner, params, [jax.tree.leaves(params)], _REAL_ONLY)
        gg = jax.tree.map(factors, params)
        return ScaleBySoapState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params),
            gg=gg,
            q=jax.tree.map(factors, params),
        )

    def check_factors(updates, leaves, tree, name):
        rows = flatten_like(jax.tree.structure(updates), tree, name=name, owner=owner)
        for path, g, row in zip(leaf_paths(updates), leaves, rows, strict=True):
            view, axes = layout(g)
            want = [(view[a], view[a]) for a in axes]
            got = [jnp.shape(m) for m in row] if isinstance(row, tuple) else row
            if got != want:
                raise ValueError(
                    f"{owner}: leaf {path}: `{name}` holds {got}, but a leaf of "
                    f"shape {jnp.shape(g)} needs factors of shapes {want}."
                )
        return rows

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleBySoapState)
        leaves, treedef = jax.tree.flatten(updates)
        mus = flatten_like(treedef, state.mu, name="mu", owner=owner)
        nus = flatten_like(treedef, state.nu, name="nu", owner=owner)
        check_shapes(updates, leaves, [mus, nus], ["mu", "nu"], owner)
        check_leaf_dtypes(owner, updates, leaves, [mus, nus], ["mu", "nu"])
        reject_complex(owner, updates, [leaves], _REAL_ONLY)
        ggs = check_factors(updates, leaves, state.gg, "gg")
        qs = check_factors(updates, leaves, state.q, "q")
        layouts = [layout(g) for g in leaves]

        count = state.count
        k = jnp.maximum(count, 1)  # the reference's step - 1 (0 on the first call)
        scale = 1.0
        if correct_bias:
            scale = jnp.sqrt(_maths.debias_factor(b2, k)) / _maths.debias_factor(b1, k)
        scalars = tuple(jnp.asarray(x) for x in (b1, b2, sb2, eps, scale))

        new_u, new_mu, new_nu, new_gg = [], [], [], []
        for g, mu, nu, gg, q, (view, axes) in zip(
            leaves, mus, nus, ggs, qs, layouts, strict=True
        ):
            args = tuple(jax.tree.map(upcast, (g, mu, nu, gg, q)))
            step = lambda *a, view=view, axes=axes: _leaf_step(
                *a, view, axes, normalize_grads
            )
            u, m, v, f = auto_axes(step, *args, scalars, out_like=(g, mu, nu, gg))
            new_u.append(u)
            new_mu.append(m)
            new_nu.append(v)
            new_gg.append(f)

        def keep(gg, q, nu):
            return q, nu

        def first(gg, q, nu):  # the bases of the first factors; nu is unused
            bases = [
                auto_axes(lambda f: tuple(map(_eigenbasis, f)), f, out_like=b)
                for f, b in zip(gg, q, strict=True)
            ]
            return jax.tree.map(lambda a, b: a.astype(b.dtype), bases, q), nu

        def refreshed(gg, q, nu):
            out_q, out_nu = [], []
            for f, b, v, like, (view, axes) in zip(
                gg, q, nu, nus, layouts, strict=True
            ):
                fn = lambda f, b, v, view=view, axes=axes: _leaf_refresh(
                    f, b, v, view, axes, refresh
                )
                b, v = auto_axes(fn, f, b, v, out_like=(b, like))
                out_q.append(b)
                out_nu.append(v)
            return out_q, out_nu

        branch = jnp.where(count == 0, 1, jnp.where(count % frequency == 0, 2, 0))
        q_up = [tuple(map(upcast, b)) for b in qs]
        new_q, new_nu = jax.lax.switch(
            branch, (keep, first, refreshed), new_gg, q_up, new_nu
        )

        first_call = count == 0
        out = [jnp.where(first_call, jnp.zeros_like(u), u) for u in new_u]
        new_mu = [jnp.where(first_call, m, n) for m, n in zip(mus, new_mu, strict=True)]
        new_nu = [jnp.where(first_call, m, n) for m, n in zip(nus, new_nu, strict=True)]
        cast_all = lambda xs, likes: [
            jax.tree.map(lambda x, y: cast_to(x, jnp.result_type(y)), x, y)
            for x, y in zip(xs, likes, strict=True)
        ]
        return treedef.unflatten(cast_all(out, leaves)), ScaleBySoapState(
            count=_maths.safe_increment(count),
            mu=treedef.unflatten(cast_all(new_mu, mus)),
            nu=treedef.unflatten(cast_all(new_nu, nus)),
            gg=treedef.unflatten(cast_all(new_gg, ggs)),
            q=treedef.unflatten(cast_all(new_q, qs)),
        )

    return GradientTransformation(init_fn, update_fn)
