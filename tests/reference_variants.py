"""Float64 NumPy references for the sign-based optimizers and Adam variants.

Same interface and conventions as :mod:`reference` (``update(grads, params)``
on lists of arrays; ``t`` counts the updates done before the current one, bias
corrections use ``t + 1``; ``*_dtype`` arguments are accepted and ignored).
Each rule is written from its paper; where Optax (and so gradtx) fixes a
convention the paper leaves open or states differently, the docstring says so.
Aliases are ``Chain``s of the primitive references.
"""

from __future__ import annotations

import numpy as np
from reference import (
    AddDecayedWeights,
    Chain,
    Ema,
    ScaleByLearningRate,
    _Reference,
)

# fmt: off


def _nesterov_or_plain(m, g, b1, n, nesterov):
    """m̂: m / (1 − b1^n), or NAdam's b1·m/(1 − b1^(n+1)) + (1 − b1)·g/(1 − b1^n)."""
    if nesterov:
        return b1 * m / (1.0 - b1 ** (n + 1)) + (1.0 - b1) * g / (1.0 - b1**n)
    return m / (1.0 - b1**n)


class ScaleBySign(_Reference):
    """signSGD (Bernstein et al. 2018): u = sign(g)."""

    def leaf(self, s, g, t):
        return np.sign(g)


class ScaleByLion(_Reference):
    """Lion (Chen et al. 2023, Program 1): u = sign(β1·m + (1−β1)·g), m ← ema_β2(g).

    ``mode`` "smooth" (tanh(β·c)) and "refined" (c where |c| < 1, else sign c)
    are Optax's variants of the sign.
    """

    def __init__(self, b1=0.9, b2=0.99, mu_dtype=None, *, mode="hard",
                 smooth_beta=1.0):
        super().__init__()
        self.b1, self.b2 = float(b1), float(b2)
        self.mode, self.smooth_beta = mode, float(smooth_beta)

    def init_leaf(self, g):
        return {"m": np.zeros_like(g)}

    def leaf(self, s, g, t):
        c = self.b1 * s["m"] + (1.0 - self.b1) * g
        s["m"] = self.b2 * s["m"] + (1.0 - self.b2) * g
        if self.mode == "smooth":
            return np.tanh(self.smooth_beta * c)
        if self.mode == "refined":
            return np.where(np.abs(c) < 1.0, c, np.sign(c))
        return np.sign(c)


class ScaleByBelief(_Reference):
    """AdaBelief (Zhuang et al. 2020, Alg. 2): s ← β2·s + (1−β2)(g − m)² + ε_root.

    u = m̂ / (sqrt(ŝ) + ε), both moments bias-corrected; ``nesterov`` as NAdam.
    """

    def __init__(self, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *,
                 nesterov=False):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.nesterov = nesterov

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "s": np.zeros_like(g)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["s"] = b2 * s["s"] + (1.0 - b2) * (g - s["m"]) ** 2 + self.eps_root
        m_hat = _nesterov_or_plain(s["m"], g, b1, n, self.nesterov)
        s_hat = s["s"] / (1.0 - b2**n)
        return m_hat / (np.sqrt(s_hat) + self.eps)


class ScaleByYogi(_Reference):
    """Yogi (Zaheer et al. 2018, Alg. 2): v ← v − (1−β2)·sign(v − g²)·g².

    u = m̂ / (sqrt(v̂ + ε_root) + ε). Optax's conventions: both moments start at
    ``initial_accumulator_value`` and are bias-corrected as in Adam (the
    paper's Algorithm 2 does neither).
    """

    def __init__(self, b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0,
                 initial_accumulator_value=1e-6):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.v0 = float(initial_accumulator_value)

    def init_leaf(self, g):
        return {"m": np.full_like(g, self.v0), "v": np.full_like(g, self.v0)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        g2 = g * g
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = s["v"] - (1.0 - b2) * np.sign(s["v"] - g2) * g2
        m_hat, v_hat = s["m"] / (1.0 - b1**n), s["v"] / (1.0 - b2**n)
        return m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps)


class ScaleByRadam(_Reference):
    """RAdam (Liu et al. 2020, Alg. 2): rectified Adam step once ρ_t >= threshold.

    ρ_∞ = 2/(1−β2) − 1, ρ_t = ρ_∞ − 2t·β2^t/(1 − β2^t),
    r_t = sqrt((ρ_t−4)(ρ_t−2)ρ_∞ / ((ρ_∞−4)(ρ_∞−2)ρ_t));
    u = r_t·m̂ / (sqrt(v̂ + ε_root) + ε) if ρ_t >= threshold, else u = m̂.
    (The paper switches at ρ_t > 4 with no ε; Optax's threshold is 5.)
    """

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *,
                 nesterov=False):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.threshold, self.nesterov = float(threshold), nesterov

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(g)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
        m_hat = _nesterov_or_plain(s["m"], g, b1, n, self.nesterov)
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho = rho_inf - 2.0 * n * b2**n / (1.0 - b2**n)
        if rho < self.threshold:
            return m_hat
        r = np.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
        v_hat = s["v"] / (1.0 - b2**n)
        return r * m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps)


# -------------------------------------------------------------------- aliases


class SignSgd(Chain):
    """signSGD: scale_by_sign → lr."""

    def __init__(self, learning_rate):
        super().__init__(ScaleBySign(), ScaleByLearningRate(learning_rate))


class Signum(Chain):
    """Signum (Bernstein et al. 2018): ema (not debiased) → scale_by_sign → lr."""

    def __init__(self, learning_rate, beta=0.9, accumulator_dtype=None):
        super().__init__(Ema(beta, debias=False), ScaleBySign(),
                         ScaleByLearningRate(learning_rate))


class Lion(Chain):
    """Lion with decoupled weight decay: scale_by_lion → decay → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.99, mu_dtype=None,
                 weight_decay=1e-3, mask=None):
        super().__init__(ScaleByLion(b1, b2), AddDecayedWeights(weight_decay, mask),
                         ScaleByLearningRate(learning_rate))


class Adabelief(Chain):
    """AdaBelief: scale_by_belief → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16,
                 *, nesterov=False):
        super().__init__(ScaleByBelief(b1, b2, eps, eps_root, nesterov=nesterov),
                         ScaleByLearningRate(learning_rate))


class Yogi(Chain):
    """Yogi: scale_by_yogi → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-3):
        super().__init__(ScaleByYogi(b1, b2, eps), ScaleByLearningRate(learning_rate))


class Radam(Chain):
    """RAdam: scale_by_radam → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 threshold=5.0, *, nesterov=False):
        super().__init__(
            ScaleByRadam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
            ScaleByLearningRate(learning_rate))


# fmt: on

REFERENCES = {
    "scale_by_sign": ScaleBySign,
    "scale_by_lion": ScaleByLion,
    "scale_by_belief": ScaleByBelief,
    "scale_by_yogi": ScaleByYogi,
    "scale_by_radam": ScaleByRadam,
    "sign_sgd": SignSgd,
    "signum": Signum,
    "lion": Lion,
    "adabelief": Adabelief,
    "yogi": Yogi,
    "radam": Radam,
}
