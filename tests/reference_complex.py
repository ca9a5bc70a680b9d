"""Float64 NumPy references for complex leaves, written on their real view.

A leaf is held as its *real view*: a float64 array with one trailing axis of
components, ``(x, y)`` for a complex leaf ``z = x + iy`` (length 2) and ``(x,)``
for a real one (length 1), see :func:`real_view`. Every rule treats a complex
number as a pair of reals. Where a rule squares or takes the modulus of one
gradient element it uses ``|g|² = x² + y²`` of that element (:func:`sq`, summed
over the trailing axis), never ``x²`` and ``y²`` separately; where it needs a
whole-leaf or global norm it sums every real component. Nothing here calls
``conj`` or uses NumPy's complex arithmetic, so these references are
independent of how gradtx handles complex dtypes.

Rules that are linear maps or use only whole-leaf/global *sums* of squares
need no change: the references of :mod:`reference`, :mod:`reference_adaptive`
and :mod:`reference_layerwise` apply to real views as they are, and the aliases
below reuse them. (A whole-leaf *mean* would count the two components of a
complex element as two elements, so RMS-based rules are not reused.)

Interface and conventions are those of :mod:`reference`: ``update(grads,
params)`` on lists of arrays; ``t`` counts the updates done before the current
one, bias corrections use ``t + 1``; ``*_dtype`` arguments are ignored.
"""

from __future__ import annotations

import numpy as np
from reference import (
    AddDecayedWeights,
    Chain,
    ClipByGlobalNorm,
    Ema,
    ScaleByLearningRate,
    Trace,
    _Reference,
    _value,
)
from reference_adaptive import Novograd, ScaleByOptimisticGradient
from reference_layerwise import Fromage, ScaleByTrustRatio


def real_view(x) -> np.ndarray:
    """``x`` as float64 with a trailing axis of components: (re, im) or (re,)."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return np.stack([x.real, x.imag], axis=-1).astype(np.float64)
    return np.asarray(x, np.float64)[..., None]


def sq(g: np.ndarray) -> np.ndarray:
    """``|g|²`` per element (x² + y²), keeping a trailing axis of length 1."""
    return np.sum(g * g, axis=-1, keepdims=True)


def _debias(x, b, n):
    return x / (1.0 - b**n)


def _nesterov_or_plain(m, g, b1, n, nesterov):
    """m̂: m/(1 − b1^n), or NAdam's b1·m/(1 − b1^(n+1)) + (1 − b1)·g/(1 − b1^n)."""
    if nesterov:
        return b1 * m / (1.0 - b1 ** (n + 1)) + (1.0 - b1) * g / (1.0 - b1**n)
    return m / (1.0 - b1**n)


# ----------------------------------------------------------------- primitives
# fmt: off


class ScaleByRss(_Reference):
    """Adagrad: s ← s + |g|²; u = g / sqrt(s + ε), 0 where s = 0."""

    def __init__(self, initial_accumulator_value=0.1, eps=1e-7):
        super().__init__()
        self.s0, self.eps = float(initial_accumulator_value), float(eps)

    def init_leaf(self, g):
        return {"s": np.full_like(sq(g), self.s0)}

    def leaf(self, s, g, t):
        s["s"] = s["s"] + sq(g)
        safe = np.where(s["s"] > 0, s["s"], 1.0)
        return np.where(s["s"] > 0, g / np.sqrt(safe + self.eps), 0.0)


class ScaleByRms(_Reference):
    """RMSProp: ν ← ρ·ν + (1−ρ)|g|²; u = g / sqrt(ν̂ + ε) (or sqrt(ν̂) + ε).
    ``centered`` subtracts |μ̂|², μ the running mean of g (Graves 2013)."""

    def __init__(self, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
                 bias_correction=False, centered=False):
        super().__init__()
        self.rho, self.eps, self.nu0 = map(float, (decay, eps, initial_scale))
        self.in_sqrt, self.debias = eps_in_sqrt, bias_correction
        self.centered = centered

    def init_leaf(self, g):
        return {"mu": np.zeros_like(g), "nu": np.full_like(sq(g), self.nu0)}

    def leaf(self, s, g, t):
        rho, n = self.rho, t + 1
        s["mu"] = rho * s["mu"] + (1.0 - rho) * g
        s["nu"] = rho * s["nu"] + (1.0 - rho) * sq(g)
        fix = (lambda x: _debias(x, rho, n)) if self.debias else (lambda x: x)
        var = fix(s["nu"]) - (sq(fix(s["mu"])) if self.centered else 0.0)
        den = np.sqrt(var + self.eps) if self.in_sqrt else np.sqrt(var) + self.eps
        return g / den


class ScaleByAdam(_Reference):
    """Adam: m ← ema(g), v ← ema(|g|²); u = m̂ / (sqrt(v̂ + ε_root) + ε).
    AMSGrad (``amsgrad``) divides by the running maximum of v̂ instead."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *,
                 nesterov=False, amsgrad=False):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.nesterov, self.amsgrad = nesterov, amsgrad

    def init_leaf(self, g):
        z = np.zeros_like(sq(g))
        return {"m": np.zeros_like(g), "v": z, "v_max": z}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * sq(g)
        v_hat = _debias(s["v"], b2, n)
        if self.amsgrad:
            v_hat = s["v_max"] = np.maximum(s["v_max"], v_hat)
        m_hat = _nesterov_or_plain(s["m"], g, b1, n, self.nesterov)
        return m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps)


class ScaleByAdamax(_Reference):
    """AdaMax: ν ← max(β2·ν, |g| + ε) with |g| = sqrt(x² + y²); u = m̂ / ν."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__()
        self.b1, self.b2, self.eps = map(float, (b1, b2, eps))

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "nu": np.zeros_like(sq(g))}

    def leaf(self, s, g, t):
        s["m"] = self.b1 * s["m"] + (1.0 - self.b1) * g
        s["nu"] = np.maximum(self.b2 * s["nu"], np.sqrt(sq(g)) + self.eps)
        return _debias(s["m"], self.b1, t + 1) / s["nu"]


class ScaleByBelief(_Reference):
    """AdaBelief: s ← β2·s + (1−β2)|g − m|² + ε_root; u = m̂ / (sqrt(ŝ) + ε)."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *,
                 nesterov=False):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.nesterov = nesterov

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "s": np.zeros_like(sq(g))}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["s"] = b2 * s["s"] + (1.0 - b2) * sq(g - s["m"]) + self.eps_root
        m_hat = _nesterov_or_plain(s["m"], g, b1, n, self.nesterov)
        return m_hat / (np.sqrt(_debias(s["s"], b2, n)) + self.eps)


class ScaleByYogi(_Reference):
    """Yogi: v ← v − (1−β2)·sign(v − |g|²)·|g|²; u = m̂ / (sqrt(v̂) + ε).
    Both moments start at ``initial_accumulator_value`` (Optax's convention);
    m's start is a complex number on the real axis."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0,
                 initial_accumulator_value=1e-6):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.v0 = float(initial_accumulator_value)

    def init_leaf(self, g):
        m = np.zeros_like(g)
        m[..., 0] = self.v0
        return {"m": m, "v": np.full_like(sq(g), self.v0)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        g2 = sq(g)
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = s["v"] - (1.0 - b2) * np.sign(s["v"] - g2) * g2
        v_hat = _debias(s["v"], b2, n)
        return _debias(s["m"], b1, n) / (np.sqrt(v_hat + self.eps_root) + self.eps)


class ScaleByRadam(ScaleByAdam):
    """RAdam: u = r_t·m̂ / (sqrt(v̂ + ε_root) + ε) once ρ_t >= threshold, else m̂."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *,
                 nesterov=False):
        super().__init__(b1, b2, eps, eps_root, nesterov=nesterov)
        self.threshold = float(threshold)

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        adam = super().leaf(s, g, t)  # updates m and v
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho = rho_inf - 2.0 * n * b2**n / (1.0 - b2**n)
        if rho < self.threshold:
            return _nesterov_or_plain(s["m"], g, b1, n, self.nesterov)
        return adam * np.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf
                              / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))


class ScaleByAdan(_Reference):
    """Adan: m ← ema(g), v ← ema(Δg), n ← ema(|g + (1−β2)Δg|²), Δg = 0 at first;
    u = (m̂ + (1−β2)·v̂) / (sqrt(n̂ + ε_root) + ε)."""

    def __init__(self, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=0.0):
        super().__init__()
        self.b = tuple(map(float, (b1, b2, b3)))
        self.eps, self.eps_root = float(eps), float(eps_root)

    def init_leaf(self, g):
        z = np.zeros_like(g)
        return {"m": z, "v": z, "n": np.zeros_like(sq(g)), "prev": z}

    def leaf(self, s, g, t):
        (b1, b2, b3), n = self.b, t + 1
        dg = np.zeros_like(g) if t == 0 else g - s["prev"]
        s["prev"] = g
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * dg
        s["n"] = b3 * s["n"] + (1.0 - b3) * sq(g + (1.0 - b2) * dg)
        num = _debias(s["m"], b1, n) + (1.0 - b2) * _debias(s["v"], b2, n)
        return num / (np.sqrt(_debias(s["n"], b3, n) + self.eps_root) + self.eps)


class ScaleByAdadelta(_Reference):
    """AdaDelta: E[|g|²] now, E[|Δx|²] to the previous step;
    u = sqrt(E[|Δx|²] + ε) / sqrt(E[|g|²] + ε) · g."""

    def __init__(self, rho=0.9, eps=1e-6):
        super().__init__()
        self.rho, self.eps = float(rho), float(eps)

    def init_leaf(self, g):
        return {"eg": np.zeros_like(sq(g)), "ex": np.zeros_like(sq(g))}

    def leaf(self, s, g, t):
        rho, eps = self.rho, self.eps
        s["eg"] = rho * s["eg"] + (1.0 - rho) * sq(g)
        u = np.sqrt(s["ex"] + eps) / np.sqrt(s["eg"] + eps) * g
        s["ex"] = rho * s["ex"] + (1.0 - rho) * sq(u)
        return u


class ScaleByAdemamix(_Reference):
    """AdEMAMix: u = (m̂1 + α·m2) / (sqrt(ν̂ + ε_root) + ε), ν ← ema(|g|²)."""

    def __init__(self, b1=0.9, b2=0.999, b3=0.9999, alpha=6.0, eps=1e-8,
                 eps_root=0.0, mu_dtype=None):
        super().__init__()
        self.b1, self.b2, self.b3, self.alpha = b1, b2, b3, alpha
        self.eps, self.eps_root = eps, eps_root

    def init_leaf(self, g):
        z = np.zeros_like(g)
        return {"m1": z, "m2": z, "v": np.zeros_like(sq(g))}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        b3, alpha = _value(self.b3, t), _value(self.alpha, t)
        s["m1"] = b1 * s["m1"] + (1.0 - b1) * g
        s["m2"] = b3 * s["m2"] + (1.0 - b3) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * sq(g)
        num = _debias(s["m1"], b1, n) + alpha * s["m2"]
        return num / (np.sqrt(_debias(s["v"], b2, n) + self.eps_root) + self.eps)


class ScaleBySimplifiedAdemamix(_Reference):
    """Simplified AdEMAMix: m ← β1·m + g; u = (m + α·g) / (sqrt(ν̂ + ε_root) + ε)."""

    def __init__(self, b1=0.99, b2=0.95, alpha=0.0, eps=1e-8, eps_root=0.0):
        super().__init__()
        self.b1, self.b2, self.alpha = b1, b2, alpha
        self.eps, self.eps_root = eps, eps_root

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(sq(g))}

    def leaf(self, s, g, t):
        b2, n = self.b2, t + 1
        s["m"] = self.b1 * s["m"] + g
        s["v"] = b2 * s["v"] + (1.0 - b2) * sq(g)
        num = s["m"] + _value(self.alpha, t) * g
        return num / (np.sqrt(_debias(s["v"], b2, n) + self.eps_root) + self.eps)


class ScaleByAdoptNoClipping(_Reference):
    """ADOPT without clipping: t = 0: v = |g|², u = 0; then x = g/max(sqrt(v), ε)
    with the previous v, m ← ema(x), v ← ema(|g|²), u = m."""

    def __init__(self, b1=0.9, b2=0.9999, eps=1e-6):
        super().__init__()
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(sq(g))}

    def leaf(self, s, g, t):
        if t == 0:
            s["v"] = sq(g)
            return np.zeros_like(g)
        x = g / np.maximum(np.sqrt(s["v"]), self.eps)
        s["m"] = self.b1 * s["m"] + (1.0 - self.b1) * x
        s["v"] = self.b2 * s["v"] + (1.0 - self.b2) * sq(g)
        return s["m"]


class ScaleBySm3(_Reference):
    """SM3-II, one accumulator per index of each axis (of the complex leaf):
    ν = b2'·|g|² + b2·min_r μ_r; μ_r = max of ν over the other axes;
    u ← β1·u + (1−β1)·g/sqrt(ν + ε), 0 where ν = 0. Rank <= 1 keeps ν."""

    def __init__(self, b1=0.9, b2=1.0, eps=1e-8):
        super().__init__()
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def init_leaf(self, g):
        shape = g.shape[:-1]
        mus = [np.zeros(shape)] if len(shape) < 2 else [np.zeros(k) for k in shape]
        return {"mu": mus, "u": np.zeros_like(g)}

    def leaf(self, s, g, t):
        g2 = sq(g)[..., 0]
        rank = g2.ndim
        if rank < 2:
            prev = s["mu"][0]
        else:
            axes = [m.reshape([-1 if i == k else 1 for k in range(rank)])
                    for i, m in enumerate(s["mu"])]
            prev = np.minimum.reduce(np.broadcast_arrays(*axes))
        fresh = 1.0 if self.b2 == 1.0 else 1.0 - self.b2
        nu = fresh * g2 + self.b2 * prev
        if rank < 2:
            s["mu"] = [nu]
        else:
            s["mu"] = [nu.max(axis=tuple(k for k in range(rank) if k != i))
                       for i in range(rank)]
        safe = np.where(nu > 0, nu, 1.0)
        step = np.where(nu[..., None] > 0, g / np.sqrt(safe[..., None] + self.eps), 0.0)
        s["u"] = self.b1 * s["u"] + (1.0 - self.b1) * step
        return s["u"]


class Prodigy(_Reference):
    """Prodigy (Adam version, Optax's form) with real inner products:
    λ = d·η(t)·sqrt(1−β2^n)/(1−β1^n); m, v: Adam moments of d·g (v of |d·g|²);
    r ← β3·r + (d/d0)·λ·Re⟨g, x0 − x⟩; s ← β3·s + λ·d·g/d0;
    d ← max(d, c·r/‖s‖₁), ‖s‖₁ = Σ|s| (moduli); u = −λ·m/(sqrt(v) + d·ε)."""

    def __init__(self, learning_rate=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8,
                 estim_lr0=1e-6, estim_lr_coef=1.0):
        super().__init__()
        self.lr, (self.b1, self.b2) = learning_rate, betas
        self.b3 = self.b2**0.5 if beta3 is None else beta3
        self.eps, self.d0, self.coef = eps, estim_lr0, estim_lr_coef
        self.d, self.r, self.x0 = estim_lr0, 0.0, None

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(sq(g)), "s": np.zeros_like(g)}

    def step(self, grads, params, t):
        if self.x0 is None:
            self.x0 = params
        b1, b2, b3, d, n = self.b1, self.b2, self.b3, self.d, t + 1
        lam = d * _value(self.lr, t) * np.sqrt(1.0 - b2**n) / (1.0 - b1**n)
        pairs = zip(grads, self.x0, params, strict=True)
        self.r = b3 * self.r + (d / self.d0) * lam * sum(
            float(np.sum(g * (x0 - x))) for g, x0, x in pairs)
        for s, g in zip(self.state, grads, strict=True):
            s["m"] = b1 * s["m"] + (1.0 - b1) * d * g
            s["v"] = b2 * s["v"] + (1.0 - b2) * sq(d * g)
            s["s"] = b3 * s["s"] + lam * d * g / self.d0
        l1 = sum(float(np.sum(np.sqrt(sq(s["s"])))) for s in self.state)
        if l1 > 0:
            self.d = max(d, self.coef * self.r / l1)
        return [-lam * s["m"] / (np.sqrt(s["v"]) + self.d * self.eps)
                for s in self.state]


# -------------------------------------------------------------------- aliases
# Each mirrors the gradtx alias of the same name: same arguments and defaults.


def _lr_chain(*refs_and_lr):
    """``Chain(*refs, ScaleByLearningRate(lr))`` for arguments ``(*refs, lr)``."""
    *refs, lr = refs_and_lr
    return Chain(*refs, ScaleByLearningRate(lr))


def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7):
    """Adagrad: scale_by_rss → lr."""
    return _lr_chain(ScaleByRss(initial_accumulator_value, eps), learning_rate)


def rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
            centered=False, momentum=None, nesterov=False, bias_correction=False):
    """RMSProp: scale_by_rms (centered: the stddev form) → lr → [trace]."""
    refs = [ScaleByRms(decay, eps, initial_scale, eps_in_sqrt, bias_correction,
                       centered), ScaleByLearningRate(learning_rate)]
    return Chain(*refs, *([] if momentum is None else [Trace(momentum, nesterov)]))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *,
         nesterov=False):
    """Adam: scale_by_adam → lr."""
    return _lr_chain(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                     learning_rate)


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
          weight_decay=1e-4, mask=None, *, nesterov=False):
    """AdamW: scale_by_adam → decoupled weight decay → lr."""
    return _lr_chain(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                     AddDecayedWeights(weight_decay, mask), learning_rate)


def nadamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
           weight_decay=1e-4, mask=None):
    """NAdamW: adamw with Nesterov's look-ahead."""
    return adamw(learning_rate, b1, b2, eps, eps_root, None, weight_decay, mask,
                 nesterov=True)


def adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    """AdaMax: scale_by_adamax → lr."""
    return _lr_chain(ScaleByAdamax(b1, b2, eps), learning_rate)


def adamaxw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None):
    """AdaMaxW: scale_by_adamax → decoupled weight decay → lr."""
    return _lr_chain(ScaleByAdamax(b1, b2, eps), AddDecayedWeights(weight_decay, mask),
                     learning_rate)


def amsgrad(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None):
    """AMSGrad: scale_by_amsgrad → lr."""
    return _lr_chain(ScaleByAdam(b1, b2, eps, eps_root, amsgrad=True), learning_rate)


def adabelief(learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, *,
              nesterov=False):
    """AdaBelief: scale_by_belief → lr."""
    return _lr_chain(ScaleByBelief(b1, b2, eps, eps_root, nesterov=nesterov),
                     learning_rate)


def yogi(learning_rate, b1=0.9, b2=0.999, eps=1e-3):
    """Yogi: scale_by_yogi → lr."""
    return _lr_chain(ScaleByYogi(b1, b2, eps), learning_rate)


def radam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0, *,
          nesterov=False):
    """RAdam: scale_by_radam → lr."""
    return _lr_chain(ScaleByRadam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
                     learning_rate)


def adan(learning_rate, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, eps_root=1e-8,
         weight_decay=0.0, mask=None):
    """Adan: scale_by_adan → decoupled weight decay → lr."""
    return _lr_chain(ScaleByAdan(b1, b2, b3, eps, eps_root),
                     AddDecayedWeights(weight_decay, mask), learning_rate)


def adadelta(learning_rate=None, rho=0.9, eps=1e-6, weight_decay=0.0,
             weight_decay_mask=None):
    """AdaDelta: coupled weight decay → scale_by_adadelta → lr (None: 1)."""
    return _lr_chain(AddDecayedWeights(weight_decay, weight_decay_mask),
                     ScaleByAdadelta(rho, eps),
                     1.0 if learning_rate is None else learning_rate)


def optimistic_adam_v2(learning_rate, *, alpha=1.0, beta=1.0, b1=0.9, b2=0.999,
                       eps=1e-8, eps_root=0.0, mu_dtype=None, nesterov=True):
    """Optimistic Adam: scale_by_adam → optimistic gradient → lr."""
    return _lr_chain(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                     ScaleByOptimisticGradient(alpha, beta), learning_rate)


def ademamix(learning_rate, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8,
             eps_root=0.0, mu_dtype=None, weight_decay=0.0, mask=None):
    """AdEMAMix: scale_by_ademamix → decoupled weight decay → lr."""
    return _lr_chain(ScaleByAdemamix(b1, b2, b3, alpha, eps, eps_root),
                     AddDecayedWeights(weight_decay, mask), learning_rate)


def simplified_ademamix(learning_rate, b1=0.99, b2=0.95, alpha=0.0, eps=1e-8,
                        eps_root=0.0, weight_decay=0.0, mask=None):
    """Simplified AdEMAMix: its scaling → weight decay → lr."""
    return _lr_chain(ScaleBySimplifiedAdemamix(b1, b2, alpha, eps, eps_root),
                     AddDecayedWeights(weight_decay, mask), learning_rate)


def lamb(learning_rate, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0,
         mask=None):
    """LAMB: scale_by_adam → weight decay → trust ratio (norms) → lr."""
    return _lr_chain(ScaleByAdam(b1, b2, eps, eps_root),
                     AddDecayedWeights(weight_decay, mask), ScaleByTrustRatio(),
                     learning_rate)


def sm3(learning_rate, momentum=0.9):
    """SM3: scale_by_sm3(momentum) → lr."""
    return _lr_chain(ScaleBySm3(0.0 if momentum is None else momentum), learning_rate)


# fmt: on

# gradtx name -> reference on real views. Linear and norm-only rules reuse the
# real references unchanged (see the module docstring).
REFERENCES = {
    "novograd": Novograd,
    "fromage": Fromage,
    "trace": Trace,
    "ema": Ema,
    "clip_by_global_norm": ClipByGlobalNorm,
    "scale_by_adopt": ScaleByAdoptNoClipping,
    "prodigy": Prodigy,
    **{f.__name__: f for f in (
        adagrad, rmsprop, adam, adamw, nadamw, adamax, adamaxw, amsgrad,
        adabelief, yogi, radam, adan, adadelta, optimistic_adam_v2, ademamix,
        simplified_ademamix, lamb, sm3)},
}  # fmt: skip
