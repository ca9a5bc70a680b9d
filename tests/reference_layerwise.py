"""Float64 NumPy references for the layer-wise, factored and Polyak rules.

Same interface and conventions as :mod:`reference` (``update(grads, params)``
on lists of arrays; ``t`` counts the updates done before the current one;
``*_dtype`` arguments are accepted and ignored). Each rule is written from its
paper; where Optax (and so gradtx) fixes a convention the paper leaves open,
the docstring says so. Aliases are ``Chain``s of the primitive references.

The Polyak references need the loss: they take ``loss(params) -> float`` at
construction (the gradtx/Optax ``update`` gets it as ``value=``).
"""

from __future__ import annotations

import numpy as np
from reference import (
    AddDecayedWeights,
    Chain,
    Ema,
    Scale,
    ScaleByAdam,
    ScaleByLearningRate,
    Trace,
    _Reference,
    _value,
)

# fmt: off


def _norm(x):
    return float(np.sqrt(np.sum(x * x)))


def _rms(x):
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


class ScaleByTrustRatio(_Reference):
    """LARS (You et al. 2017, eq. 6): u ← u · c‖θ‖ / (‖u‖ + ε), norms floored
    at min_norm, ratio 1 where a floored norm is 0 (Optax's convention)."""

    def __init__(self, min_norm=0.0, trust_coefficient=1.0, eps=0.0):
        super().__init__()
        self.m, self.c, self.eps = map(float, (min_norm, trust_coefficient, eps))

    def step(self, grads, params, t):
        out = []
        for u, p in zip(grads, params, strict=True):
            pn, un = max(_norm(p), self.m), max(_norm(u), self.m)
            ratio = 1.0 if pn == 0.0 or un == 0.0 else self.c * pn / (un + self.eps)
            out.append(u * ratio)
        return out


class ScaleByParamBlockNorm(_Reference):
    """u ← u · max(‖θ‖, min_scale), per leaf."""

    def __init__(self, min_scale=1e-3):
        super().__init__()
        self.s = float(min_scale)

    def step(self, grads, params, t):
        return [u * max(_norm(p), self.s) for u, p in zip(grads, params, strict=True)]


class ScaleByParamBlockRms(ScaleByParamBlockNorm):
    """Adafactor's relative step (Shazeer & Stern 2018, Alg. 4): u · max(rms θ, ε2)."""

    def step(self, grads, params, t):
        return [u * max(_rms(p), self.s) for u, p in zip(grads, params, strict=True)]


class ClipByBlockRms(_Reference):
    """Adafactor's update clipping (section 6): u / max(1, rms(u) / d)."""

    def __init__(self, threshold):
        super().__init__()
        self.d = float(threshold)

    def leaf(self, s, g, t):
        return g / max(1.0, _rms(g) / self.d)


class AddScaledParams(_Reference):
    """u ← u + factor · θ (Fromage's shrinkage; any sign)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def step(self, grads, params, t):
        f = _value(self.factor, t)
        return [g + f * p for g, p in zip(grads, params, strict=True)]


class ScaleByFactoredRms(_Reference):
    """Adafactor (Shazeer & Stern 2018, Alg. 4 without clipping/relative step).

    β_t = 1 − (t + 1 − offset)^(−k) with t from 0 (Optax's schedule). For a
    leaf whose two largest axes (numpy.argsort order) have >= min_dim entries:
    R ← β R + (1−β) mean_cols(G), C ← β C + (1−β) mean_rows(G), G = g² + ε1,
    v̂ = R C / mean(R); otherwise v ← β v + (1−β) G. u = g / sqrt(v̂).
    """

    def __init__(self, factored=True, decay_rate=0.8, step_offset=0,
                 min_dim_size_to_factor=128, epsilon=1e-30):
        super().__init__()
        self.factored, self.k = factored, float(decay_rate)
        self.offset, self.eps = step_offset, epsilon
        self.min_dim = min_dim_size_to_factor

    def _axes(self, shape):
        if not self.factored or len(shape) < 2:
            return None
        order = np.argsort(shape)
        if shape[order[-2]] < self.min_dim:
            return None
        return int(order[-2]), int(order[-1])  # (column axis, row axis)

    def init_leaf(self, g):
        axes = self._axes(g.shape)
        if axes is None:
            return {"v": np.zeros_like(g)}
        c, r = axes
        return {"R": np.zeros(np.delete(g.shape, r)),
                "C": np.zeros(np.delete(g.shape, c))}

    def leaf(self, s, g, t):
        # β_t is a float32 number in Optax and gradtx (even with x64): same here.
        n = np.float32(max(t - self.offset, 0) + 1)
        beta = float(np.float32(1.0) - n ** np.float32(-self.k))
        G = g * g + self.eps
        axes = self._axes(g.shape)
        if axes is None:
            s["v"] = beta * s["v"] + (1 - beta) * G
            return g / np.sqrt(s["v"])
        c, r = axes
        s["R"] = beta * s["R"] + (1 - beta) * G.mean(axis=r)
        s["C"] = beta * s["C"] + (1 - beta) * G.mean(axis=c)
        R = np.expand_dims(s["R"], r)  # varies along axis c
        C = np.expand_dims(s["C"], c)  # varies along axis r
        v_hat = R * C / R.mean(axis=c, keepdims=True)
        return g / np.sqrt(v_hat)


class ScaleByPolyak(_Reference):
    """SPS_max (Loizou et al. 2021): u ← min((f − f*) / (‖u‖² + ε), γ_max) · u.

    ‖u‖ is the global norm; the step is 0 where ‖u‖² + ε <= float64 eps;
    ``"sps+"`` (Garrigos et al. 2023) takes max(f − f*, 0).
    """

    def __init__(self, f_min=0.0, max_learning_rate=1.0, eps=0.0, variant="sps", *,
                 loss):
        super().__init__()
        self.f_min, self.gmax, self.eps = map(float, (f_min, max_learning_rate, eps))
        self.variant, self.loss = variant, loss

    def step(self, grads, params, t):
        gap = self.loss(params) - self.f_min
        if self.variant == "sps+":
            gap = max(gap, 0.0)
        sq = sum(float(np.sum(g * g)) for g in grads) + self.eps
        step = 0.0 if sq <= np.finfo(np.float64).eps else min(gap / sq, self.gmax)
        return [step * g for g in grads]


class ScaleByDistanceOverGradients(_Reference):
    """Layer-wise DoG (Ivgi et al. 2023, Alg. 1 per leaf):
    r ← max(r, ‖θ − θ0‖) from r_ε = reps_rel·(1 + ‖θ0‖); G ← G + ‖g‖²;
    u = s · r / sqrt(G + ε) · g."""

    def __init__(self, reps_rel=1e-6, eps=1e-8, param_dtype=np.float32,
                 global_scale=1.0):
        super().__init__()
        self.reps, self.eps, self.s = map(float, (reps_rel, eps, global_scale))
        self.param_dtype, self.p0 = param_dtype, None

    def step(self, grads, params, t):
        if self.p0 is None:
            # θ0 is stored in param_dtype (float32 by default), as the state.
            dt = self.param_dtype or np.float64
            self.p0 = [p.astype(dt).astype(np.float64) for p in params]
            self.r = [self.reps * (1 + _norm(p)) for p in params]
            self.G = [0.0 for _ in params]
        out = []
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            self.r[i] = max(self.r[i], _norm(p - self.p0[i]))
            self.G[i] += float(np.sum(g * g))
            out.append(self.s * self.r[i] / np.sqrt(self.G[i] + self.eps) * g)
        return out


# -------------------------------------------------------------------- aliases


def _masked(ref, mask):
    """Apply ``ref`` to the leaves where ``mask`` (True: all) is True."""
    if mask is True or mask is None:
        return ref

    class Masked(_Reference):
        def step(self, grads, params, t):
            m = mask(params) if callable(mask) else list(mask)
            idx = [i for i, b in enumerate(m) if b]
            new = ref.update([grads[i] for i in idx], [params[i] for i in idx])
            out = list(grads)
            for i, u in zip(idx, new, strict=True):
                out[i] = u
            return out

    return Masked()


class Fromage(Chain):
    """Fromage (Bernstein et al. 2020, Alg. 1): θ ← (θ − η‖θ‖/‖g‖ g) / sqrt(1 + η²)."""

    def __init__(self, learning_rate, min_norm=1e-6):
        lr = learning_rate
        mult = lambda t: 1 / np.sqrt(1 + _value(lr, t) ** 2)
        super().__init__(ScaleByTrustRatio(min_norm),
                         ScaleByLearningRate(lambda t: mult(t) * _value(lr, t)),
                         AddScaledParams(lambda t: mult(t) - 1))


class Lars(Chain):
    """LARS (You et al. 2017, Alg. 1), Optax's order: decay, trust ratio, −η, trace."""

    def __init__(self, learning_rate, weight_decay=0.0, weight_decay_mask=True,
                 trust_coefficient=0.001, eps=0.0, trust_ratio_mask=True, momentum=0.9,
                 nesterov=False):
        wd_mask = None if weight_decay_mask is True else weight_decay_mask
        super().__init__(
            AddDecayedWeights(weight_decay, wd_mask),
            _masked(ScaleByTrustRatio(trust_coefficient=trust_coefficient, eps=eps),
                    trust_ratio_mask),
            ScaleByLearningRate(learning_rate),
            Trace(momentum, nesterov))


class Lamb(Chain):
    """LAMB (You et al. 2020, Alg. 2): Adam step + λθ, times ‖θ‖/‖r‖, times −η."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0,
                 weight_decay=0.0, mask=None):
        super().__init__(ScaleByAdam(b1, b2, eps, eps_root),
                         AddDecayedWeights(weight_decay, mask),
                         ScaleByTrustRatio(),
                         ScaleByLearningRate(learning_rate))


class Adafactor(Chain):
    """Adafactor (Shazeer & Stern 2018, Alg. 4 + section 6 clipping), Optax's order."""

    def __init__(self, learning_rate=None, min_dim_size_to_factor=128, decay_rate=0.8,
                 decay_offset=0, multiply_by_parameter_scale=True,
                 clipping_threshold=1.0, momentum=None, dtype_momentum=None,
                 weight_decay_rate=None, eps=1e-30, factored=True,
                 weight_decay_mask=None):
        refs = [ScaleByFactoredRms(factored, decay_rate, decay_offset,
                                   min_dim_size_to_factor, eps)]
        if clipping_threshold is not None:
            refs.append(ClipByBlockRms(clipping_threshold))
        if learning_rate is not None:
            refs.append(ScaleByLearningRate(learning_rate, flip_sign=False))
        if multiply_by_parameter_scale:
            refs.append(ScaleByParamBlockRms())
        if momentum is not None:
            refs.append(Ema(momentum, debias=False))
        if weight_decay_rate is not None:
            refs.append(AddDecayedWeights(weight_decay_rate, weight_decay_mask))
        refs.append(Scale(-1.0))
        super().__init__(*refs)


class PolyakSgd(Chain):
    """SGD with Polyak step (Loizou et al. 2021), as Optax chains it: −s·g, then SPS."""

    def __init__(self, max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0,
                 variant="sps", *, loss):
        super().__init__(ScaleByLearningRate(scaling),
                         ScaleByPolyak(f_min, max_learning_rate, eps, variant,
                                       loss=loss))


REFERENCES = {
    "scale_by_trust_ratio": ScaleByTrustRatio,
    "scale_by_param_block_norm": ScaleByParamBlockNorm,
    "scale_by_param_block_rms": ScaleByParamBlockRms,
    "clip_by_block_rms": ClipByBlockRms,
    "scale_by_factored_rms": ScaleByFactoredRms,
    "scale_by_polyak": ScaleByPolyak,
    "scale_by_distance_over_gradients": ScaleByDistanceOverGradients,
    "fromage": Fromage,
    "lars": Lars,
    "lamb": Lamb,
    "adafactor": Adafactor,
    "polyak_sgd": PolyakSgd,
}
