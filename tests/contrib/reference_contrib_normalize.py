"""Global normalisation (SAM's ascent direction, Foret et al. 2021), float64
NumPy: u = g / ‖g‖ with the norm over all the leaves; 0 where ‖g‖ = 0."""

import numpy as np
from reference_contrib_common import Reference, tree_sq_norm


class Normalize(Reference):
    def step(self, grads, params, t):
        norm = np.sqrt(tree_sq_norm(grads))
        return [g / norm if norm > 0 else np.zeros_like(g) for g in grads]
