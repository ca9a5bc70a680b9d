"""Distributed Shampoo: blocked Kronecker-factored full-matrix AdaGrad, grafted.

Each parameter is reshaped (small dimensions merged), cut into blocks of at
most ``block_size`` along every dimension, and every block keeps one
statistic matrix per dimension, ``L_k ← β₂ L_k + (1 − β₂) G_(k) G_(k)ᵀ``
(:mod:`gradtx.transforms.shampoo_blocks`). Their inverse ``2r``-th roots
(``r`` the block's rank) are recomputed by coupled Newton iterations, every
factor of every leaf in one batch, as the authors' code does
(:mod:`gradtx.transforms.shampoo_roots`), every
``preconditioning_compute_steps`` steps and applied on every dimension. The
preconditioned step is given the per-leaf norm of a diagonal method's step
(grafting, :func:`gradtx.combinators.graft.match_norm`). The alias, with the
full rule and references, is :func:`gradtx.shampoo`.

The state holds matrices whose shapes are not the params', so this module
walks the trees with :func:`gradtx._core.lifting.flatten_like` rather than
:func:`gradtx._core.lifting.map_leaves`.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    flatten_like,
    leaf_paths,
    reject_complex,
    state_zeros_like,
    upcast,
)
from .._core.placement import auto_axes, follow, zeros_derived
from ..combinators.graft import match_norm
from .shampoo_blocks import (
    factor_dims,
    factor_sizes,
    new_statistics,
    preconditioned,
    shampoo_layout,
)
from .shampoo_roots import batched_inverse_roots

GRAFT_TYPES = (
    "sgd",
    "adagrad",
    "rmsprop",
    "rmsprop_normalized",
    "adagrad_normalized",
    "sqrt_n",
)
_NORMALIZE_EPS = 1e-25
_REAL_ONLY = "Shampoo's statistics and roots are real symmetric matrices"


def _graft_step(g, diag, graft_type, b2, diagonal_eps):
    """The grafting method's step ``r`` and its new diagonal accumulator."""
    if graft_type == "sgd":
        return g, diag
    if graft_type == "sqrt_n":
        return jnp.sign(g), diag
    s = g
    if graft_type.endswith("_normalized"):
        s = g / (jnp.sqrt(jnp.sum(g * g)) + _NORMALIZE_EPS)
    if graft_type.startswith("adagrad"):
        diag = diag + s * s
    else:
        diag = b2 * diag + jnp.where(b2 == 1.0, 1.0, 1.0 - b2) * (s * s)
    return s / (jnp.sqrt(diag) + diagonal_eps), diag


# --------------------------------------------------------------------------
# The transformation.


class ShampooState(NamedTuple):
    """Step count (int32, saturating); per leaf: the factor statistics and
    their inverse roots (tuples of square matrices, float32 or wider, empty
    for leaves that are not preconditioned), the grafting method's diagonal
    accumulator (``()`` for "sgd" and "sqrt_n"), and the two momenta: of the
    grafted Shampoo step and of the grafting step."""

    count: chex.Array
    stats: Any
    preconds: Any
    diag: Any
    mu: Updates
    graft_mu: Updates


def _check_ints(owner, **values):
    lows = dict(block_size=1, preconditioning_compute_steps=1,
                statistics_compute_steps=1, merge_small_dims_block_size=1)  # fmt: skip
    for name, value in values.items():
        _validate.integer(owner, name, value, low=lows.get(name, 0))


def scale_by_shampoo(
    block_size: int,
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    diagonal_eps: chex.Numeric = 1e-10,
    matrix_eps: chex.Numeric = 1e-6,
    weight_decay: chex.Numeric = 0.0,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    statistics_compute_steps: int = 1,
    graft_type: str = "sgd",
    nesterov: bool = True,
    exponent_override: int = 0,
    skip_preconditioning_rank_lt: int = 1,
    skip_preconditioning_dim_size_gt: int = 4096,
    merge_small_dims_block_size: int = 4096,
) -> GradientTransformation:
    r"""Shampoo's step before the learning rate: ``u`` with ``p ← p − η u``.

    Statistics, preconditioning, grafting, (coupled) weight decay and the
    two momenta of :func:`gradtx.shampoo`, which gives the full rule and the
    references; the arguments are those of the alias. The momenta live here
    (not in a following ``trace``) because the step switches at
    ``start_preconditioning_step`` from the grafting method's momentum to the
    Shampoo one, which has accumulated Shampoo steps from step 0.

    Args:
      block_size: the largest block along any dimension, >= 1.
      b1: :math:`\beta_1`, the momentum decay, in [0, 1).
      b2: :math:`\beta_2`, the statistics' decay, in [0, 1].
      diagonal_eps: :math:`\epsilon_D >= 0` of the diagonal grafting methods.
      matrix_eps: :math:`\epsilon_M >= 0`, relative to the largest
        eigenvalue (and the initial statistics).
      weight_decay: :math:`\lambda >= 0`, added before the momentum (0: off).
      start_preconditioning_step: :math:`t_0 >= 0`: the grafting method's
        step is taken while :math:`t < t_0` (counted from 0).
      preconditioning_compute_steps: recompute the roots every this many
        steps, >= 1.
      statistics_compute_steps: update the statistics every this many
        steps, >= 1.
      graft_type: ``"sgd"``, ``"adagrad"``, ``"rmsprop"``,
        ``"rmsprop_normalized"``, ``"adagrad_normalized"`` or ``"sqrt_n"``.
      nesterov: Nesterov momentum.
      exponent_override: :math:`p` for every root, >= 0; 0: :math:`2r`.
      skip_preconditioning_rank_lt: leaves of lower rank take the grafting
        step only (>= 0).
      skip_preconditioning_dim_size_gt: leaves with a larger dimension take
        the grafting step only (>= 0).
      merge_small_dims_block_size: the largest merged dimension, >= 1 (1:
        merge nothing, one factor per dimension of size > 1).

    Returns:
      A :class:`GradientTransformation` with state :class:`ShampooState`;
      ``params`` are needed when ``weight_decay`` is not 0.
    """
    owner = "scale_by_shampoo"
    _check_ints(
        owner,
        block_size=block_size,
        start_preconditioning_step=start_preconditioning_step,
        preconditioning_compute_steps=preconditioning_compute_steps,
        statistics_compute_steps=statistics_compute_steps,
        exponent_override=exponent_override,
        skip_preconditioning_rank_lt=skip_preconditioning_rank_lt,
        skip_preconditioning_dim_size_gt=skip_preconditioning_dim_size_gt,
        merge_small_dims_block_size=merge_small_dims_block_size,
    )
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2, allow_one=True)
    _validate.non_negative(owner, "diagonal_eps", diagonal_eps)
    _validate.non_negative(owner, "matrix_eps", matrix_eps)
    _validate.non_negative(owner, "weight_decay", weight_decay)
    _validate.flag(owner, "nesterov", nesterov)
    if graft_type not in GRAFT_TYPES:
        raise ValueError(
            f"{owner}: `graft_type` must be one of {GRAFT_TYPES}, got {graft_type!r}."
        )
    has_diag = graft_type not in ("sgd", "sqrt_n")
    layout_of = lambda shape: shampoo_layout(
        tuple(shape),
        block_size,
        merge_small_dims_block_size,
        skip_preconditioning_rank_lt,
        skip_preconditioning_dim_size_gt,
    )

    def exponent(layout):
        return exponent_override or 2 * len(layout.shape)

    def init_leaf(p):
        layout = layout_of(jnp.shape(p))
        dtype = jnp.promote_types(jnp.result_type(p), jnp.float32)
        stats, roots = [], []
        dims = factor_dims(layout, jnp.ndim(p))
        for d, dim in zip(factor_sizes(layout), dims, strict=True):
            zero = zeros_derived(p, (d, d), dtype, dim)
            eye = jnp.eye(d, dtype=dtype)
            stats.append(zero + matrix_eps * eye)
            roots.append(zero + eye)
        diag = zeros_derived(p, jnp.shape(p), dtype, tuple(range(jnp.ndim(p))))
        return tuple(stats), tuple(roots), diag if has_diag else ()

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        reject_complex(owner, params, [leaves], _REAL_ONLY)
        cols = list(zip(*[init_leaf(p) for p in leaves], strict=True)) or [[]] * 3
        stats, roots, diag = (treedef.unflatten(list(c)) for c in cols)
        # Two momenta, two buffers: a jitted step may donate the state.
        mu, graft_mu = state_zeros_like(params), state_zeros_like(params)
        return ShampooState(jnp.zeros([], jnp.int32), stats, roots, diag, mu, graft_mu)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, ShampooState)
        leaves, treedef = jax.tree.flatten(updates)
        reject_complex(owner, updates, [leaves], _REAL_ONLY)
        names = ["stats", "preconds", "diag", "mu", "graft_mu"]
        trees = [getattr(state, n) for n in names]
        if weight_decay is not None and not _is_zero(weight_decay):
            if params is None:
                raise ValueError(
                    f"{owner}: `params` are required when `weight_decay` is not 0."
                )
            names, trees = [*names, "params"], [*trees, params]
        cols = [
            flatten_like(treedef, t, name=n, owner=owner)
            for t, n in zip(trees, names, strict=True)
        ]
        layouts = [layout_of(jnp.shape(g)) for g in leaves]
        _check_state_shapes(owner, updates, leaves, cols[:3], layouts, has_diag)
        step = state.count
        grads = [upcast(g) for g in leaves]

        # Statistics (every `statistics_compute_steps` steps).
        def _statistics_of(g, old_s, lay):
            fn = lambda g, s: new_statistics(g, s, lay, b2)
            return auto_axes(fn, g, old_s, out_like=old_s)

        def all_stats(old):
            return [
                old_s if lay.skip else _statistics_of(g, old_s, lay)
                for g, old_s, lay in zip(grads, old, layouts, strict=True)
            ]

        stats = cols[0]
        if statistics_compute_steps > 1:
            stats = jax.lax.cond(
                step % statistics_compute_steps == 0, all_stats, list, stats
            )
        else:
            stats = all_stats(stats)

        # Inverse roots (every `preconditioning_compute_steps` steps).
        flat_stats = [s for ss in stats for s in ss]
        flat_old = [r for rs in cols[1] for r in rs]
        exps = [
            exponent(lay) for lay, ss in zip(layouts, stats, strict=True) for _ in ss
        ]
        compute = lambda s, o: batched_inverse_roots(s, o, exps, matrix_eps)
        if flat_stats:
            if preconditioning_compute_steps > 1:
                compute = lambda s, o, c=compute: jax.lax.cond(
                    step % preconditioning_compute_steps == 0,
                    c,
                    lambda s, o: tuple(o),
                    s,
                    o,
                )
            # Explicit axes: the roots multiply whole matrices.
            flat_roots = auto_axes(
                compute, tuple(flat_stats), tuple(flat_old), out_like=tuple(flat_old)
            )
        else:
            flat_roots = ()
        roots, k = [], 0
        for ss in stats:
            roots.append(tuple(flat_roots[k : k + len(ss)]))
            k += len(ss)

        # Grafting, weight decay, momenta.
        run = step >= start_preconditioning_step
        outs = []
        for i, g in enumerate(grads):
            lay = layouts[i]
            diag = upcast(cols[2][i]) if has_diag else ()
            r, new_diag = _graft_step(g, diag, graft_type, b2, diagonal_eps)
            # Explicit axes: products over whole (possibly split) dimensions.
            direction = r
            if not lay.skip:
                fn = lambda g, r, lay=lay: preconditioned(g, r, lay)
                direction = auto_axes(fn, g, roots[i], out_like=g)
            s = match_norm(r, direction)
            if len(cols) > 5:
                decay = weight_decay * upcast(cols[5][i])
                s, r = s + decay, r + decay
            mu_s = b1 * upcast(cols[3][i]) + s
            mu_r = b1 * upcast(cols[4][i]) + r
            mu, u = jnp.where(run, mu_s, mu_r), jnp.where(run, s, r)
            out = u + b1 * mu if nesterov else mu
            dt = lambda j, i=i: jnp.result_type(cols[j][i])
            outs.append(
                (
                    out.astype(jnp.result_type(leaves[i])),
                    follow(new_diag.astype(dt(2)), cols[2][i]) if has_diag else (),
                    # Auto axes: the block products leave the compiler free
                    # to split the momenta further; they stay as they came.
                    follow(mu_s.astype(dt(3)), cols[3][i]),
                    follow(mu_r.astype(dt(4)), cols[4][i]),
                )
            )
        cols_out = list(zip(*outs, strict=True)) or [[]] * 4
        u, diag, mu, graft_mu = (treedef.unflatten(list(c)) for c in cols_out)
        new_state = ShampooState(
            _maths.safe_increment(step),
            treedef.unflatten(list(stats)),
            treedef.unflatten(roots),
            diag,
            mu,
            graft_mu,
        )
        return u, new_state

    return GradientTransformation(init_fn, update_fn)


def _is_zero(x):
    return not isinstance(x, jax.core.Tracer) and not callable(x) and float(x) == 0.0


def _check_state_shapes(owner, updates, leaves, cols, layouts, has_diag):
    for i, (g, lay) in enumerate(zip(leaves, layouts, strict=True)):
        want = [(d, d) for d in factor_sizes(lay)]
        for name, col in zip(("stats", "preconds"), cols[:2], strict=True):
            got = [tuple(jnp.shape(s)) for s in col[i]]
            if got != want:
                raise ValueError(
                    f"{owner}: leaf {leaf_paths(updates)[i]} of shape "
                    f"{jnp.shape(g)} needs `{name}` matrices of shapes {want}, "
                    f"got {got}. Was the state made by `init` on other params?"
                )
        if has_diag and jnp.shape(cols[2][i]) != jnp.shape(g):
            raise ValueError(
                f"{owner}: shape mismatch at leaf {leaf_paths(updates)[i]}: "
                f"`updates` has shape {jnp.shape(g)} but `diag` has shape "
                f"{jnp.shape(cols[2][i])}."
            )
