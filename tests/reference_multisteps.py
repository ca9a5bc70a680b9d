"""Float64 NumPy references for the wrappers that choose when the inner rule runs.

Written from the rules, not from any implementation: gradient accumulation
(the mean or sum of ``k`` gradients, then one inner step; zeros in between),
skipping non-finite steps, and step-predicated transformation. Same interface
as :mod:`reference`: ``update(grads, params) -> updates``.
"""

from __future__ import annotations

import numpy as np
from reference import _f64


class MultiSteps:
    """Every ``k``-th call: inner(mean or sum of the last ``k`` grads); else 0."""

    def __init__(
        self, opt, every_k_schedule, use_grad_mean=True, skip_not_finite=False
    ):
        self.opt, self.k, self.mean = opt, every_k_schedule, use_grad_mean
        self.skip_not_finite = skip_not_finite
        self.window: list = []
        self.gradient_step = 0

    def update(self, grads, params=None):
        grads = _f64(grads)
        zeros = [np.zeros_like(g) for g in grads]
        if self.skip_not_finite and not all(np.isfinite(g).all() for g in grads):
            return zeros
        self.window.append(grads)
        k = self.k(self.gradient_step) if callable(self.k) else self.k
        if len(self.window) < k:
            return zeros
        total = [np.sum(leaf, axis=0) for leaf in zip(*self.window, strict=True)]
        if self.mean:
            total = [x / len(self.window) for x in total]
        self.window = []
        self.gradient_step += 1
        return self.opt.update(total, params)


class ApplyIfFinite:
    """Zeros (inner untouched) on non-finite grads; gradtx's default never gives up."""

    def __init__(self, inner, max_consecutive_errors):
        self.inner = inner
        del max_consecutive_errors  # only a signal to the training loop

    def update(self, grads, params=None):
        grads = _f64(grads)
        if all(np.isfinite(g).all() for g in grads):
            return self.inner.update(grads, params)
        return [np.zeros_like(g) for g in grads]


class ConditionallyTransform:
    """inner(grads) when ``fn(step)``; else the grads (or zeros when ``mask``)."""

    def __init__(self, inner, should_transform_fn, mask=False):
        self.inner, self.fn, self.mask = inner, should_transform_fn, mask
        self.step = 0

    def update(self, grads, params=None):
        grads = _f64(grads)
        step, self.step = self.step, self.step + 1
        if self.fn(step):
            return self.inner.update(grads, params)
        return [np.zeros_like(g) for g in grads] if self.mask else grads
