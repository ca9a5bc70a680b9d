"""Linear algebra used by preconditioned optimizers.

* :func:`power_iteration`: the dominant eigenpair of a matrix or of a
  matrix-free linear operator on pytrees;
* :func:`matrix_inverse_pth_root`: ``(A + εI)^(-1/p)`` of a symmetric PSD
  matrix by coupled Newton iterations (the Shampoo preconditioner);
* :func:`nnls`: non-negative least squares by Nesterov-accelerated projected
  gradient.

All three are traceable (``jit``/``vmap``) and check concrete arguments loudly;
a traced iteration count or tolerance is accepted as is.
"""

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._core import tree_ops as gtree
from ._core import validation as _validate

__all__ = ["matrix_inverse_pth_root", "nnls", "power_iteration"]

_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _count(owner: str, name: str, value: Any, *, low: int = 0) -> None:
    """A whole number >= ``low`` (Python, NumPy or concrete JAX scalar)."""
    if isinstance(value, jax.core.Tracer):
        return
    _validate.number(owner, name, value, low=low)
    if not float(value).is_integer():
        raise ValueError(f"{owner}: `{name}` must be a whole number, got {value!r}.")


def _square_matrix(owner: str, matrix: Any) -> jax.Array:
    """``matrix`` as a floating JAX array of shape (n, n), or a clear error."""
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"{owner}: `matrix` must be a square 2-D array, got shape {matrix.shape}."
        )
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        raise ValueError(
            f"{owner}: `matrix` must have a floating dtype, got {matrix.dtype}."
        )
    return matrix


def _unit(tree: Any) -> Any:
    """``tree / ‖tree‖`` (the 2-norm over all leaves)."""
    return gtree.scale(1.0 / gtree.norm(tree), tree)


def power_iteration(
    matrix: chex.Array | Callable[[chex.ArrayTree], chex.ArrayTree],
    *,
    v0: chex.ArrayTree | None = None,
    num_iters: chex.Numeric = 100,
    error_tolerance: chex.Numeric = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
    key: chex.PRNGKey | None = None,
) -> tuple[chex.Numeric, chex.ArrayTree]:
    r"""The dominant eigenvalue (largest in modulus) and its eigenvector.

    Starting from the unit vector :math:`v_0`, repeat

    .. math::

      v_{k} = z_{k-1} / \|z_{k-1}\|, \quad z_k = A v_k, \quad
      \lambda_k = \langle v_k, z_k \rangle

    (with :math:`z_0 = A v_0`) until :math:`\|z_k - \lambda_k v_k\| /
    |\lambda_k| <` ``error_tolerance`` or ``num_iters`` steps were taken.
    Returns :math:`(\lambda_k, z_k / \|z_k\|)`.

    ``matrix`` is a square array or a function computing :math:`v \mapsto A v`
    on pytrees (then ``v0``, a pytree of the function's input structure, is
    required). Without ``v0`` an array's start vector is drawn uniformly from
    :math:`[-1, 1]^n` with ``key`` (``PRNGKey(0)`` when ``None``).

    Unlike Optax: a non-square or integer ``matrix``, a ``v0`` of the wrong
    shape, and a concrete negative ``num_iters`` or ``error_tolerance`` raise
    ``ValueError``; bfloat16/float16 inputs are iterated in float32 (results
    cast back); the eigenvalue follows the input dtype under x64; when
    :math:`A v = 0` (e.g. a zero matrix) the result is :math:`(0, v)` where
    Optax returns NaN.

    Args:
      matrix: a square array, or a function returning the matrix-vector
        product on pytrees.
      v0: the start vector (or pytree); required when ``matrix`` is callable.
      num_iters: the maximum number of iterations.
      error_tolerance: stop when the relative residual falls below it.
      precision: the ``lax.Precision`` of the matrix-vector product (arrays).
      key: the random key for the start vector when ``v0`` is ``None``.

    Returns:
      ``(eigenvalue, eigenvector)``; the eigenvector has unit 2-norm and the
      structure of ``v0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import power_iteration
      >>> eig, vec = power_iteration(jnp.diag(jnp.array([1.0, -4.0, 2.0])))
      >>> round(float(eig), 4), jnp.abs(vec).round(4).tolist()
      (-4.0, [0.0, 1.0, 0.0])

    References:
      Golub & Van Loan, `Matrix Computations
      <https://epubs.siam.org/doi/book/10.1137/1.9781421407944>`_, §7.3.1.
    """
    owner = "power_iteration"
    _count(owner, "num_iters", num_iters)
    if not isinstance(error_tolerance, jax.core.Tracer):
        _validate.non_negative(owner, "error_tolerance", error_tolerance)
    back = None
    if callable(matrix):
        if v0 is None:
            raise ValueError(
                f"{owner}: `v0` is required when `matrix` is a function (it "
                "gives the structure of the vectors)."
            )
        mvp = matrix
    else:
        matrix = _square_matrix(owner, matrix)
        if matrix.dtype in _LOW_PRECISION:
            back, matrix = matrix.dtype, matrix.astype(jnp.float32)
        n = matrix.shape[-1]
        if v0 is None:
            key = jax.random.PRNGKey(0) if key is None else key
            v0 = jax.random.uniform(key, (n,), matrix.dtype, -1.0, 1.0)
        v0 = jnp.asarray(v0)
        if v0.shape != (n,):
            raise ValueError(
                f"{owner}: `v0` must have shape ({n},) to match `matrix` of shape "
                f"{matrix.shape}, got {v0.shape}."
            )
        v0 = v0.astype(matrix.dtype)
        mvp = lambda v: jnp.matmul(matrix, v, precision=precision)

    def not_done(carry):
        v, z, eig, i = carry
        residual = gtree.norm(gtree.sub(z, gtree.scale(eig, v)))
        return ~(jnp.abs(residual / eig) < error_tolerance) & (i < num_iters)

    def unit_or(z, v):
        # A zero product (A v = 0) keeps v: it is an eigenvector for 0.
        norm = gtree.norm(z)
        return gtree.where(norm > 0, gtree.scale(1.0 / norm, z), v)

    def step(carry):
        v, z, _, i = carry
        v = unit_or(z, v)
        z = mvp(v)
        return v, z, gtree.vdot(v, z), i + 1

    v0 = _unit(v0)
    z0 = mvp(v0)
    eig_dtype = jax.eval_shape(gtree.vdot, v0, z0).dtype
    start = (v0, z0, jnp.zeros((), eig_dtype), jnp.zeros((), jnp.int32))
    v, z, eig, _ = lax.while_loop(not_done, step, start)
    vec = unit_or(z, v)
    if back is not None:
        eig, vec = eig.astype(back), vec.astype(back)
    return eig, vec


def _matrix_power(m: jax.Array, p: Any, precision: Any) -> jax.Array:
    """``m^p`` for a whole ``p >= 1`` by repeated squaring.

    For ``p`` a power of two this is exactly ``log2(p)`` squarings; a traced
    ``p`` runs the same squarings in a loop.
    """
    mul = lambda a, b: jnp.matmul(a, b, precision=precision)
    if not isinstance(p, jax.core.Tracer):
        p, result, base = int(p), None, m
        while True:
            if p & 1:
                result = base if result is None else mul(result, base)
            p >>= 1
            if not p:
                return result
            base = mul(base, base)

    def body(carry):
        result, base, e = carry
        result = jnp.where(e % 2 == 1, mul(result, base), result)
        return result, mul(base, base), e // 2

    eye = jnp.eye(m.shape[0], dtype=m.dtype)
    e = jnp.asarray(p).astype(jnp.int32)
    return lax.while_loop(lambda c: c[2] > 0, body, (eye, m, e))[0]


def matrix_inverse_pth_root(
    matrix: chex.Array,
    p: chex.Numeric,
    num_iters: chex.Numeric = 100,
    ridge_epsilon: chex.Numeric = 1e-6,
    error_tolerance: chex.Numeric = 1e-6,
    precision: lax.Precision = lax.Precision.HIGHEST,
) -> tuple[chex.Array, chex.Array]:
    r"""``(A + εI)^(-1/p)`` of a symmetric PSD matrix, by coupled Newton steps.

    With :math:`\epsilon = \text{ridge\_epsilon} \cdot \max(\lambda_{\max},
    10^{-16})` (:math:`\lambda_{\max}` from :func:`power_iteration`),
    :math:`D = A + \epsilon I`, :math:`z = (1 + p) / (2 \|D\|_F)` and
    :math:`\alpha = -1/p`, start from :math:`M_0 = z D`,
    :math:`H_0 = z^{1/p} I` and iterate

    .. math::

      T_k = (1 - \alpha) I + \alpha M_k, \quad
      M_{k+1} = T_k^p M_k, \quad H_{k+1} = H_k T_k

    while :math:`\max|M_k - I| >` ``error_tolerance``, the error keeps
    falling (it may grow by at most a factor 1.2 per step) and fewer than
    ``num_iters`` steps were taken. :math:`H` converges to
    :math:`D^{-1/p}`; if the last step raised the error past the factor, the
    previous :math:`H` is returned. A 1×1 ``matrix`` is computed directly.

    Unlike Optax, any whole ``p >= 1`` is exact (Optax rounds ``log2 p`` and
    silently computes another root unless ``p`` is 1, 2, 4 or 8); a
    non-square or integer ``matrix``, a concrete ``p`` that is not a whole
    number >= 1, a negative ``num_iters``, ``ridge_epsilon`` or
    ``error_tolerance`` raise ``ValueError``; the 1×1 error is a 0 array
    rather than the Python int 0.

    Args:
      matrix: the symmetric positive semi-definite matrix, shape (n, n).
      p: the root, a whole number >= 1.
      num_iters: the maximum number of Newton steps.
      ridge_epsilon: the relative ridge added to make ``matrix`` definite.
      error_tolerance: stop when ``max|M - I|`` falls to it.
      precision: the ``lax.Precision`` of the matrix products.

    Returns:
      ``(root, error)``: the inverse p-th root (dtype of ``matrix``) and the
      final ``max|M - I|``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import matrix_inverse_pth_root
      >>> root, _ = matrix_inverse_pth_root(jnp.diag(jnp.array([4.0, 16.0])), 2)
      >>> jnp.round(root, 4).tolist()
      [[0.5, 0.0], [0.0, 0.25]]

    References:
      Higham, `Functions of Matrices: Theory and Computation
      <https://epubs.siam.org/doi/book/10.1137/1.9780898717778>`_, 2008,
      eq. (7.18); Gupta et al., `Shampoo <https://arxiv.org/abs/1802.09568>`_.
    """
    owner = "matrix_inverse_pth_root"
    matrix = _square_matrix(owner, matrix)
    _count(owner, "p", p, low=1)
    _count(owner, "num_iters", num_iters)
    for name, value in (("ridge_epsilon", ridge_epsilon),
                        ("error_tolerance", error_tolerance)):  # fmt: skip
        if not isinstance(value, jax.core.Tracer):
            _validate.non_negative(owner, name, value)
    n = matrix.shape[0]
    alpha = jnp.asarray(-1.0 / p, jnp.float32)
    eye = jnp.eye(n, dtype=jnp.float32)
    max_ev, _ = power_iteration(matrix, precision=precision)
    ridge = ridge_epsilon * jnp.maximum(max_ev, 1e-16)
    if n == 1:
        root = ((matrix + ridge) ** alpha).astype(matrix.dtype)
        return root, jnp.zeros((), jnp.float32)

    root, err = coupled_newton_root(
        matrix + ridge * eye, eye, p, alpha, num_iters, error_tolerance, precision
    )
    return root.astype(matrix.dtype), err


def coupled_newton_root(
    damped: jax.Array,
    eye: jax.Array,
    p: Any,
    alpha: Any,
    num_iters: Any,
    error_tolerance: Any,
    precision: Any = lax.Precision.HIGHEST,
) -> tuple[jax.Array, jax.Array]:
    """The coupled Newton iteration of :func:`matrix_inverse_pth_root` on a
    definite ``damped`` matrix: ``(root, max|M − I|)``.

    ``eye`` is the identity, or ``diag(mask)`` for a matrix zero-padded to a
    batch's size (the padding stays zero). Shared with Shampoo's batched
    roots (:mod:`gradtx.transforms.shampoo_roots`). ``alpha`` is ``−1/p``
    in the caller's dtype (Optax's root rounds it to float32).
    """

    def go_on(carry):
        i, _, _, _, err, improving = carry
        return (i < num_iters) & (err > error_tolerance) & improving

    def newton(carry):
        i, m, h, _, err, _ = carry
        t = (1 - alpha) * eye + alpha * m
        m_new = jnp.matmul(_matrix_power(t, p, precision), m, precision=precision)
        h_new = jnp.matmul(h, t, precision=precision)
        err_new = jnp.max(jnp.abs(m_new - eye))
        return i + 1, m_new, h_new, h, err_new, err_new < 1.2 * err

    z = (1 + p) / (2 * jnp.linalg.norm(damped))
    m0 = damped * z
    h0 = eye * jnp.power(z, 1.0 / p)
    err0 = jnp.max(jnp.abs(m0 - eye))
    start = (jnp.zeros((), jnp.int32), m0, h0, h0, err0, jnp.asarray(True))
    _, m, h, h_prev, _, improving = lax.while_loop(go_on, newton, start)
    return jnp.where(improving, h, h_prev), jnp.max(jnp.abs(m - eye))


def _spectral_bound(q: jax.Array) -> jax.Array:
    """``min(‖Q‖_F, ‖Q‖_1)``: an upper bound on the spectral radius of ``Q``."""
    if q.size == 0:
        return jnp.zeros((), q.dtype)
    return jnp.minimum(jnp.linalg.norm(q, "fro"), jnp.linalg.norm(q, 1))


def nnls(
    A: chex.Array,  # Optax's name (a matrix)
    b: chex.Array,
    iters: int,
    unroll: int | bool = 1,
    L: chex.Numeric | None = None,
) -> chex.Array:
    r"""Non-negative least squares: :math:`\min_{x \ge 0} \|A x - b\|_2`.

    Fast projected gradient (Nesterov momentum on the projected gradient step)
    on :math:`f(x) = \tfrac12 x^\top Q x - q^\top x` with :math:`Q = A^\top A`,
    :math:`q = A^\top b`; from :math:`x_0 = y_0 = 0`, :math:`c_0 = 0`:

    .. math::

      c_{k+1} = \tfrac12 (1 + \sqrt{1 + 4 c_k^2}), \quad
      x_{k+1} = \max(y_k - (Q y_k - q) / L, 0), \quad
      y_{k+1} = x_{k+1} + \tfrac{c_k - 1}{c_{k+1}} (x_{k+1} - x_k)

    for ``iters`` steps, where :math:`L \ge \lambda_{\max}(Q)` (by default
    :math:`\min(\|Q\|_F, \|Q\|_1)`; a zero ``L`` is replaced by 1).

    Unlike Optax: bad shapes and a concrete negative or NaN ``iters`` or ``L``
    raise ``ValueError`` naming the argument (Optax asserts); integer inputs
    are solved in floating point; bfloat16/float16 inputs are solved in
    float32 and the result cast back.

    Args:
      A: the matrix, shape (M, N).
      b: the target, shape (M,) or (M, K) for K problems at once.
      iters: the number of iterations (a Python int: the scan length).
      unroll: passed to :func:`jax.lax.scan`.
      L: an upper bound on the largest eigenvalue of :math:`A^\top A`.

    Returns:
      ``x``, shape (N,) or (N, K), with ``x >= 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import nnls
      >>> x = nnls(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([5.0, 6.0]), 1000)
      >>> [round(float(v), 2) for v in x]
      [0.0, 1.7]

    References:
      Polyak, `Projected gradient method for non-negative least square
      <http://www.ams.org/books/conm/636/>`_, Contemp. Math. 636, 2015.
    """
    owner = "nnls"
    A, b = jnp.asarray(A), jnp.asarray(b)
    if A.ndim != 2:
        raise ValueError(f"{owner}: `A` must be 2-D (M, N), got shape {A.shape}.")
    if b.ndim not in (1, 2) or b.shape[0] != A.shape[0]:
        raise ValueError(
            f"{owner}: `b` must have shape ({A.shape[0]},) or ({A.shape[0]}, K) to "
            f"match `A` of shape {A.shape}, got {b.shape}."
        )
    _validate.integer(owner, "iters", iters)
    if L is not None and not isinstance(L, jax.core.Tracer) and np.ndim(L) == 0:
        _validate.non_negative(owner, "L", L)
    dtype = jnp.result_type(A, b, 1.0)
    back = dtype if dtype in _LOW_PRECISION else None
    dtype = jnp.float32 if back is not None else dtype
    A, b = A.astype(dtype), b.astype(dtype)
    Q, q = A.mT @ A, A.mT @ b
    L = _spectral_bound(Q) if L is None else jnp.asarray(L, dtype)
    L = jnp.where(L == 0, 1, L)

    def step(carry, _):
        x, y, c = carry
        c_new = (1 + jnp.sqrt(1 + 4 * c**2)) / 2
        x_new = jnp.maximum(y - (Q @ y - q) / L, 0)
        y_new = x_new + (c - 1) / c_new * (x_new - x)
        return (x_new, y_new, c_new), None

    x0 = jnp.zeros(A.shape[1:] + b.shape[1:], dtype)
    c0 = jnp.zeros((), dtype)
    (x, _, _), _ = lax.scan(step, (x0, x0, c0), length=int(iters), unroll=unroll)
    return x if back is None else x.astype(back)
