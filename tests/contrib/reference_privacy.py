"""A float64 NumPy reference for DP-SGD's aggregate, from the paper.

Abadi et al., 2016, "Deep Learning with Differential Privacy", Algorithm 1:
clip each example's gradient to L2 norm ``C`` (``g·min(1, C/‖g‖)``, the whole
example's gradient over all leaves), sum, add ``N(0, σ²C²)`` noise and divide
by the batch size. The noise draws are inputs (the test passes JAX's draws, so
only the arithmetic is compared). ``Dpsgd`` chains it with the momentum and
learning-rate references of :mod:`reference`.
"""

from __future__ import annotations

import numpy as np
import reference as R


def aggregate(per_example, noise, l2_norm_clip, noise_multiplier):
    """``(Σ_n clip(g_n) + σ C ξ) / B`` for per-example leaves ``(B, ...)``."""
    per_example = [np.asarray(g, np.float64) for g in per_example]
    batch = per_example[0].shape[0]
    sq = sum(np.sum(g.reshape(batch, -1) ** 2, axis=1) for g in per_example)
    norms = np.sqrt(sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(norms == 0, 1.0, np.minimum(1.0, l2_norm_clip / norms))
    std = l2_norm_clip * noise_multiplier
    return [
        (np.tensordot(factor, g, axes=1) + std * np.asarray(n, np.float64)) / batch
        for g, n in zip(per_example, noise, strict=True)
    ]


class Dpsgd:
    """``update(per_example, noise, params)``: the aggregate, then SGD."""

    def __init__(self, learning_rate, l2_norm_clip, noise_multiplier, seed=None,
                 momentum=None, nesterov=False):  # fmt: skip
        self.clip, self.sigma = float(l2_norm_clip), float(noise_multiplier)
        tail = [R.ScaleByLearningRate(learning_rate)]
        if momentum is not None:
            tail.insert(0, R.Trace(momentum, nesterov))
        self.tail = R.Chain(*tail)

    def update(self, per_example, noise, params):
        g = aggregate(per_example, noise, self.clip, self.sigma)
        return self.tail.update(g, params)
