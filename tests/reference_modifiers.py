"""NumPy float64 references (from the papers) for cautious, LaProp, MARS and
Adam-mini, and the drivers that run gradtx and the PyTorch references on the
same gradient sequence.

Each reference is ``init(params) -> state`` and ``step(grads, state, params)
-> (new_params, state)`` over lists of arrays. The gradient of step ``t`` is
``grad_fn(params, t)``: a quadratic pull plus a fixed noise sequence, so that
signs flip and the masks, clips and blocks are all exercised.
"""

import math

import jax
import numpy as np


def make_grad_fn(shapes, steps, seed=0, noise=0.8):
    """``(params, t) -> grads``: ``(p − target) + noise·ξ_t``, ``ξ_t`` fixed."""
    rng = np.random.default_rng(seed)
    targets = [rng.uniform(-1, 1, size=s) for s in shapes]
    xi = [[rng.normal(size=s) for s in shapes] for _ in range(steps)]

    def grad_fn(params, t):
        return [
            (np.asarray(p) - c) + noise * x
            for p, c, x in zip(params, targets, xi[t], strict=True)
        ]

    return grad_fn


def start(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, size=s) for s in shapes]


# ---------------------------------------------------------------- drivers


def run_numpy(ref, params, grad_fn, steps):
    params = [np.array(p, np.float64) for p in params]
    state = ref.init(params)
    out = []
    for t in range(steps):
        params, state = ref.step(grad_fn(params, t), state, params)
        out.append([p.copy() for p in params])
    return out


def run_gradtx(tx, params, grad_fn, steps, names=None):
    """float64 run of ``tx``; params a list (or a dict keyed by ``names``)."""
    import gradtx

    with jax.enable_x64(True):
        as_tree = (lambda xs: dict(zip(names, xs, strict=True))) if names else list
        leaves = (lambda tree: [tree[n] for n in names]) if names else list
        p = as_tree([jax.numpy.asarray(x, jax.numpy.float64) for x in params])
        state = tx.init(p)

        @jax.jit
        def step(g, s, p):
            u, s = tx.update(g, s, p)
            return gradtx.apply_updates(p, u), s

        out = []
        for t in range(steps):
            g = as_tree(
                [
                    jax.numpy.asarray(x)
                    for x in grad_fn([np.asarray(x) for x in leaves(p)], t)
                ]
            )
            p, state = step(g, state, p)
            out.append([np.asarray(x) for x in leaves(p)])
    return out


def run_torch(make_opt, params, grad_fn, steps, names=None):
    """float64 run of the torch optimizer ``make_opt(tensors or named)``."""
    import torch

    ts = [
        torch.nn.Parameter(torch.tensor(np.array(p), dtype=torch.float64))
        for p in params
    ]
    opt = make_opt(list(zip(names, ts, strict=True)) if names else ts)
    out = []
    for t in range(steps):
        grads = grad_fn([x.detach().numpy() for x in ts], t)
        for x, g in zip(ts, grads, strict=True):
            x.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append([x.detach().numpy().copy() for x in ts])
    return out


def assert_close(a, b, atol=1e-6):
    assert len(a) == len(b)
    for step, (x, y) in enumerate(zip(a, b, strict=True)):
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            err = float(np.max(np.abs(u - v), initial=0.0))
            assert err <= atol, f"step {step + 1}, leaf {i}: {err:.3g} > {atol}"


# ---------------------------------------------------------------- cautious


class CautiousAdamW:
    """C-AdamW (Liang et al., 2024, Alg. 1) with the mask over the whole step.

    ``u = m̂/(sqrt(v̂)+ε) + λθ``; ``φ = 1[u·g > 0]``; ``θ ← θ − η·n/(Σφ+1)·φ·u``.
    With ``mask_decay=False`` the decay is outside the mask (the paper's and
    AdamP's rule): ``θ ← θ − η·(n/(Σφ+1)·φ·m̂/(sqrt(v̂)+ε) + λθ)``.
    """

    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, mask_decay=True):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
        self.mask_decay = mask_decay

    def init(self, params):
        return (
            0,
            [np.zeros_like(p) for p in params],
            [np.zeros_like(p) for p in params],
        )

    def step(self, grads, state, params):
        t, ms, vs = state
        t += 1
        new_p, new_m, new_v = [], [], []
        for g, m, v, p in zip(grads, ms, vs, params, strict=True):
            m = self.b1 * m + (1 - self.b1) * g
            v = self.b2 * v + (1 - self.b2) * g * g
            d = (m / (1 - self.b1**t)) / (np.sqrt(v / (1 - self.b2**t)) + self.eps)
            u = d + self.wd * p if self.mask_decay else d
            phi = (u * g > 0).astype(np.float64)
            u = phi * u * (p.size / (phi.sum() + 1))
            if not self.mask_decay:
                u = u + self.wd * p
            new_p.append(p - self.lr * u)
            new_m.append(m)
            new_v.append(v)
        return new_p, (t, new_m, new_v)


# ---------------------------------------------------------------- LaProp


class LaProp:
    """LaProp (Ziyin et al., 2020, Alg. 1) with decay after the step.

    ``v ← β2 v + (1−β2) g²``; ``d = (sqrt(v + ε_r) + ε)/sqrt(1−β2^t)``;
    ``m ← β1 m + (1−β1) g/d``; ``θ ← (θ − η m/(1−β1^t))(1 − ηλ)``. Centred:
    ``v − ḡ²`` (``ḡ`` the EMA of g with β2) once ``t > k``.
    """

    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-15, wd=0.0, centered=False, k=10):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
        self.centered, self.k = centered, k

    def init(self, params):
        zeros = lambda: [np.zeros_like(p) for p in params]
        return 0, zeros(), zeros(), zeros()

    def step(self, grads, state, params):
        t, ms, vs, gs = state
        t += 1
        out = []
        for g, m, v, gbar, p in zip(grads, ms, vs, gs, params, strict=True):
            v = self.b2 * v + (1 - self.b2) * g * g
            gbar = self.b2 * gbar + (1 - self.b2) * g
            second = np.maximum(v - gbar**2, 0) if self.centered and t > self.k else v
            d = (np.sqrt(second + 1e-15) + self.eps) / math.sqrt(1 - self.b2**t)
            m = self.b1 * m + (1 - self.b1) * g / d
            p = (p - self.lr * m / (1 - self.b1**t)) * (1 - self.lr * self.wd)
            out.append((p, m, v, gbar))
        ps, ms, vs, gs = (list(x) for x in zip(*out, strict=True))
        return ps, (t, ms, vs, gs)


# ---------------------------------------------------------------- MARS


class MarsAdamW:
    """MARS-AdamW (Yuan et al., 2024, Alg. 2, approximate variant).

    ``c = g + γ β1/(1−β1) (g − g_prev)``, ``c ← c / max(1, ‖c‖)`` per leaf;
    AdamW on ``c``: ``θ ← θ − η (m̂/(sqrt(v̂)+ε) + λθ)``.
    """

    def __init__(self, lr, b1=0.95, b2=0.99, gamma=0.025, eps=1e-8, wd=0.0):
        self.lr, self.b1, self.b2, self.gamma, self.eps, self.wd = (
            lr,
            b1,
            b2,
            gamma,
            eps,
            wd,
        )

    def init(self, params):
        zeros = lambda: [np.zeros_like(p) for p in params]
        return 0, zeros(), zeros(), zeros()

    def step(self, grads, state, params):
        t, ms, vs, prevs = state
        t += 1
        out = []
        for g, m, v, prev, p in zip(grads, ms, vs, prevs, params, strict=True):
            c = g + self.gamma * self.b1 / (1 - self.b1) * (g - prev)
            c = c / max(1.0, float(np.sqrt(np.sum(c * c))))
            m = self.b1 * m + (1 - self.b1) * c
            v = self.b2 * v + (1 - self.b2) * c * c
            d = (m / (1 - self.b1**t)) / (np.sqrt(v / (1 - self.b2**t)) + self.eps)
            out.append((p - self.lr * (d + self.wd * p), m, v, np.array(g)))
        ps, ms, vs, prevs = (list(x) for x in zip(*out, strict=True))
        return ps, (t, ms, vs, prevs)


# ---------------------------------------------------------------- Adam-mini


class AdamMini:
    """Adam-mini (Zhang et al., 2024, Alg. 1): one ``v`` per block.

    ``blocks[i]`` is ``"adam"``, ``"tensor"``, ``"row"`` (rows of axis 0) or an
    int: the number of elements of each head (consecutive, row-major).
    ``decay[i]`` says whether leaf ``i`` is decayed (decoupled, AdamW's way).
    """

    def __init__(self, lr, blocks, decay, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
        self.lr, self.blocks, self.decay = lr, blocks, decay
        self.b1, self.b2, self.eps, self.wd = b1, b2, eps, wd

    def _rows(self, x, b):
        if b == "tensor":
            return x.reshape(1, -1)
        if b == "row":
            return x.reshape(x.shape[0], -1)
        return x.reshape(-1, b)

    def init(self, params):
        vs = []
        for p, b in zip(params, self.blocks, strict=True):
            vs.append(
                np.zeros_like(p) if b == "adam" else np.zeros(self._rows(p, b).shape[0])
            )
        return 0, [np.zeros_like(p) for p in params], vs

    def step(self, grads, state, params):
        t, ms, vs = state
        t += 1
        c1, c2 = 1 - self.b1**t, 1 - self.b2**t
        out = []
        for g, m, v, p, b, dec in zip(
            grads, ms, vs, params, self.blocks, self.decay, strict=True
        ):
            m = self.b1 * m + (1 - self.b1) * g
            if b == "adam":
                v = self.b2 * v + (1 - self.b2) * g * g
                d = (m / c1) / (np.sqrt(v / c2) + self.eps)
            else:
                v = self.b2 * v + (1 - self.b2) * np.mean(self._rows(g, b) ** 2, axis=1)
                h = np.sqrt(v / c2) + self.eps
                d = (self._rows(m / c1, b) / h[:, None]).reshape(g.shape)
            wd = self.wd if dec else 0.0
            out.append((p - self.lr * (d + wd * p), m, v))
        ps, ms, vs = (list(x) for x in zip(*out, strict=True))
        return ps, (t, ms, vs)
