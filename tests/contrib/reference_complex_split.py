"""A float64 NumPy reference for optimising complex parameters as real pairs.

The rule (Optax issue 196): a complex parameter ``z = x + iy`` with gradient
``g = g_x + i g_y`` is given to a real optimizer as two real leaves ``x`` and
``y`` with gradients ``g_x`` and ``g_y``; the two real updates ``(u_x, u_y)``
make the complex update ``u_x + i u_y``. Any :mod:`reference` optimizer can
be the real one.
"""

from __future__ import annotations

import numpy as np


class SplitRealAndImaginary:
    def __init__(self, inner):
        self.inner = inner

    def update(self, grads, params):
        is_c = [np.iscomplexobj(p) for p in params]
        split = lambda xs: [
            part
            for x, c in zip(xs, is_c, strict=True)
            for part in ((np.real(x), np.imag(x)) if c else (np.real(x),))
        ]
        flat = self.inner.update(split(grads), split(params))
        out, k = [], 0
        for c in is_c:
            if c:
                out.append(flat[k] + 1j * flat[k + 1])
                k += 2
            else:
                out.append(flat[k])
                k += 1
        return out
