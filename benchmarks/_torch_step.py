"""The same step with ``torch.optim``: ``opt.step()`` on fixed gradients.

Each participant owns float32 CPU copies of the parameters and gradients (a
clip rescales gradients in place, so they are not shared). The timed work is
the recipe's ``step`` closure: an optional ``clip_grad_norm_`` and
``optimizer.step()``. torch's thread count is left at its default and
reported.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ._recipes import Recipe


def torch_info(threads: int | None = None) -> dict[str, Any] | None:
    """torch's version and thread count, or ``None`` without torch.

    ``threads`` sets the intra-op thread count first; ``None`` keeps torch's
    default (one per physical core).
    """
    try:
        import torch
    except Exception:  # ImportError, or a half-installed wheel's OSError
        return None
    default = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    return {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "default_threads": default,
    }


class TorchParticipant:
    """One ``torch.optim`` mode stepping its own parameters."""

    def __init__(self, name: str, step: Any, params: list[Any]):
        self.name = name
        self._step = step
        self._params = params

    def run(self, n: int) -> None:
        for _ in range(n):
            self._step()

    def state_bytes(self) -> int:
        """Bytes of tensors in the optimizer's state (after a first step)."""
        state = self._step.optimizer.state
        return sum(
            value.numel() * value.element_size()
            for per_param in state.values()
            for value in per_param.values()
            if hasattr(value, "element_size")
        )


def build(
    name: str, recipe: Recipe, mode: str, params_np: Any, grads_np: Any
) -> TorchParticipant:
    """A participant for ``recipe`` in torch ``mode`` (default/foreach/fused)."""
    import torch

    if recipe.torch is None:
        raise NotImplementedError(f"no torch equivalent of {recipe.name}")
    params = []
    for value, grad in zip(
        jax.tree.leaves(params_np), jax.tree.leaves(grads_np), strict=True
    ):
        param = torch.nn.Parameter(torch.from_numpy(np.array(value, copy=True)))
        param.grad = torch.from_numpy(np.array(grad, copy=True))
        params.append(param)
    return TorchParticipant(name, recipe.torch(params, mode), params)
