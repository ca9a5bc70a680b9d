"""Float64 NumPy references: block-RMS and adaptive clipping, constraints, misc.

Written from the rules (Brock et al. 2021 for AGC; Yong et al. 2020 for
gradient centralisation), in the style of :mod:`reference`: same argument
names and defaults as the gradtx/Optax factories, ``update(grads, params)`` on
lists of arrays. The per-example clips are plain functions.
"""

from __future__ import annotations

import numpy as np
from reference import _Reference


class ClipByBlockRms(_Reference):
    """u = g / max(1, rms(g) / threshold), leaf by leaf."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = float(threshold)

    def leaf(self, s, g, t):
        rms = np.sqrt(np.mean(g * g)) if g.size else 0.0
        return g / max(1.0, rms / self.threshold)


def _unit_norm(x, axis):
    if axis is None:
        if np.squeeze(x).ndim <= 1:
            axis = None
        elif x.ndim in (2, 3):
            axis = 0
        else:
            axis = tuple(range(x.ndim - 1))
    sq = np.sum(x * x, axis=axis, keepdims=True)
    return np.broadcast_to(np.sqrt(sq), x.shape)


class AdaptiveGradClip(_Reference):
    """Brock et al. 2021: clip each unit to ``clipping · max(‖w‖, eps)``."""

    def __init__(self, clipping, eps=1e-3, axis=None):
        super().__init__()
        self.clipping, self.eps, self.axis = float(clipping), float(eps), axis

    def step(self, grads, params, t):
        out = []
        for g, w in zip(grads, params, strict=True):
            gn = _unit_norm(g, self.axis)
            mx = self.clipping * np.maximum(_unit_norm(w, self.axis), self.eps)
            out.append(np.where(gn < mx, g, g * mx / np.maximum(gn, 1e-6)))
        return out


class KeepParamsNonnegative(_Reference):
    """u = −p where p + g < 0, else g."""

    def step(self, grads, params, t):
        return [np.where(p + g < 0, -p, g) for g, p in zip(grads, params, strict=True)]


class ZeroNans(_Reference):
    """u = 0 where g is NaN; ``found_nan`` records which leaves had one."""

    def step(self, grads, params, t):
        self.found_nan = [bool(np.any(np.isnan(g))) for g in grads]
        return [np.where(np.isnan(g), 0.0, g) for g in grads]


class Centralize(_Reference):
    """Yong et al. 2020: subtract the mean over all axes but the first (rank >= 2)."""

    def leaf(self, s, g, t):
        if g.ndim < 2:
            return g
        return g - g.mean(axis=tuple(range(1, g.ndim)), keepdims=True)


class NormalizeByUpdateNorm(_Reference):
    """u = s · g / (‖g‖ + eps), ‖g‖ over all leaves."""

    def __init__(self, scale_factor=1.0, eps=1e-6):
        super().__init__()
        self.scale_factor, self.eps = float(scale_factor), float(eps)

    def step(self, grads, params, t):
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        return [self.scale_factor * g / (norm + self.eps) for g in grads]


class ApplyEvery(_Reference):
    """Sum ``k`` consecutive updates; emit the sum on every ``k``-th, else 0."""

    def __init__(self, k=1):
        super().__init__()
        self.k = int(k)

    def init_leaf(self, g):
        return {"acc": np.zeros_like(g)}

    def leaf(self, s, g, t):
        s["acc"] = (s["acc"] if t % self.k else 0.0) + g
        return s["acc"] if t % self.k == self.k - 1 else np.zeros_like(g)


def per_example_global_norm_clip(grads, l2_norm_clip):
    """(Σ_n min(1, C/‖g_n‖) g_n, #scaled) with a zero example kept as is."""
    grads = [np.asarray(g, np.float64) for g in grads]
    norms = np.sqrt(sum(np.sum(g.reshape(len(g), -1) ** 2, axis=1) for g in grads))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.minimum(l2_norm_clip / norms, 1.0)
    factor = np.where(np.isnan(factor), 1.0, factor)
    return [np.tensordot(factor, g, axes=1) for g in grads], int(np.sum(factor < 1))


def per_example_layer_norm_clip(grads, global_l2_norm_clip, uniform=True):
    """Each leaf clipped on its own to ``C/sqrt(K)`` or ``C·sqrt(D_k/D)``."""
    sizes = [np.asarray(g)[0].size for g in grads]
    sums, counts = [], []
    for g, d in zip(grads, sizes, strict=True):
        share = 1 / len(grads) if uniform else d / sum(sizes)
        (s,), n = per_example_global_norm_clip([g], global_l2_norm_clip * share**0.5)
        sums.append(s)
        counts.append(n)
    return sums, counts


REFERENCES = {
    "clip_by_block_rms": ClipByBlockRms,
    "adaptive_grad_clip": AdaptiveGradClip,
    "keep_params_nonnegative": KeepParamsNonnegative,
    "zero_nans": ZeroNans,
    "centralize": Centralize,
    "normalize_by_update_norm": NormalizeByUpdateNorm,
    "apply_every": ApplyEvery,
}
