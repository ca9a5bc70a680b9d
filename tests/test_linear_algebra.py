"""power_iteration, matrix_inverse_pth_root and nnls: Optax, NumPy, jit, bad input.

Against Optax: the same iterations in the same order, so the results agree to
1e-6 relative (measured: bit-identical on CPU for every case here, which the
tight bound allows for ulp-level differences in the tree norms).

Against NumPy (float64, written independently): the dominant eigenpair from
``numpy.linalg.eigh``; ``(A + εI)^(-1/p)`` from the eigendecomposition, to
1e-3 relative (float32 Newton iterations stop at ``max|M − I| <= 1e-6``, and
the condition numbers here are <= 1e3: measured <= 2e-4); NNLS by the
Lawson–Hanson active-set method, to 1e-4 (1000 accelerated projected-gradient
steps on well-conditioned problems, measured <= 2e-6).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.linalg import matrix_inverse_pth_root, nnls, power_iteration

RNG = np.random.default_rng(7)


def _spd(n: int, cond: float = 100.0, seed: int = 0) -> np.ndarray:
    """A symmetric positive definite float32 matrix with the given condition."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigs = np.geomspace(1.0, cond, n) if n > 1 else np.array([3.0])
    return ((q * eigs) @ q.T).astype(np.float32)


def _sym(n: int, seed: int) -> np.ndarray:
    """A symmetric indefinite float32 matrix with a dominant eigenvalue ±4.

    The others lie in ±[1, 2] (ratio <= 1/2, so the iteration converges): with
    two near-opposite dominant eigenvalues an unconverged Rayleigh quotient
    cancels, and ulp-level differences grow past any fixed tolerance.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigs = np.linspace(1.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    eigs[rng.integers(n)] = 4.0 if seed % 2 else -4.0
    return ((q * eigs) @ q.T).astype(np.float32)


def _close(ours, theirs, rtol=1e-6):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    scale = max(np.max(np.abs(theirs)), 1e-30)
    assert np.max(np.abs(ours - theirs)) <= rtol * scale, (ours, theirs)


@pytest.mark.parametrize("name", ["power_iteration", "matrix_inverse_pth_root", "nnls"])
def test_signature_matches_optax(name):
    import gradtx.linalg as la

    ours = inspect.signature(getattr(la, name)).parameters
    theirs = inspect.signature(getattr(optax, name)).parameters
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].kind == theirs[k].kind, k
        assert ours[k].default == theirs[k].default, k


# ---------------------------------------------------------------- power_iteration


@pytest.mark.parametrize("n,seed", [(1, 0), (5, 1), (24, 2)])
def test_power_iteration_matches_optax_and_eigh(n, seed):
    a = _sym(n, seed)
    for kw in (dict(key=jax.random.PRNGKey(3)), dict(num_iters=7),
               dict(v0=jnp.asarray(RNG.normal(size=n), jnp.float32))):  # fmt: skip
        eig, vec = power_iteration(a, **kw)
        eig_o, vec_o = optax.power_iteration(a, **kw)
        _close(eig, eig_o)
        _close(vec, vec_o)
    eig, vec = power_iteration(a)
    w, v = np.linalg.eigh(a.astype(np.float64))
    k = np.argmax(np.abs(w))
    assert abs(float(eig) - w[k]) <= 1e-4 * abs(w[k])
    # |cos| ~ 1: power iteration's vector is A v/|A v|, so its sign alternates
    # for a negative eigenvalue.
    assert abs(abs(float(np.dot(np.asarray(vec, np.float64), v[:, k]))) - 1) < 1e-4


def test_power_iteration_negative_dominant_eigenvalue():
    a = jnp.diag(jnp.array([1.0, -5.0, 2.0]))
    eig, vec = power_iteration(a)
    assert float(eig) == pytest.approx(-5.0, rel=1e-6)
    np.testing.assert_allclose(np.abs(vec), [0.0, 1.0, 0.0], atol=1e-6)


def test_power_iteration_on_a_pytree_operator():
    blocks = {"a": _spd(3, 10.0, 1), "b": _spd(4, 50.0, 2)}
    mvp = lambda v: {k: blocks[k] @ v[k] for k in blocks}
    v0 = {"a": jnp.ones(3), "b": jnp.linspace(-1.0, 1.0, 4)}
    eig, vec = power_iteration(mvp, v0=v0, num_iters=300)
    eig_o, vec_o = optax.power_iteration(mvp, v0=v0, num_iters=300)
    _close(eig, eig_o)
    jax.tree.map(_close, vec, vec_o)
    assert float(eig) == pytest.approx(50.0, rel=1e-4)
    assert jax.tree.structure(vec) == jax.tree.structure(v0)


def test_power_iteration_jit_with_traced_arguments():
    a = _sym(6, 9)
    run = jax.jit(
        lambda m, n, tol: power_iteration(m, num_iters=n, error_tolerance=tol)
    )
    eig, vec = run(a, 50, 1e-6)
    eig_e, vec_e = power_iteration(a, num_iters=50)
    _close(eig, eig_e)
    _close(vec, vec_e)


def test_power_iteration_dtypes():
    a = _spd(4)
    eig, vec = power_iteration(jnp.asarray(a, jnp.bfloat16))
    assert eig.dtype == vec.dtype == jnp.bfloat16
    assert float(eig) == pytest.approx(float(power_iteration(a)[0]), rel=1e-2)


def test_power_iteration_zero_matrix_gives_zero_not_nan():
    v0 = jnp.array([3.0, 0.0, 4.0])
    eig, vec = power_iteration(jnp.zeros((3, 3)), v0=v0, num_iters=5)
    assert float(eig) == 0.0
    np.testing.assert_allclose(vec, [0.6, 0.0, 0.8], rtol=1e-6)
    assert bool(jnp.isnan(optax.power_iteration(jnp.zeros((3, 3)), num_iters=5)[0]))


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((np.ones((2, 3), np.float32),), {}, "matrix"),
        ((np.ones(3, np.float32),), {}, "matrix"),
        ((np.eye(3, dtype=np.int32),), {}, "matrix"),
        ((np.eye(3, dtype=np.float32),), dict(v0=jnp.ones(2)), "v0"),
        ((lambda v: v,), {}, "v0"),
        ((np.eye(3, dtype=np.float32),), dict(num_iters=-1), "num_iters"),
        ((np.eye(3, dtype=np.float32),), dict(num_iters=2.5), "num_iters"),
        ((np.eye(3, dtype=np.float32),), dict(error_tolerance=-1.0), "error_tolerance"),
        (
            (np.eye(3, dtype=np.float32),),
            dict(error_tolerance=np.nan),
            "error_tolerance",
        ),
    ],
)
def test_power_iteration_bad_inputs(args, kw, match):
    with pytest.raises(ValueError, match=match):
        power_iteration(*args, **kw)


# -------------------------------------------------------- matrix_inverse_pth_root


def _np_inverse_root(a: np.ndarray, p: int, ridge: float = 1e-6) -> np.ndarray:
    a = a.astype(np.float64)
    w, v = np.linalg.eigh(a)
    damped = w + ridge * max(np.max(np.abs(w)), 1e-16)
    return (v * damped ** (-1.0 / p)) @ v.T


@pytest.mark.parametrize("n,p", [(1, 2), (2, 1), (3, 4), (8, 8), (24, 2), (24, 4)])
def test_matrix_inverse_pth_root_matches_optax_and_numpy(n, p):
    a = _spd(n, 1e3 if n > 2 else 10.0, seed=n)
    root, err = matrix_inverse_pth_root(a, p)
    root_o, err_o = optax.matrix_inverse_pth_root(a, p)
    _close(root, root_o)
    assert float(err) == pytest.approx(float(err_o), abs=1e-6)
    assert root.dtype == jnp.float32
    _close(root, _np_inverse_root(a, p), rtol=1e-3)
    # num_iters and tolerances as Optax
    kw = dict(num_iters=3, ridge_epsilon=1e-3, error_tolerance=1e-4)
    _close(matrix_inverse_pth_root(a, p, **kw)[0],
           optax.matrix_inverse_pth_root(a, p, **kw)[0])  # fmt: skip


@pytest.mark.parametrize("p", [3, 16])
def test_matrix_inverse_pth_root_any_whole_p_is_exact(p):
    """Optax silently computes another root for p not in {1, 2, 4, 8}."""
    a = _spd(5, 20.0, seed=11)
    ref = _np_inverse_root(a, p)
    root, _ = matrix_inverse_pth_root(a, p)
    _close(root, ref, rtol=1e-3)
    wrong, _ = optax.matrix_inverse_pth_root(a, p)
    assert np.max(np.abs(np.asarray(wrong) - ref)) > 1e-2 * np.max(np.abs(ref))


def test_matrix_inverse_pth_root_jit_with_traced_p_and_iters():
    a = _spd(6, 100.0, seed=5)
    run = jax.jit(lambda m, p, n: matrix_inverse_pth_root(m, p, n))
    for p in (2, 3):
        _close(run(a, p, 100)[0], matrix_inverse_pth_root(a, p)[0], rtol=1e-6)


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.ones((2, 3), np.float32), 2), "matrix"),
        ((np.eye(3, dtype=np.int32), 2), "matrix"),
        ((np.eye(3, dtype=np.float32), 0), "p"),
        ((np.eye(3, dtype=np.float32), 1.5), "p"),
        ((np.eye(3, dtype=np.float32), 2, -1), "num_iters"),
        ((np.eye(3, dtype=np.float32), 2, 10, -1e-6), "ridge_epsilon"),
        ((np.eye(3, dtype=np.float32), 2, 10, 1e-6, np.nan), "error_tolerance"),
    ],
)
def test_matrix_inverse_pth_root_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        matrix_inverse_pth_root(*args)


# ----------------------------------------------------------------------- nnls


def _np_nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Lawson–Hanson active-set NNLS in float64 (small problems only)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    n = a.shape[1]
    passive = np.zeros(n, bool)
    x = np.zeros(n)
    for _ in range(3 * n + 10):
        w = a.T @ (b - a @ x)
        if passive.all() or np.max(np.where(passive, -np.inf, w)) <= 1e-12:
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            bad = passive & (z <= 0)
            alpha = np.min(x[bad] / (x[bad] - z[bad]))
            x = x + alpha * (z - x)
            passive &= x > 1e-12
    return x


@pytest.mark.parametrize("m,n,seed", [(6, 4, 1), (10, 6, 2), (5, 8, 3)])
def test_nnls_matches_optax_and_active_set(m, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, n)).astype(np.float32)
    b = rng.normal(size=(m,)).astype(np.float32)
    for kw in (dict(iters=0), dict(iters=50, unroll=4), dict(iters=50, L=400.0)):
        _close(nnls(a, b, **kw), optax.nnls(a, b, **kw))
    bb = rng.normal(size=(m, 3)).astype(np.float32)
    # 20 steps: XLA rounds the first step of the (M, K) case one ulp apart
    # from Optax's, and a rank-deficient Q (m < n) amplifies it (measured
    # 1e-7 relative after 20 steps, 6e-6 after 200).
    _close(nnls(a, bb, 20), optax.nnls(a, bb, 20))
    if m >= n:  # unique solution: compare with the active-set method
        x = nnls(a, b, 1000)
        np.testing.assert_allclose(x, _np_nnls(a, b), atol=1e-4)
        for k in range(3):
            np.testing.assert_allclose(nnls(a, bb, 1000)[:, k], _np_nnls(a, bb[:, k]),
                                       atol=1e-4)  # fmt: skip
    x = np.asarray(nnls(a, b, 1000), np.float64)
    grad = a.T.astype(np.float64) @ (a @ x - b)
    assert np.all(x >= 0)
    assert np.all(grad >= -1e-3) and np.all(np.abs(grad[x > 1e-4]) < 1e-3)  # KKT


def test_nnls_jit_dtypes_and_zero_matrix():
    a, b = _spd(4, 10.0), np.arange(4, dtype=np.float32)
    _close(jax.jit(nnls, static_argnums=2)(a, b, 100), nnls(a, b, 100))
    _close(jax.jit(lambda a, b, L: nnls(a, b, 100, L=L))(a, b, 200.0),
           nnls(a, b, 100, L=200.0))  # fmt: skip
    low = nnls(jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16), 100)
    assert low.dtype == jnp.bfloat16
    x = nnls(np.eye(2, dtype=np.int32), np.array([3, -1], np.int32), 100)
    assert jnp.issubdtype(x.dtype, jnp.floating)
    np.testing.assert_allclose(x, [3.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(nnls(np.zeros((3, 2), np.float32), b[:3], 10), 0.0)


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((np.ones(3), np.ones(3), 10), {}, "A"),
        ((np.ones((3, 2)), np.ones(2), 10), {}, "b"),
        ((np.ones((3, 2)), np.ones((3, 2, 1)), 10), {}, "b"),
        ((np.ones((3, 2)), np.ones(3), -1), {}, "iters"),
        ((np.ones((3, 2)), np.ones(3), 10), dict(L=-1.0), "L"),
        ((np.ones((3, 2)), np.ones(3), 10), dict(L=np.nan), "L"),
    ],
)
def test_nnls_bad_inputs(args, kw, match):
    with pytest.raises(ValueError, match=match):
        nnls(*args, **kw)
