"""Optimizer recipes: one definition, built by every library.

gradtx mirrors Optax's API, so a recipe is a function of the library module
(``recipe.build(gradtx)`` and ``recipe.build(optax)`` run the same code). The
torch equivalent, when there is one, returns a zero-argument ``step`` closure
over a ``torch.optim`` optimizer whose gradients are already set.

Each recipe also states the *bytes per parameter* its step must move at the
very least, the denominator of the "fraction of the bandwidth bound" column:

- Adam-like (``adamw``): read p, g, m, v and write p, m, v: 7 float32 = 28 B.
- With a global-norm clip: the norm must be known before any parameter is
  updated, so g is read once more: 32 B (unless g stays in cache, which it
  does not at these sizes).
- A schedule adds only scalar work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

LEARNING_RATE = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8
WEIGHT_DECAY = 1e-4
MAX_NORM = 1.0

TORCH_MODES = ("default", "foreach", "fused")
"""``default`` passes neither flag: on CPU torch resolves it to the per-tensor
loop (``foreach`` kernels are only the default on accelerators)."""


def _adamw(lib: ModuleType, learning_rate: Any = LEARNING_RATE) -> Any:
    return lib.adamw(
        learning_rate, b1=BETAS[0], b2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY
    )


def _schedule(lib: ModuleType) -> Any:
    return lib.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=LEARNING_RATE,
        warmup_steps=100,
        decay_steps=10_000,
        end_value=1e-5,
    )


def _torch_adamw(params: list[Any], mode: str, clip: bool) -> Callable[[], None]:
    import torch

    flags = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizer = torch.optim.AdamW(
        params,
        lr=LEARNING_RATE,
        betas=BETAS,
        eps=EPS,
        weight_decay=WEIGHT_DECAY,
        **flags[mode],
    )
    clip_foreach = None if mode == "default" else True

    def step() -> None:
        if clip:
            torch.nn.utils.clip_grad_norm_(params, MAX_NORM, foreach=clip_foreach)
        optimizer.step()

    step.optimizer = optimizer  # type: ignore[attr-defined]  # for state bytes
    return step


@dataclasses.dataclass(frozen=True)
class Recipe:
    """An optimizer as every library spells it."""

    name: str
    label: str
    bytes_per_param: int
    build: Callable[[ModuleType], Any]
    torch: Callable[[list[Any], str], Callable[[], None]] | None = None


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "adamw",
            "adamw",
            28,
            _adamw,
            lambda params, mode: _torch_adamw(params, mode, clip=False),
        ),
        Recipe(
            "clip_adamw",
            "chain(clip_by_global_norm(1), adamw)",
            32,
            lambda lib: lib.chain(lib.clip_by_global_norm(MAX_NORM), _adamw(lib)),
            lambda params, mode: _torch_adamw(params, mode, clip=True),
        ),
        Recipe(
            "clip_adamw_schedule",
            "chain(clip_by_global_norm(1), adamw(warmup_cosine))",
            32,
            lambda lib: lib.chain(
                lib.clip_by_global_norm(MAX_NORM), _adamw(lib, _schedule(lib))
            ),
        ),
    )
}
