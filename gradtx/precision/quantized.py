"""Compact optimizer state: moments stored as block-wise 8-bit codes.

Adam keeps 8 bytes of state per float32 parameter. Here each large moment leaf
is flattened, cut into blocks of ``block_size`` values (the last one padded
with zeros) and stored as one byte per value plus one float32 scale per block,
the block's largest magnitude (absmax): about 2 bytes per parameter for Adam
(``2 + 8 / block_size``), 1 for momentum. Every step dequantises to float32,
applies the usual rule and quantises the new moments again (Dettmers, Lewis,
Shleifer & Zettlemoyer, 2022, "8-bit Optimizers via Block-wise Quantization").

**Code maps.** A byte indexes a fixed table of values in ``[-1, 1]`` (or
``[0, 1]``), multiplied by the block's scale; a value is quantised to the
nearest table entry. The tables are the paper's *dynamic* (tree) map: the
magnitudes form decades ``(10^-(e+1), 10^-e]``, decade ``e`` holding
``2^(k-e)`` equally spaced values, so that large values get fine steps and a
value 10^-6 times the block's absmax still has a code of its own:

* signed (first moments, momentum): int8 codes -127..127, ``c ↦ sign(c)·a_|c|``
  with 0 and 127 magnitudes in 7 decades (k = 6: 64, 32, …, 1 values); the
  smallest nonzero magnitude is ``1e-6``, the step in the top decade ``0.9/64``;
  code -128 is never written;
* unsigned (second moments): uint8 codes 0..255, 0 and 255 magnitudes in 8
  decades (k = 7: 128, 64, …, 1), down to ``1e-7``. A positive value always
  gets a nonzero code (at least the smallest): a second moment rounded to 0
  would turn a tiny first moment ``m`` into a step ``m/ε``, a huge one.

The error of one round trip is at most half the gap between the two table
entries around ``x / absmax``, times ``absmax``: below ``0.0071·absmax`` for
the signed map and ``0.0036·absmax`` for the unsigned one, and for a value in
decade ``e`` a relative error of at most ``4.5 / 2^(k-e)`` (signed: 0.7 % near
absmax, 7 % just above ``absmax/10``; unsigned: half that). The block's absmax
is stored exactly.

**Adam's second moment** is stored as ``s = sqrt(ν)`` (field ``nu_sqrt``):
``s`` spans half the decades of ``ν``, and its relative error is that of
Adam's denominator: for a coordinate whose RMS is 1/100 of its block's
largest, at most 7 % (storing ``ν``, 10^-4 of its largest: 28 % on ``ν``,
14 % on the denominator).

**Small leaves** (fewer than ``min_size`` elements, 4096 by default, as in
bitsandbytes: biases, norm scales) keep their moments in float32: they hold
little memory, and quantising them gains nothing. Such a leaf's state is a
plain float32 array; a large leaf's is a :class:`QuantizedArray`.

**Non-finite values**: an inf or NaN moment makes its block's scale non-finite,
so the whole block dequantises to NaN/inf (the step was non-finite anyway; use
:func:`gradtx.apply_if_finite` to skip such steps). Complex leaves are refused.

Per-array maths (:func:`quantize_8bit`, :func:`dequantize_8bit`, the Adam and
momentum rules) is separate from the tree plumbing (``_unpack``/``_repack``),
which walks the state with :func:`gradtx._core.lifting.flatten_like` and checks every
leaf's layout against the one ``init`` gives; the rules themselves run through
:func:`gradtx._core.lifting.map_leaves` on the dequantised float32 trees.
"""

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import flatten_like, leaf_paths, map_leaves
from .._core.placement import (
    auto_axes,
    full_like,
    keep_tree,
    leading_slices_align,
    rows_only,
    zeros_derived,
)
from ..transforms.adam import bias_corrections, check_adam_args, first_moment_hat
from ..transforms.moments import trace_leaf


def _dynamic_magnitudes(k: int) -> np.ndarray:
    """0 and the ``2^(k+1) − 1`` magnitudes of the dynamic map, ascending.

    Decade ``e`` (``0 <= e <= k``) holds ``n = 2^(k−e)`` values
    ``10^-e·(0.1 + 0.9·j/n)``, ``j = 1..n``, at indices ``n − 1 + j``; index
    ``n − 1`` (``j = 0``) is the top of decade ``e + 1``, ``10^-(e+1)``.
    """
    values = [0.0]
    for e in range(k, -1, -1):
        n = 2 ** (k - e)
        values += [10.0**-e * (0.1 + 0.9 * j / n) for j in range(1, n + 1)]
    return np.asarray(values)


_SIGNED_K, _UNSIGNED_K = 6, 7  # int8: 127 magnitudes; uint8: 255
_MAGNITUDES = _dynamic_magnitudes(_SIGNED_K)
_TABLES = {
    True: np.concatenate([-_MAGNITUDES[:0:-1], _MAGNITUDES]).astype(np.float32),
    False: _dynamic_magnitudes(_UNSIGNED_K).astype(np.float32),
}
_SIGNED_OFFSET = 127  # table index of the signed code 0
_CODE_DTYPES = {True: jnp.dtype(jnp.int8), False: jnp.dtype(jnp.uint8)}
_NOT_COMPLEX = "8-bit quantisation stores real moments only"


class QuantizedArray(NamedTuple):
    """An array stored as block-wise 8-bit codes (see :func:`quantize_8bit`).

    Attributes:
      codes: ``(n_blocks, block_size)`` int8 (signed map) or uint8 (unsigned
        map) indices into the code table; the flattened array, zero-padded.
      scales: ``(n_blocks,)`` float32: each block's largest magnitude.
    """

    codes: chex.Array
    scales: chex.Array


def _n_blocks(size: int, block_size: int) -> int:
    return -(-size // block_size)


def quantize_8bit(
    x: chex.Array, block_size: int = 256, *, signed: bool = True
) -> QuantizedArray:
    """Block-wise dynamic 8-bit quantisation of one array.

    ``x`` is flattened, padded with zeros to whole blocks of ``block_size``
    values, and each value is replaced by the code of the entry of the dynamic
    map nearest to ``x / absmax`` (``absmax``: the largest magnitude in its
    block, kept in float32). The maps are described in
    :mod:`gradtx.precision.quantized`; round-trip error is below
    ``0.0071·absmax`` (signed) or ``0.0036·absmax`` (unsigned).

    Reference: Dettmers et al., 2022, "8-bit Optimizers via Block-wise
    Quantization".

    Args:
      x: a real array of any shape (bfloat16/float16 are read in float32).
      block_size: values per block (a Python int >= 1).
      signed: the signed map (int8 codes); ``False`` for the unsigned one
        (uint8 codes) of values >= 0, where negatives read as 0 and positive
        values never round to 0.

    Returns:
      A :class:`QuantizedArray`; :func:`dequantize_8bit` with ``x.shape``
      reverses it.

    Raises:
      TypeError: for a complex or non-float ``x``, or a ``block_size`` that is
        not an int.
      ValueError: for ``block_size`` < 1.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> q = gradtx.quantize_8bit(jnp.array([1.0, -4.0, 0.0]), block_size=2)
      >>> q.codes.dtype, q.codes.shape, [float(s) for s in q.scales]
      (dtype('int8'), (2, 2), [4.0, 0.0])
      >>> [round(float(v), 3) for v in gradtx.dequantize_8bit(q, (3,))]
      [1.019, -4.0, 0.0]
    """
    _check_int("quantize_8bit", "block_size", block_size, low=1)
    _validate.flag("quantize_8bit", "signed", signed)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"quantize_8bit: `x` must be a real float array, got dtype {x.dtype}."
        )
    return _quantize(x, block_size, bool(signed))


# Compiled (inlined into an enclosing jit): eager calls then cost one dispatch,
# not one per elementwise op.
@functools.partial(jax.jit, static_argnums=(1, 2), inline=True)
def _quantize(x: chex.Array, block_size: int, signed: bool) -> QuantizedArray:
    n_blocks = _n_blocks(x.size, block_size)
    flat = jnp.ravel(x).astype(jnp.float32)
    flat = jnp.pad(flat, (0, n_blocks * block_size - x.size))
    blocks = flat.reshape(n_blocks, block_size)
    absmax = jnp.max(jnp.abs(blocks), axis=1)
    # XLA computes x / absmax as x · (1 / absmax), and 1 / absmax is subnormal
    # (flushed to 0) above 2^126: such blocks are scaled by 2^-32 first.
    shrink = jnp.where(absmax > 2.0**100, 2.0**-32, 1.0)[:, None]
    safe = jnp.where(absmax > 0, absmax, 1.0)[:, None]
    normed = (blocks * shrink) / (safe * shrink)
    normed = jnp.where(jnp.isnan(normed), 0.0, normed)  # its block's scale is NaN
    if signed:
        index = _magnitude_index(jnp.abs(normed), _SIGNED_K, keep_nonzero=False)
        codes = jnp.where(normed < 0, -index, index)
    else:
        codes = _magnitude_index(jnp.maximum(normed, 0.0), _UNSIGNED_K, True)
    return QuantizedArray(rows_only(codes.astype(_CODE_DTYPES[signed])), absmax)


def _magnitude_index(a: chex.Array, k: int, keep_nonzero: bool) -> chex.Array:
    """The index of the entry of :func:`_dynamic_magnitudes` ``(k)`` nearest to
    ``a`` in ``[0, 1]``, in closed form: ``k`` comparisons and one rounding
    (a binary search over the table, or a log10, compiled several times
    slower on CPU).

    ``a`` in decade ``e`` (``10^-(e+1) < a <= 10^-e``) rounds to the nearest of
    the decade's evenly spaced values and its lower edge (a product rounded
    the wrong way at an edge still picks that edge). Below the lowest decade
    the choice is 0 or ``10^-k`` (``10^-k`` when ``keep_nonzero`` and
    ``a > 0``).
    """
    e = sum((a <= np.float32(10.0**-i)).astype(jnp.int32) for i in range(1, k))
    pow10 = jnp.asarray(10.0 ** np.arange(k), jnp.float32)[e]
    n = jnp.left_shift(1, k - e).astype(jnp.float32)
    j = jnp.clip(jnp.round((a * pow10 - 0.1) * (n / 0.9)), 0, n)
    index = (n - 1 + j).astype(jnp.int32)
    tiny = np.float32(10.0**-k)
    bottom = (a > (0.0 if keep_nonzero else tiny / 2)).astype(jnp.int32)
    return jnp.where(a <= tiny, bottom, index)


def dequantize_8bit(q: QuantizedArray, shape: Sequence[int]) -> chex.Array:
    """The float32 array of ``shape`` that ``q`` encodes.

    The map (signed or unsigned) is read from the codes' dtype (int8 or
    uint8). See :func:`quantize_8bit`, which has an example.

    Args:
      q: a :class:`QuantizedArray` made for an array of ``shape``.
      shape: the array's shape.

    Raises:
      TypeError: when ``q`` is not a :class:`QuantizedArray` of int8/uint8
        codes.
      ValueError: when its layout does not fit ``shape``.
    """
    shape = tuple(int(d) for d in shape)
    if not isinstance(q, QuantizedArray):
        raise TypeError(
            f"dequantize_8bit: `q` must be a QuantizedArray, got {type(q).__name__}."
        )
    problem = _layout_problem(q, math.prod(shape), None, None)
    if problem:
        raise ValueError(f"dequantize_8bit: `q` {problem} (shape {list(shape)}).")
    return _dequantize(q, shape)


@functools.partial(jax.jit, static_argnums=1, inline=True)
def _dequantize(q: QuantizedArray, shape: tuple[int, ...]) -> chex.Array:
    signed = jnp.dtype(q.codes.dtype) == _CODE_DTYPES[True]
    index = q.codes.astype(jnp.int32) + (_SIGNED_OFFSET if signed else 0)
    values = jnp.asarray(_TABLES[signed])[index] * q.scales[:, None]
    return values.reshape(-1)[: math.prod(shape)].reshape(shape)


def _layout_problem(
    q: Any, size: int, signed: bool | None, block_size: int | None
) -> str | None:
    """What is wrong with ``q`` as the quantised form of ``size`` values.

    ``signed`` and ``block_size`` are checked unless ``None``.
    """
    codes, scales = getattr(q, "codes", None), getattr(q, "scales", None)
    if not (hasattr(codes, "shape") and hasattr(scales, "shape")):
        return "does not hold arrays `codes` and `scales`"
    dtypes = [_CODE_DTYPES[signed]] if signed is not None else _CODE_DTYPES.values()
    if jnp.dtype(codes.dtype) not in dtypes:
        want = " or ".join(d.name for d in dtypes)
        return f"has {codes.dtype} codes where {want} is expected"
    bs = block_size or (codes.shape[-1] if codes.ndim == 2 else 0)
    if codes.ndim != 2 or bs < 1 or tuple(codes.shape) != (_n_blocks(size, bs), bs):
        return (
            f"has codes of shape {list(codes.shape)}, which are not {size} "
            f"values in blocks of {block_size or 'equal size'}"
        )
    if tuple(scales.shape) != codes.shape[:1] or scales.dtype != jnp.float32:
        return (
            f"has scales of shape {list(scales.shape)} and dtype {scales.dtype} "
            f"for {codes.shape[0]} blocks (float32 expected)"
        )
    return None


def _check_int(owner: str, name: str, value: Any, *, low: int) -> None:
    """A static Python int >= ``low`` (it fixes the state's shapes)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{owner}: `{name}` must be a Python int >= {low} (it sets the "
            f"state's shapes, so it cannot be traced; with inject_hyperparams, "
            f"list it in static_args), got {value!r} of type "
            f"{type(value).__name__}."
        )
    if value < low:
        raise ValueError(f"{owner}: `{name}` must be >= {low}, got {value}.")


# --------------------------------------------------------------------------
# Tree plumbing: which leaves are quantised, and checked (un)packing.


def _init_moment(owner: str, params: Any, block_size, min_size, signed) -> Any:
    """Zero state: a :class:`QuantizedArray` per large leaf, float32 zeros else."""
    paths = leaf_paths(params)

    def leaf(i, p):
        if jnp.iscomplexobj(p):
            raise TypeError(
                f"{owner}: complex leaf {paths[i]} (dtype {jnp.result_type(p)}) "
                f"is not supported: {_NOT_COMPLEX}."
            )
        size = int(np.prod(jnp.shape(p)))
        if size < min_size:
            return full_like(p, 0, jnp.float32)
        n_blocks = _n_blocks(size, block_size)
        # Blocks run along the flattened leaf: they split as its leading
        # dimension does, when no block straddles two slices (as the
        # compiler propagates a split through the reshape).
        rows = (0,) if leading_slices_align(p, block_size) else (None,)
        codes = zeros_derived(
            p, (n_blocks, block_size), _CODE_DTYPES[signed], (*rows, None)
        )
        return QuantizedArray(codes, zeros_derived(p, (n_blocks,), jnp.float32, rows))

    leaves, treedef = jax.tree.flatten(params)
    return treedef.unflatten([leaf(i, p) for i, p in enumerate(leaves)])


def _unpack(owner, name, updates, state, sizes, signed) -> tuple[Any, list[bool]]:
    """The state's moments as float32 arrays shaped like ``updates``' leaves.

    Also returns which leaves are quantised. Raises, naming the leaf path, for
    a state leaf whose kind or layout is not what ``init`` makes.
    """
    block_size, min_size = sizes
    leaves, treedef = jax.tree.flatten(updates)
    entries = flatten_like(treedef, state, name=name, owner=owner)
    out, quantised = [], []
    for i, (g, s) in enumerate(zip(leaves, entries, strict=True)):
        size = int(np.prod(jnp.shape(g)))
        is_q = size >= min_size
        if is_q != isinstance(s, QuantizedArray):
            want = "a QuantizedArray" if is_q else "a float32 array"
            raise ValueError(
                f"{owner}: leaf {leaf_paths(updates)[i]} of `{name}` is a "
                f"{type(s).__name__} where {want} is expected for a leaf of "
                f"{size} elements (min_size={min_size}). Was the state made by "
                "`init` with other block_size/min_size, or for other params?"
            )
        if is_q:
            problem = _layout_problem(s, size, signed, block_size)
            if problem:
                raise ValueError(
                    f"{owner}: leaf {leaf_paths(updates)[i]} of `{name}` {problem} "
                    f"(updates shape {list(jnp.shape(g))}). Was the state made by "
                    "`init` with another block_size, or for other params?"
                )
            shape = tuple(jnp.shape(g))
            s = auto_axes(lambda q, shape=shape: _dequantize(q, shape), s, out_like=g)
        out.append(s)
        quantised.append(is_q)
    return treedef.unflatten(out), quantised


def _repack(tree: Any, quantised: list[bool], block_size: int, signed: bool) -> Any:
    """Quantises the leaves of ``tree`` marked in ``quantised``; keeps the rest."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(
        [
            auto_axes(lambda y: _quantize(y, block_size, signed), x) if q else x
            for x, q in zip(leaves, quantised, strict=True)
        ]
    )


def check_sizes(owner: str, block_size: Any, min_size: Any) -> None:
    _check_int(owner, "block_size", block_size, low=1)
    _check_int(owner, "min_size", min_size, low=0)


# --------------------------------------------------------------------------
# Adam.


class ScaleByAdam8bitState(NamedTuple):
    """Step count (int32, saturating), 8-bit first moment and RMS.

    Each leaf of ``mu`` and ``nu_sqrt`` is a :class:`QuantizedArray` (leaves of
    at least ``min_size`` elements: signed codes for ``mu``, unsigned for
    ``nu_sqrt``) or a float32 array (smaller leaves). ``nu_sqrt`` holds
    ``sqrt(ν)``, the square root of Adam's second moment.
    """

    count: chex.Array
    mu: Updates
    nu_sqrt: Updates


def _adam_8bit_leaf(g, mu, s, *, b1, b2, eps, eps_root, c1, c2, c1_next):
    mu = _maths.ema(g, mu, b1)
    nu = _maths.ema_sq(g, s * s, b2)
    mu_hat = first_moment_hat(g, mu, b1, c1, c1_next)
    return mu_hat / (jnp.sqrt(nu / c2 + eps_root) + eps), mu, jnp.sqrt(nu)


def scale_by_adam_8bit(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    *,
    nesterov: bool = False,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    """Adam scaling with moments kept as block-wise 8-bit codes.

    ``u = m̂ / (sqrt(v̂ + ε_root) + ε)`` as in :func:`gradtx.scale_by_adam`;
    between steps ``m`` is stored with the signed dynamic map and ``sqrt(v)``
    with the unsigned one (about 2 bytes per parameter). See
    :func:`gradtx.adam_8bit` for the full rule and the reference.

    Args:
      b1, b2, eps, eps_root, nesterov: as in :func:`gradtx.scale_by_adam`.
      block_size: values per quantisation block (Python int >= 1).
      min_size: leaves with fewer elements keep float32 moments (int >= 0).

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleByAdam8bitState`.

    Raises:
      ValueError/TypeError: for an invalid hyperparameter (named), a complex
        leaf at ``init``, or a state whose layout does not fit the updates.
    """
    owner = "scale_by_adam_8bit"
    check_adam_args(owner, b1, b2, eps, eps_root)
    _validate.flag(owner, "nesterov", nesterov)
    check_sizes(owner, block_size, min_size)
    sizes = (block_size, min_size)

    def init_fn(params):
        return ScaleByAdam8bitState(
            count=jnp.zeros([], jnp.int32),
            mu=_init_moment(owner, params, block_size, min_size, True),
            nu_sqrt=_init_moment(owner, params, block_size, min_size, False),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdam8bitState)
        mu, quantised = _unpack(owner, "mu", updates, state.mu, sizes, True)
        s, _ = _unpack(owner, "nu_sqrt", updates, state.nu_sqrt, sizes, False)
        count = _maths.safe_increment(state.count)
        c1, c2, c1_next = bias_corrections(b1, b2, count, nesterov)
        consts = dict(
            b1=b1, b2=b2, eps=eps, eps_root=eps_root, c1=c1, c2=c2, c1_next=c1_next
        )
        updates, mu, s = map_leaves(
            lambda g, m, r: _adam_8bit_leaf(g, m, r, **consts),
            updates,
            mu,
            s,
            names=["mu", "nu_sqrt"],
            owner=owner,
            nout=3,
            complex_ok=_NOT_COMPLEX,
        )
        # The blocks are reshaped from the update: keep them where they were.
        return updates, ScaleByAdam8bitState(
            count=count,
            mu=keep_tree(_repack(mu, quantised, block_size, True), state.mu),
            nu_sqrt=keep_tree(_repack(s, quantised, block_size, False), state.nu_sqrt),
        )

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------
# Momentum.


class Trace8bitState(NamedTuple):
    """The momentum buffer of :func:`trace_8bit`.

    Each leaf is a :class:`QuantizedArray` of signed codes (leaves of at least
    ``min_size`` elements) or a float32 array (smaller leaves).
    """

    trace: Updates


def trace_8bit(
    decay: chex.Numeric,
    nesterov: bool = False,
    *,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    """Heavy-ball momentum with the buffer kept as block-wise 8-bit codes.

    ``v ← g + β·v``; ``u = v`` (Nesterov: ``u = g + β·v``) as in
    :func:`gradtx.trace`, with ``v`` stored between steps with the signed
    dynamic map (about 1 byte per parameter). See :func:`gradtx.sgd_8bit`.

    Args:
      decay: the momentum coefficient β, in [0, 1].
      nesterov: use Nesterov's look-ahead form.
      block_size: values per quantisation block (Python int >= 1).
      min_size: leaves with fewer elements keep a float32 buffer (int >= 0).

    Returns:
      A :class:`GradientTransformation` with state :class:`Trace8bitState`.

    Raises:
      ValueError/TypeError: for an invalid hyperparameter (named), a complex
        leaf at ``init``, or a state whose layout does not fit the updates.
    """
    owner = "trace_8bit"
    _validate.decay(owner, "decay", decay, allow_one=True)
    _validate.flag(owner, "nesterov", nesterov)
    check_sizes(owner, block_size, min_size)
    sizes = (block_size, min_size)

    def init_fn(params):
        return Trace8bitState(_init_moment(owner, params, block_size, min_size, True))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, Trace8bitState)
        trace, quantised = _unpack(owner, "trace", updates, state.trace, sizes, True)
        updates, trace = map_leaves(
            lambda g, t: trace_leaf(g, t, decay=decay, nesterov=nesterov),
            updates,
            trace,
            names=["trace"],
            owner=owner,
            nout=2,
            complex_ok=_NOT_COMPLEX,
        )
        trace = _repack(trace, quantised, block_size, True)
        return updates, Trace8bitState(keep_tree(trace, state.trace))

    return GradientTransformation(init_fn, update_fn)
