"""Float64 NumPy references for Muon, ADOPT, AdEMAMix and Prodigy.

Same interface and conventions as :mod:`reference` (``update(grads, params)``
on lists of arrays; ``t`` counts the updates done before the current one;
``*_dtype`` arguments are accepted and ignored). Each rule is written from its
paper; where Optax (and so gradtx) fixes a convention the paper leaves open or
states differently, the docstring says so. Aliases are ``Chain``s of the
primitive references (Muon routes each leaf to one of two chains).
"""

from __future__ import annotations

import numpy as np
from reference import Adamw as _Adamw
from reference import AddDecayedWeights, Chain, ScaleByLearningRate, _Reference, _value

# fmt: off

STANDARD = (3.4445, -4.7750, 2.0315)
DION = ((4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037), (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012))


def newton_schulz(x, coeffs=STANDARD, steps=5, preconditioning="frobenius",
                  eps=1e-8):
    """Jordan et al. (2024): X ← c0·X + (c1·A + c2·A²)·X, A = X Xᵀ, on a 2-D x.

    The wide orientation is used; X₀ = x/(‖x‖_F + ε) ("frobenius"),
    x/(‖x‖₂ + ε) ("spectral"); "aol" scales the rows by 1/sqrt(Σ_j |A_ij|)
    and "schatten" by 1/sqrt(‖A‖_F) in the first step (floors 1e-8).
    """
    x = np.asarray(x, np.float64)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    if preconditioning == "frobenius":
        x = x / (np.linalg.norm(x) + eps)
    elif preconditioning == "spectral":
        x = x / ((np.linalg.norm(x, 2) if x.size else 0.0) + eps)
    rows = np.asarray(coeffs, np.float64)
    rows = [rows] * steps if rows.ndim == 1 else list(rows)
    for i, (c0, c1, c2) in enumerate(rows):
        a = x @ x.T
        if i == 0 and preconditioning == "aol":
            s = 1.0 / np.sqrt(np.maximum(np.abs(a).sum(axis=1), 1e-8))[:, None]
            x, a = x * s, a * s * s.T
        elif i == 0 and preconditioning == "schatten":
            s = 1.0 / np.sqrt(max(np.linalg.norm(a), 1e-8))
            x, a = x * s, a * s * s
        x = c0 * x + (c1 * a + c2 * a @ a) @ x
    return x.T if tall else x


def _as_batch(x, dims):
    """(batch, fan_in, fan_out) view of x for dims = (reduction, output) axes."""
    red, out = dims
    red = (red,) if isinstance(red, int) else tuple(red)
    out = (out,) if isinstance(out, int) else tuple(out)
    red = tuple(a % x.ndim for a in red)
    out = tuple(a % x.ndim for a in out)
    batch = tuple(a for a in range(x.ndim) if a not in red + out)
    order = batch + red + out
    size = lambda axes: int(np.prod([x.shape[a] for a in axes]))
    flat = x.transpose(order).reshape(size(batch), size(red), size(out))
    unflat = tuple(x.shape[a] for a in order)
    return flat, lambda y: y.reshape(unflat).transpose(np.argsort(order))


class ScaleByMuon(_Reference):
    """Muon (Jordan et al. 2024): u = NS(m̂), m ← β·m + (1−β)·g, m̂ debiased.

    Nesterov (Optax's default): m̂ = β·m/(1−β^(n+1)) + (1−β)·g/(1−β^n).
    ``adaptive`` (Bernstein & Newhouse 2024): u = ⟨m̂, NS(m̂)⟩·NS(m̂).
    ``dims``: one (reduction, output) pair per leaf (default (0, 1)).
    """

    def __init__(self, ns_coeffs=STANDARD, ns_steps=5, beta=0.95, eps=1e-8,
                 mu_dtype=None, *, nesterov=True, adaptive=False,
                 preconditioning="frobenius", weight_dimension_numbers=None):
        super().__init__()
        self.coeffs, self.steps = ns_coeffs, int(ns_steps)
        self.beta, self.eps = float(beta), float(eps)
        self.nesterov, self.adaptive, self.pre = nesterov, adaptive, preconditioning
        self.dims = weight_dimension_numbers

    def step(self, grads, params, t):
        dims = self.dims or [(0, 1)] * len(grads)
        return [self.leaf(s, g, t, d)
                for s, g, d in zip(self.state, grads, dims, strict=True)]

    def init_leaf(self, g):
        return {"m": np.zeros_like(g)}

    def leaf(self, s, g, t, dims=(0, 1)):
        b, n = self.beta, t + 1
        s["m"] = b * s["m"] + (1.0 - b) * g
        if self.nesterov:
            m_hat = b * s["m"] / (1.0 - b ** (n + 1)) + (1.0 - b) * g / (1.0 - b**n)
        else:
            m_hat = s["m"] / (1.0 - b**n)
        flat, back = _as_batch(m_hat, dims)
        ortho = back(np.stack([newton_schulz(x, self.coeffs, self.steps, self.pre,
                                             self.eps) for x in flat]))
        if self.adaptive:
            ortho = np.sum(m_hat * ortho) * ortho
        return ortho


class ScaleByShape(_Reference):
    """Width factor sqrt(max(1, fan_out/fan_in)), or ρ·sqrt(max(fan_in, fan_out))."""

    def __init__(self, dims=None, consistent_rms=None):
        super().__init__()
        self.dims, self.rho = dims, consistent_rms

    def step(self, grads, params, t):
        dims = self.dims or [(0, 1)] * len(grads)
        out = []
        for g, d in zip(grads, dims, strict=True):
            _, fan_in, fan_out = _as_batch(g, d)[0].shape
            if self.rho is None:
                scale = np.sqrt(max(1.0, fan_out / fan_in)) if fan_in else 1.0
            else:
                scale = self.rho * np.sqrt(max(fan_in, fan_out))
            out.append(scale * g)
        return out


class ScaleByAdopt(_Reference):
    """ADOPT (Taniguchi et al. 2024, Alg. 2 with Optax's clipping).

    t = 0: v = g², u = 0. Then x = clip(g/max(sqrt(v), ε), ±c(t)) with the
    *previous* v, m ← β1·m + (1−β1)·x, v ← β2·v + (1−β2)·g², u = m
    (Nesterov: β1·m + (1−β1)·x).
    """

    def __init__(self, b1=0.9, b2=0.9999, eps=1e-6, mu_dtype=None, *,
                 nesterov=False, use_clipping=True, clip_value_fn=lambda t: t**0.25):
        super().__init__()
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.nesterov, self.clip, self.clip_fn = nesterov, use_clipping, clip_value_fn

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(g)}

    def leaf(self, s, g, t):
        if t == 0:
            s["v"] = g * g
            return np.zeros_like(g)
        x = g / np.maximum(np.sqrt(s["v"]), self.eps)
        if self.clip:
            c = float(self.clip_fn(t))
            x = np.clip(x, -c, c)
        s["m"] = self.b1 * s["m"] + (1.0 - self.b1) * x
        s["v"] = self.b2 * s["v"] + (1.0 - self.b2) * g * g
        if self.nesterov:
            return self.b1 * s["m"] + (1.0 - self.b1) * x
        return s["m"]


class ScaleByAdemamix(_Reference):
    """AdEMAMix (Pagliardini et al. 2024, Alg. 1 without the warm-ups).

    u = (m̂1 + α·m2) / (sqrt(ν̂ + ε_root) + ε); m2 (rate β3) is not debiased;
    β3 and α may be schedules of t.
    """

    def __init__(self, b1=0.9, b2=0.999, b3=0.9999, alpha=6.0, eps=1e-8,
                 eps_root=0.0, mu_dtype=None):
        super().__init__()
        self.b1, self.b2, self.b3, self.alpha = b1, b2, b3, alpha
        self.eps, self.eps_root = eps, eps_root

    def init_leaf(self, g):
        return {"m1": np.zeros_like(g), "m2": np.zeros_like(g), "v": np.zeros_like(g)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        b3, alpha = _value(self.b3, t), _value(self.alpha, t)
        s["m1"] = b1 * s["m1"] + (1.0 - b1) * g
        s["m2"] = b3 * s["m2"] + (1.0 - b3) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
        num = s["m1"] / (1.0 - b1**n) + alpha * s["m2"]
        return num / (np.sqrt(s["v"] / (1.0 - b2**n) + self.eps_root) + self.eps)


class ScaleBySimplifiedAdemamix(_Reference):
    """Simplified AdEMAMix (Morwani et al. 2025): m ← β1·m + g (a sum),
    u = (m + α·g) / (sqrt(ν̂ + ε_root) + ε)."""

    def __init__(self, b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0):
        super().__init__()
        self.b1, self.b2, self.alpha, self.eps, self.eps_root = (
            b1, b2, alpha, eps, eps_root)

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(g)}

    def leaf(self, s, g, t):
        b2, n = self.b2, t + 1
        s["m"] = self.b1 * s["m"] + g
        s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
        num = s["m"] + _value(self.alpha, t) * g
        return num / (np.sqrt(s["v"] / (1.0 - b2**n) + self.eps_root) + self.eps)


class Prodigy(_Reference):
    """Prodigy (Mishchenko & Defazio 2024, Alg. 4 in Optax's form).

    λ = d·η(t)·sqrt(1−β2^n)/(1−β1^n); m, v: Adam moments of d·g;
    r ← β3·r + (d/d0)·λ·⟨g, x0 − x⟩; s ← β3·s + (λ or d)·d·g/d0;
    d ← max(d, c·r/‖s‖₁) (kept while s = 0); u = −λ·(m/(sqrt(v) + d·ε) + w·x).
    """

    def __init__(self, learning_rate=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8,
                 estim_lr0=1e-6, estim_lr_coef=1.0, weight_decay=0.0,
                 safeguard_warmup=False):
        super().__init__()
        self.lr, (self.b1, self.b2) = learning_rate, betas
        self.b3 = self.b2**0.5 if beta3 is None else beta3
        self.eps, self.d0, self.coef = eps, estim_lr0, estim_lr_coef
        self.wd = weight_decay
        self.safeguard = safeguard_warmup
        self.d, self.r, self.x0 = estim_lr0, 0.0, None

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(g), "s": np.zeros_like(g)}

    def step(self, grads, params, t):
        if self.x0 is None:
            self.x0 = params
        b1, b2, b3, d, n = self.b1, self.b2, self.b3, self.d, t + 1
        lam = d * _value(self.lr, t) * np.sqrt(1.0 - b2**n) / (1.0 - b1**n)
        dot = sum(np.sum(g * (x0 - x)) for g, x0, x in zip(grads, self.x0, params,
                                                           strict=True))
        self.r = b3 * self.r + (d / self.d0) * lam * dot
        for s, g in zip(self.state, grads, strict=True):
            s["m"] = b1 * s["m"] + (1.0 - b1) * d * g
            s["v"] = b2 * s["v"] + (1.0 - b2) * (d * g) ** 2
            s["s"] = b3 * s["s"] + (d if self.safeguard else lam) * d * g / self.d0
        l1 = sum(np.sum(np.abs(s["s"])) for s in self.state)
        if l1 > 0:
            self.d = max(d, self.coef * self.r / l1)
        return [-lam * (s["m"] / (np.sqrt(s["v"]) + self.d * self.eps) + self.wd * x)
                for s, x in zip(self.state, params, strict=True)]


# -------------------------------------------------------------------- aliases


class Adopt(Chain):
    """ADOPT: scale_by_adopt → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.9999, eps=1e-6, mu_dtype=None,
                 **kw):
        super().__init__(ScaleByAdopt(b1, b2, eps, **kw),
                         ScaleByLearningRate(learning_rate))


class Ademamix(Chain):
    """AdEMAMix: scale_by_ademamix → decay → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0,
                 eps=1e-8, eps_root=0.0, mu_dtype=None, weight_decay=0.0, mask=None):
        super().__init__(ScaleByAdemamix(b1, b2, b3, alpha, eps, eps_root),
                         AddDecayedWeights(weight_decay, mask),
                         ScaleByLearningRate(learning_rate))


class SimplifiedAdemamix(Chain):
    """Simplified AdEMAMix: scale_by_simplified_ademamix → decay → lr."""

    def __init__(self, learning_rate, b1=0.99, b2=0.95, alpha=0.0, eps=1e-8,
                 eps_root=0.0, weight_decay=0.0, mask=None):
        super().__init__(ScaleBySimplifiedAdemamix(b1, b2, alpha, eps, eps_root),
                         AddDecayedWeights(weight_decay, mask),
                         ScaleByLearningRate(learning_rate))


class Muon(_Reference):
    """Muon on 2-D leaves (muon → shape → decay → lr), AdamW on the others."""

    def __init__(self, learning_rate, ns_coeffs=STANDARD, ns_steps=5, beta=0.95,
                 eps=1e-8, weight_decay=0.0, weight_decay_mask=None, mu_dtype=None, *,
                 nesterov=True, adaptive=False, preconditioning="frobenius",
                 adam_b1=0.9, adam_b2=0.999, adam_eps_root=0.0, adam_weight_decay=0.0,
                 adam_learning_rate=None, consistent_rms=None):
        super().__init__()
        ns_coeffs = {"standard": STANDARD, "dion": DION}.get(ns_coeffs, ns_coeffs) \
            if isinstance(ns_coeffs, str) else ns_coeffs
        self.muon = Chain(
            ScaleByMuon(ns_coeffs, ns_steps, beta, eps, nesterov=nesterov,
                        adaptive=adaptive, preconditioning=preconditioning),
            ScaleByShape(None, consistent_rms), AddDecayedWeights(weight_decay),
            ScaleByLearningRate(learning_rate))
        lr = learning_rate if adam_learning_rate is None else adam_learning_rate
        self.adam = _Adamw(lr, adam_b1, adam_b2, eps, adam_eps_root,
                           weight_decay=adam_weight_decay, nesterov=nesterov)

    def step(self, grads, params, t):
        is_m = [g.ndim == 2 for g in grads]
        pick = lambda xs, want: [x for x, m in zip(xs, is_m, strict=True) if m == want]
        um = iter(self.muon.update(pick(grads, True), pick(params, True)))
        ua = iter(self.adam.update(pick(grads, False), pick(params, False)))
        return [next(um) if m else next(ua) for m in is_m]


# fmt: on

REFERENCES = {
    "scale_by_muon": ScaleByMuon,
    "scale_by_adopt": ScaleByAdopt,
    "scale_by_ademamix": ScaleByAdemamix,
    "scale_by_simplified_ademamix": ScaleBySimplifiedAdemamix,
    "prodigy": Prodigy,
    "muon": Muon,
    "adopt": Adopt,
    "ademamix": Ademamix,
    "simplified_ademamix": SimplifiedAdemamix,
}
