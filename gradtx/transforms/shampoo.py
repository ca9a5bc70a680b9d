"""Distributed Shampoo: blocked Kronecker-factored full-matrix AdaGrad, grafted.

Each parameter is reshaped (small dimensions merged), cut into blocks of at
most ``block_size`` along every dimension, and every block keeps one
statistic matrix per dimension, ``L_k ← β₂ L_k + (1 − β₂) G_(k) G_(k)ᵀ``. Their
inverse ``2r``-th roots (``r`` the block's rank) are recomputed by coupled
Newton iterations (:func:`inverse_pth_root`, every factor of every leaf in
one batch, zero-padded to the largest and masked, as the authors' code does)
every ``preconditioning_compute_steps`` steps and applied on every
dimension. The
preconditioned step is given the per-leaf norm of a diagonal method's step
(grafting, :func:`gradtx.combinators.graft.match_norm`). The alias, with the
full rule and references, is :func:`gradtx.shampoo`.

The state holds matrices whose shapes are not the params', so this module
walks the trees with :func:`gradtx._core.lifting.flatten_like` rather than
:func:`gradtx._core.lifting.map_leaves`.
"""

import itertools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import flatten_like, leaf_paths, state_zeros_like, upcast
from .._core.placement import auto_axes, zeros_derived
from ..combinators.graft import match_norm

GRAFT_TYPES = (
    "sgd",
    "adagrad",
    "rmsprop",
    "rmsprop_normalized",
    "adagrad_normalized",
    "sqrt_n",
)
# A root whose Newton error max|M − I| is at least this (or NaN) is not used:
# the previous preconditioner is kept (the authors' default threshold).
INVERSE_FAILURE_THRESHOLD = 0.1
# Newton is retried with a 10× larger ridge while its error exceeds this.
_RETRY_ERROR = 0.05
_RETRIES = 6
_NORMALIZE_EPS = 1e-25


# --------------------------------------------------------------------------
# Static layout of one leaf: merged shape and blocks.


class ShampooLayout(NamedTuple):
    """How one leaf is preconditioned (fixed by its shape).

    ``skip``: the leaf takes the grafting step only. Otherwise ``shape`` is the
    leaf reshaped with small dimensions merged and ``sizes[k]`` the block
    sizes along dimension ``k`` of ``shape``; ``merged`` says whether the
    reshape changed the shape.
    """

    skip: bool
    shape: tuple = ()
    sizes: tuple = ()
    merged: bool = False


def merge_small_dims(shape: tuple, max_dim: int) -> tuple:
    """Merges neighbouring dimensions while their product stays <= ``max_dim``.

    Size-1 dimensions disappear; an all-ones shape gives ``(1,)``: e.g.
    ``(16, 8)`` with ``max_dim = 4096`` gives ``(128,)``, with 1 ``(16, 8)``.
    """
    if shape and all(d == 1 for d in shape):
        return (1,)
    out, product = [], 1
    for d in shape:
        if product * d <= max_dim:
            product *= d
        else:
            if product > 1:
                out.append(product)
            product = d
    if product > 1:
        out.append(product)
    return tuple(out)


def shampoo_layout(
    shape: tuple, block_size: int, merge_block: int, rank_lt: int, dim_gt: int
) -> ShampooLayout:
    """The :class:`ShampooLayout` of a leaf of ``shape``."""
    if len(shape) < rank_lt or any(d > dim_gt for d in shape) or 0 in shape:
        return ShampooLayout(True)
    merged = merge_small_dims(tuple(shape), merge_block)
    sizes = []
    for d in merged:
        full, rest = divmod(d, block_size)
        sizes.append((block_size,) * full + ((rest,) if rest else ()))
    return ShampooLayout(False, merged, tuple(sizes), merged != tuple(shape))


def _blocks(x, layout):
    """The blocks of ``x`` (reshaped), in row-major order of block index."""
    parts = [x.reshape(layout.shape)]
    for axis, sizes in enumerate(layout.sizes):
        cuts = list(itertools.accumulate(sizes))[:-1]
        if cuts:
            parts = [q for p in parts for q in jnp.split(p, cuts, axis=axis)]
    return parts


def _unblock(parts, layout, shape):
    for axis in reversed(range(len(layout.sizes))):
        n = len(layout.sizes[axis])
        if n > 1:
            parts = [
                jnp.concatenate(parts[i : i + n], axis=axis)
                for i in range(0, len(parts), n)
            ]
    return parts[0].reshape(shape)


def _factor_sizes(layout):
    """The size of every factor matrix, block by block, dimension by dimension."""
    if layout.skip:
        return []
    return [d for block in itertools.product(*layout.sizes) for d in block]


# --------------------------------------------------------------------------
# Per-block maths.


def _gram(g, axis):
    """``G_(axis) G_(axis)ᵀ``: contraction over every other axis."""
    others = [i for i in range(g.ndim) if i != axis]
    return jnp.tensordot(g, g, axes=(others, others))


def _uniform(layout) -> bool:
    """Whether every block has the same shape (no ragged last block)."""
    return all(len(set(sizes)) == 1 for sizes in layout.sizes)


def _stacked_blocks(x, layout):
    """The blocks of ``x`` as one ``(blocks, *block_shape)`` array (uniform
    layouts): a reshape and a transpose, which the compiler partitions along
    a split dimension without gathering it."""
    k = len(layout.sizes)
    counts = [len(sizes) for sizes in layout.sizes]
    widths = [sizes[0] for sizes in layout.sizes]
    x = x.reshape([n for pair in zip(counts, widths, strict=True) for n in pair])
    x = x.transpose([2 * a for a in range(k)] + [2 * a + 1 for a in range(k)])
    return x.reshape(-1, *widths)


def _unstacked(blocks, layout, shape):
    k = len(layout.sizes)
    counts = [len(sizes) for sizes in layout.sizes]
    x = blocks.reshape(*counts, *blocks.shape[1:])
    return x.transpose([i for a in range(k) for i in (a, k + a)]).reshape(shape)


def _new_statistics(g, stats, layout, b2):
    w2 = jnp.where(b2 == 1.0, 1.0, 1.0 - b2)
    if _uniform(layout):  # every block at once, factor by factor
        blocks, k = _stacked_blocks(g, layout), len(layout.sizes)
        out = [None] * len(stats)
        for axis in range(k):
            others = [1 + i for i in range(k) if i != axis]
            gram = jax.lax.dot_general(blocks, blocks, ((others, others), ((0,), (0,))))
            old = jnp.stack(stats[axis::k])
            new = (b2 * old + w2 * gram).astype(old.dtype)
            out[axis::k] = list(new)
        return tuple(out)
    out, i = [], 0
    for block in _blocks(g, layout):
        for axis in range(block.ndim):
            out.append(b2 * stats[i] + w2 * _gram(block, axis))
            i += 1
    return tuple(s.astype(old.dtype) for s, old in zip(out, stats, strict=True))


def _preconditioned(g, preconds, layout):
    """Every block times its factor roots, one dimension after another: each
    product contracts the leading axis and appends the new one last, so after
    ``ndim`` products the axes are back in order."""
    if _uniform(layout):
        blocks, k = _stacked_blocks(g, layout), len(layout.sizes)
        for axis in range(k):
            roots = jnp.stack(preconds[axis::k]).astype(blocks.dtype)
            blocks = jax.lax.dot_general(blocks, roots, (((1,), (1,)), ((0,), (0,))))
        return _unstacked(blocks, layout, g.shape)
    out, i = [], 0
    for block in _blocks(g, layout):
        for _ in range(block.ndim):
            block = jnp.tensordot(block, preconds[i].astype(block.dtype), ((0,), (0,)))
            i += 1
        out.append(block)
    return _unblock(out, layout, g.shape)


def _matmul(a, b):
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _matrix_power(m, p):
    """``m^p`` for a (traced) whole ``p >= 1``, by repeated squaring."""

    def step(carry):
        e, power, base = carry
        power = jax.lax.cond(e % 2 == 1, lambda: _matmul(base, power), lambda: power)
        return e // 2, power, _matmul(base, base)

    start = (p, jnp.eye(m.shape[0], dtype=m.dtype), m)
    return jax.lax.while_loop(lambda c: c[0] > 0, step, start)[1]


def _largest_eigenvalue(mat, mask):
    """Power iteration (at most 100 steps, until the Rayleigh quotient moves
    by <= 1e-6) from a fixed start vector, zero on the padding."""
    n = mat.shape[-1]
    v0 = np.random.RandomState(1729).uniform(-1.0, 1.0, n)
    v0 = jnp.asarray(v0.astype(mat.dtype)) * mask

    def go_on(carry):
        i, _, _, moving = carry
        return (i < 100) & moving

    def step(carry):
        i, v, s, _ = carry
        v = v / jnp.linalg.norm(v)
        mv = _matmul(mat, v)
        s_new = jnp.dot(v, mv)
        return i + 1, mv, s_new, jnp.abs(s_new - s) > 1e-6

    start = (jnp.zeros((), jnp.int32), v0, jnp.zeros((), mat.dtype), jnp.asarray(True))
    return jax.lax.while_loop(go_on, step, start)[2]


def inverse_pth_root(mat, mask, p, matrix_eps):
    """``(L + ε λ_max I)^(-1/p)`` of the unmasked block of ``mat``, by coupled
    Newton iterations, and the final error ``max|M − I|``.

    ``mask`` (1 on the first ``n`` rows, 0 on zero padding) lets matrices of
    several sizes be batched. Newton (at most 100 steps) runs while the error
    is above 1e-6 and does not grow by 1.2× or more in a step (then the
    previous iterate is kept); the whole iteration is tried again with a 10×
    larger ridge, up to 6 tries, while the final error is above 0.05.
    """
    eye = jnp.diag(mask)
    mat = mat * mask[:, None] * mask[None, :]
    alpha = (-1.0 / p).astype(mat.dtype)
    ridge = matrix_eps * jnp.maximum(_largest_eigenvalue(mat, mask), 1e-25)
    if mat.shape[0] == 1:
        return (mat + ridge) ** alpha, jnp.zeros((), mat.dtype)

    def newton_on(carry):
        i, _, _, _, err, ratio = carry
        return (i < 100) & (err > 1e-6) & (ratio < 1.2)

    def newton(carry):
        i, m, h, _, err, _ = carry
        t = (1 - alpha) * eye + alpha * m
        m_new = _matmul(_matrix_power(t, p), m)
        err_new = jnp.max(jnp.abs(m_new - eye))
        return i + 1, m_new, _matmul(h, t), h, err_new, err_new / err

    def retry_on(carry):
        i, _, err = carry
        return (i == 0) | ((err > _RETRY_ERROR) & (i < _RETRIES))

    def attempt(carry):
        i = carry[0]
        damped = mat + ridge * (10**i).astype(mat.dtype) * eye
        z = (1 + p) / (2 * jnp.linalg.norm(damped))
        m0, h0 = damped * z, eye * z ** (1.0 / p)
        one = jnp.ones((), mat.dtype)
        start = (0, m0, h0, h0, jnp.max(jnp.abs(m0 - eye)), one)
        _, m, h, h_old, _, ratio = jax.lax.while_loop(newton_on, newton, start)
        h = jnp.where(ratio < 1.2, h, h_old)
        return i + 1, h, jnp.max(jnp.abs(m - eye))

    zero = jnp.zeros((), mat.dtype)
    start = (jnp.zeros((), jnp.int32), jnp.zeros_like(mat), zero)
    _, root, err = jax.lax.while_loop(retry_on, attempt, start)
    return root, err


def _all_roots(stats, old, exponents, matrix_eps):
    """New roots of every statistic, batched (zero-padded to the largest
    size), keeping the old root where Newton failed."""
    groups = {}
    for i, s in enumerate(stats):
        groups.setdefault(s.dtype, []).append(i)
    new = list(old)
    for idx in groups.values():
        size = max(stats[i].shape[0] for i in idx)
        pad = lambda x, n=size: jnp.pad(x, [(0, n - x.shape[0])] * 2)
        batch = jnp.stack([pad(stats[i]) for i in idx])
        masks = jnp.stack([jnp.arange(size) < stats[i].shape[0] for i in idx]).astype(
            batch.dtype
        )
        ps = jnp.asarray([exponents[i] for i in idx], jnp.int32)
        fn = lambda s, m, p: inverse_pth_root(s, m, p, matrix_eps)
        roots, errs = jax.vmap(fn)(batch, masks, ps)
        for k, i in enumerate(idx):
            n = stats[i].shape[0]
            bad = jnp.isnan(errs[k]) | (errs[k] >= INVERSE_FAILURE_THRESHOLD)
            new[i] = jnp.where(bad, old[i], roots[k, :n, :n].astype(old[i].dtype))
    return tuple(new)


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
        dims = _factor_dims(layout, jnp.ndim(p))
        for d, dim in zip(_factor_sizes(layout), dims, strict=True):
            zero = zeros_derived(p, (d, d), dtype, dim)
            eye = jnp.eye(d, dtype=dtype)
            stats.append(zero + matrix_eps * eye)
            roots.append(zero + eye)
        diag = zeros_derived(p, jnp.shape(p), dtype, tuple(range(jnp.ndim(p))))
        return tuple(stats), tuple(roots), diag if has_diag else ()

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        _reject_complex(owner, params, leaves, "params")
        cols = list(zip(*[init_leaf(p) for p in leaves], strict=True)) or [[]] * 3
        stats, roots, diag = (treedef.unflatten(list(c)) for c in cols)
        mu = state_zeros_like(params)
        return ShampooState(jnp.zeros([], jnp.int32), stats, roots, diag, mu, mu)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, ShampooState)
        leaves, treedef = jax.tree.flatten(updates)
        _reject_complex(owner, updates, leaves, "updates")
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
            fn = lambda g, s: _new_statistics(g, s, lay, b2)
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
        compute = lambda s, o: _all_roots(s, o, exps, matrix_eps)
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
                fn = lambda g, r, lay=lay: _preconditioned(g, r, lay)
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
                    new_diag.astype(dt(2)) if has_diag else (),
                    mu_s.astype(dt(3)),
                    mu_r.astype(dt(4)),
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


def _factor_dims(layout, ndim):
    """Which leaf dimension each factor's rows follow for placement: the
    leaf's own dimension when the leaf was not reshaped and that dimension is
    one block, else none. A factor of a dimension cut into several blocks is
    at most ``block_size`` wide and belongs to one block, not to the split:
    it is replicated (small), and under Auto axes the compiler may move it."""
    if layout.skip:
        return []
    whole = [len(sizes) == 1 for sizes in layout.sizes]
    dims = []
    for block in itertools.product(*layout.sizes):
        for axis in range(len(block)):
            follow = not layout.merged and whole[axis]
            dims.append((axis if follow else None, None))
    return dims


def _reject_complex(owner, tree, leaves, name):
    for i, x in enumerate(leaves):
        if jnp.iscomplexobj(x):
            raise TypeError(
                f"{owner}: complex leaf {leaf_paths(tree)[i]} of `{name}` (dtype "
                f"{jnp.result_type(x)}) is not supported: Shampoo's statistics "
                "and roots are real symmetric matrices."
            )


def _check_state_shapes(owner, updates, leaves, cols, layouts, has_diag):
    for i, (g, lay) in enumerate(zip(leaves, layouts, strict=True)):
        want = [(d, d) for d in _factor_sizes(lay)]
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
