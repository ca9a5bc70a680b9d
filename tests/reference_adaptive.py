"""Float64 NumPy references for NovoGrad, AdaDelta, Adan, SM3, Rprop and OGD.

Same interface and conventions as :mod:`reference` (``update(grads, params)``
on lists of arrays; ``t`` counts the updates done before the current one, bias
corrections use ``t + 1``; ``*_dtype`` arguments are accepted and ignored).
Each rule is written from its paper; where Optax (and so gradtx) fixes a
convention the paper leaves open or states differently, the docstring says so.
Aliases are ``Chain``s of the primitive references.
"""

from __future__ import annotations

import functools

import numpy as np
from reference import (
    AddDecayedWeights,
    Chain,
    Scale,
    ScaleByAdam,
    ScaleByLearningRate,
    _Reference,
    _value,
)

# fmt: off


class ScaleByNovograd(_Reference):
    """NovoGrad (Ginsburg et al. 2019, Alg. 1), one second moment per leaf.

    v ← β2·v + (1−β2)·‖g‖² (v = ‖g‖² at the first step);
    m ← β1·m + g/(sqrt(v + ε_root) + ε) + λ·θ (m = that term at the first step).
    The paper's ε sits inside the root; Optax has both.
    """

    def __init__(self, b1=0.9, b2=0.25, eps=1e-8, eps_root=0.0, weight_decay=0.0,
                 mu_dtype=None):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.weight_decay = weight_decay

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": 0.0}

    def step(self, grads, params, t):
        wd, out = _value(self.weight_decay, t), []
        for s, g, p in zip(self.state, grads, params, strict=True):
            sq = float(np.sum(g * g))
            s["v"] = sq if t == 0 else self.b2 * s["v"] + (1.0 - self.b2) * sq
            term = g / (np.sqrt(s["v"] + self.eps_root) + self.eps) + wd * p
            s["m"] = term if t == 0 else self.b1 * s["m"] + term
            out.append(s["m"])
        return out


class ScaleByAdadelta(_Reference):
    """AdaDelta (Zeiler 2012, Alg. 1): Δ = sqrt(E[Δx²] + ε)/sqrt(E[g²] + ε)·g.

    E[g²] includes the current gradient, E[Δx²] only the previous steps.
    """

    def __init__(self, rho=0.9, eps=1e-6):
        super().__init__()
        self.rho, self.eps = float(rho), float(eps)

    def init_leaf(self, g):
        return {"eg": np.zeros_like(g), "ex": np.zeros_like(g)}

    def leaf(self, s, g, t):
        rho, eps = self.rho, self.eps
        s["eg"] = rho * s["eg"] + (1.0 - rho) * g * g
        u = np.sqrt(s["ex"] + eps) / np.sqrt(s["eg"] + eps) * g
        s["ex"] = rho * s["ex"] + (1.0 - rho) * u * u
        return u


class ScaleByAdan(_Reference):
    """Adan (Xie et al. 2022, Alg. 1) with Optax's conventions.

    Decays written as β (the paper's 1 − β), zero-started moments with Adam's
    bias corrections, Δg = 0 at the first step:
    m ← ema(g), v ← ema(Δg), n ← ema((g + (1−β2)Δg)²);
    u = (m̂ + (1−β2)·v̂) / (sqrt(n̂ + ε_root) + ε).
    """

    def __init__(self, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0):
        super().__init__()
        self.b = tuple(map(float, (b1, b2, b3)))
        self.eps, self.eps_root = float(eps), float(eps_root)

    def init_leaf(self, g):
        z = np.zeros_like(g)
        return {"m": z, "v": z, "n": z, "prev": z}

    def leaf(self, s, g, t):
        (b1, b2, b3), n = self.b, t + 1
        dg = np.zeros_like(g) if t == 0 else g - s["prev"]
        s["prev"] = g
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * dg
        s["n"] = b3 * s["n"] + (1.0 - b3) * (g + (1.0 - b2) * dg) ** 2
        m_hat, v_hat = s["m"] / (1.0 - b1**n), s["v"] / (1.0 - b2**n)
        n_hat = s["n"] / (1.0 - b3**n)
        denom = np.sqrt(n_hat + self.eps_root) + self.eps
        return (m_hat + (1.0 - b2) * v_hat) / denom


class ScaleBySm3(_Reference):
    """SM3-II (Anil et al. 2019, Alg. 2) with the cover "one set per index of
    each axis", and momentum β1 on the normalised step (Optax's form).

    ν(i) = b2'·g(i)² + b2·min_r μ_r(i_r) (b2' = 1 if b2 = 1 else 1 − b2);
    μ_r(j) = max over i with i_r = j of ν(i); u ← β1·u + (1−β1)·g/sqrt(ν + ε),
    0/0 = 0. Leaves of rank <= 1 keep ν itself (Adagrad).
    """

    def __init__(self, b1=0.9, b2=1.0, eps=1e-8):
        super().__init__()
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def init_leaf(self, g):
        mu = [np.zeros_like(g)] if g.ndim < 2 else [np.zeros(n) for n in g.shape]
        return {"mu": mu, "m": np.zeros_like(g)}

    def leaf(self, s, g, t):
        k = g.ndim
        if k < 2:
            prev = s["mu"][0]
        else:
            views = [m.reshape([-1 if r == a else 1 for a in range(k)])
                     for r, m in enumerate(s["mu"])]
            prev = functools.reduce(np.minimum, views)
        fresh = 1.0 if self.b2 == 1.0 else 1.0 - self.b2
        nu = fresh * g * g + self.b2 * prev
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(nu > 0, g / np.sqrt(nu + self.eps), 0.0)
        if k < 2:
            s["mu"] = [nu]
        else:
            s["mu"] = [nu.max(axis=tuple(a for a in range(k) if a != r), initial=0.0)
                       for r in range(k)]
        s["m"] = self.b1 * s["m"] + (1.0 - self.b1) * step
        return s["m"]


class ScaleByRprop(_Reference):
    """iRprop⁻ (Igel & Hüsken 2003, Fig. 1); u points up the gradient.

    s = sign(g)·sign(g̃_prev): s > 0: Δ ← min(η⁺Δ, Δmax); s < 0: Δ ← max(η⁻Δ,
    Δmin) and g̃ = 0 (no step); u = Δ·sign(g̃), g̃_prev ← g̃. (Optax 0.2.8
    returns the previous call's u instead: a one-step lag, not reproduced.)
    """

    def __init__(self, learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6,
                 max_step_size=50.0):
        super().__init__()
        self.lr, self.eta_minus, self.eta_plus = map(
            float, (learning_rate, eta_minus, eta_plus))
        self.lo, self.hi = float(min_step_size), float(max_step_size)

    def init_leaf(self, g):
        return {"delta": np.full_like(g, self.lr), "prev": np.zeros_like(g)}

    def leaf(self, s, g, t):
        agree = np.sign(g) * np.sign(s["prev"])
        grown = np.minimum(s["delta"] * self.eta_plus, self.hi)
        shrunk = np.maximum(s["delta"] * self.eta_minus, self.lo)
        s["delta"] = np.where(agree > 0, grown, np.where(agree < 0, shrunk, s["delta"]))
        g_tilde = np.where(agree < 0, 0.0, g)
        s["prev"] = s["delta"] * np.sign(g_tilde)
        return s["prev"]


class ScaleByOptimisticGradient(_Reference):
    """Generalised OGD (Mokhtari et al. 2020): u = (α + β)·g_t − β·g_{t−1}.

    The first step uses g_0 := g_1 (u = α·g_1), as Optax does.
    """

    def __init__(self, alpha=1.0, beta=1.0):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def init_leaf(self, g):
        return {"prev": None}

    def leaf(self, s, g, t):
        prev = g if s["prev"] is None else s["prev"]
        s["prev"] = g
        return (self.alpha + self.beta) * g - self.beta * prev


# -------------------------------------------------------------------- aliases


class Novograd(Chain):
    """NovoGrad: scale_by_novograd → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0,
                 weight_decay=0.0):
        super().__init__(ScaleByNovograd(b1, b2, eps, eps_root, weight_decay),
                         ScaleByLearningRate(learning_rate))


class Adadelta(Chain):
    """AdaDelta: coupled weight decay → scale_by_adadelta → lr (None: η = 1)."""

    def __init__(self, learning_rate=None, rho=0.9, eps=1e-6, weight_decay=0.0,
                 weight_decay_mask=None):
        lr = 1.0 if learning_rate is None else learning_rate
        super().__init__(AddDecayedWeights(weight_decay, weight_decay_mask),
                         ScaleByAdadelta(rho, eps), ScaleByLearningRate(lr))


class Adan(Chain):
    """Adan: scale_by_adan → decoupled weight decay → lr."""

    def __init__(self, learning_rate, b1=0.98, b2=0.92, b3=0.99, eps=1e-8,
                 eps_root=1e-8, weight_decay=0.0, mask=None):
        super().__init__(ScaleByAdan(b1, b2, b3, eps, eps_root),
                         AddDecayedWeights(weight_decay, mask),
                         ScaleByLearningRate(learning_rate))


class Sm3(Chain):
    """SM3: scale_by_sm3(momentum) → lr."""

    def __init__(self, learning_rate, momentum=0.9):
        b1 = 0.0 if momentum is None else momentum
        super().__init__(ScaleBySm3(b1), ScaleByLearningRate(learning_rate))


class Rprop(Chain):
    """Rprop: scale_by_rprop → scale(−1)."""

    def __init__(self, learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6,
                 max_step_size=50.0):
        super().__init__(ScaleByRprop(learning_rate, eta_minus, eta_plus,
                                      min_step_size, max_step_size), Scale(-1.0))


class OptimisticGradientDescent(Chain):
    """OGD: scale_by_optimistic_gradient → lr."""

    def __init__(self, learning_rate, alpha=1.0, beta=1.0):
        super().__init__(ScaleByOptimisticGradient(alpha, beta),
                         ScaleByLearningRate(learning_rate))


class OptimisticAdamV2(Chain):
    """Optimistic Adam (Daskalakis et al. 2018): adam → OGD → lr."""

    def __init__(self, learning_rate, *, alpha=1.0, beta=1.0, b1=0.9, b2=0.999,
                 eps=1e-8, eps_root=0.0, mu_dtype=None, nesterov=True):
        super().__init__(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                         ScaleByOptimisticGradient(alpha, beta),
                         ScaleByLearningRate(learning_rate))


class OptimisticAdam(Chain):
    """Optimistic Adam, first interface: adam → OGD(lr, optimism) → −1."""

    def __init__(self, learning_rate, optimism=None, b1=0.9, b2=0.999, eps=1e-8,
                 eps_root=0.0, mu_dtype=None, *, nesterov=True):
        beta = learning_rate if optimism is None else optimism
        super().__init__(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                         ScaleByOptimisticGradient(learning_rate, beta),
                         ScaleByLearningRate(1.0))


# fmt: on

REFERENCES = {
    "scale_by_novograd": ScaleByNovograd,
    "scale_by_adadelta": ScaleByAdadelta,
    "scale_by_adan": ScaleByAdan,
    "scale_by_sm3": ScaleBySm3,
    "scale_by_rprop": ScaleByRprop,
    "scale_by_optimistic_gradient": ScaleByOptimisticGradient,
    "novograd": Novograd,
    "adadelta": Adadelta,
    "adan": Adan,
    "sm3": Sm3,
    "rprop": Rprop,
    "optimistic_gradient_descent": OptimisticGradientDescent,
    "optimistic_adam_v2": OptimisticAdamV2,
    "optimistic_adam": OptimisticAdam,
}
