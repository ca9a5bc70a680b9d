"""What is measured: the parameter trees and the quick, full and tiny runs.

A tree is described by its shapes only (leaves are
:class:`jax.ShapeDtypeStruct`), so that every library builds its own arrays
from the same seed. A :class:`Case` names a tree and the optimizer recipes
timed on it; a :class:`Config` lists the cases and how long to time them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

F32 = np.dtype(np.float32)


def _leaf(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, F32)


def one_leaf(n_params: int) -> dict[str, Any]:
    """A single square-ish float32 matrix with ``n_params`` elements."""
    rows = 1 << (max(n_params, 1).bit_length() // 2)
    return {"w": _leaf(rows, max(n_params // rows, 1))}


def transformer_tree(
    d_model: int = 256, layers: int = 12, vocab: int = 8192, context: int = 512
) -> dict[str, Any]:
    """The parameters of a GPT-like decoder: 12 leaves per layer plus 4.

    With the defaults: 148 leaves, about 11.7M parameters, most of them in
    ``(d, 3d)``, ``(d, 4d)`` and ``(4d, d)`` matrices and the embeddings, and
    many small layer-norm scales and biases.
    """
    d = d_model

    def block() -> dict[str, Any]:
        return {
            "ln1": {"scale": _leaf(d), "bias": _leaf(d)},
            "attn": {
                "qkv": {"w": _leaf(d, 3 * d), "b": _leaf(3 * d)},
                "out": {"w": _leaf(d, d), "b": _leaf(d)},
            },
            "ln2": {"scale": _leaf(d), "bias": _leaf(d)},
            "mlp": {
                "fc": {"w": _leaf(d, 4 * d), "b": _leaf(4 * d)},
                "proj": {"w": _leaf(4 * d, d), "b": _leaf(d)},
            },
        }

    return {
        "wte": _leaf(vocab, d),
        "wpe": _leaf(context, d),
        "blocks": [block() for _ in range(layers)],
        "ln_f": {"scale": _leaf(d), "bias": _leaf(d)},
    }


def many_leaves_tree(
    n_small: int, n_large: int, small: int = 64, large: int = 1024
) -> dict[str, Any]:
    """``n_small`` vectors of length ``small`` and ``n_large`` square matrices."""
    return {
        "small": [_leaf(small) for _ in range(n_small)],
        "large": [_leaf(large, large) for _ in range(n_large)],
    }


def flat_tree(n_leaves: int, size: int = 64) -> list[jax.ShapeDtypeStruct]:
    """``n_leaves`` vectors of length ``size``: the compile-time sweep's tree."""
    return [_leaf(size) for _ in range(n_leaves)]


def count(tree: Any) -> tuple[int, int]:
    """Number of leaves and of parameters of a tree of shapes or arrays."""
    leaves = jax.tree.leaves(tree)
    return len(leaves), sum(int(np.prod(leaf.shape)) for leaf in leaves)


def make_arrays(tree: Any, seed: int, scale: float = 1.0) -> Any:
    """NumPy float32 arrays for a tree of shapes: ``scale`` times a normal."""
    rng = np.random.default_rng(seed)

    def draw(spec: jax.ShapeDtypeStruct) -> np.ndarray:
        values = rng.standard_normal(spec.shape, dtype=np.float32)
        return values * np.float32(scale) if scale != 1.0 else values

    return jax.tree.map(draw, tree)


@dataclasses.dataclass(frozen=True)
class Case:
    """A tree and the optimizer recipes (names in ``_recipes``) timed on it."""

    name: str
    description: str
    tree: Callable[[], Any]
    optimizers: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run measures, and for how long."""

    mode: str
    cases: tuple[Case, ...]
    rounds: int
    target_batch_s: float
    max_step_s: float  # a column whose warm-up step is slower is left out
    probe_params: int
    sweep_leaves: tuple[int, ...]
    sweep_optimizer: str = "clip_adamw_schedule"
    sweep_leaf_size: int = 64
    compile_cap_s: float = 60.0
    compile_isolation: str = "process"  # "process": a fresh child per point
    torch: bool = True
    torch_threads: int | None = None  # None: torch's default, reported
    precision_params: int = 1 << 22  # the precision section's one leaf
    guards_tree: Callable[[], Any] = transformer_tree  # the guards section's tree


LARGE_LEAF_PARAMS = 1 << 24  # 16.8M, the issue's "one large leaf"


def full_config() -> Config:
    """The full run: the issue's sizes, about 10 minutes on 2 cores (limit 15)."""
    return Config(
        mode="full",
        cases=(
            Case(
                "large",
                "one 16.8M-parameter leaf",
                lambda: one_leaf(LARGE_LEAF_PARAMS),
                ("adamw", "clip_adamw"),
            ),
            Case(
                "transformer",
                "GPT-like tree, 148 leaves",
                transformer_tree,
                ("adamw", "clip_adamw"),
            ),
            Case(
                "many",
                "4,000 leaves (64,) + 15 of 1024x1024",
                lambda: many_leaves_tree(4000, 15),
                ("adamw",),
            ),
        ),
        rounds=9,
        target_batch_s=0.25,
        max_step_s=2.0,
        probe_params=LARGE_LEAF_PARAMS,
        sweep_leaves=(10, 100, 1000, 4000),
        compile_cap_s=120.0,
    )


def quick_config() -> Config:
    """The quick run: same large and transformer cases, smaller many-leaf tree."""
    full = full_config()
    large, transformer, _ = full.cases
    many = Case(
        "many",
        "1,000 leaves (64,) + 4 of 1024x1024",
        lambda: many_leaves_tree(1000, 4),
        ("adamw",),
    )
    return dataclasses.replace(
        full,
        mode="quick",
        cases=(large, transformer, many),
        rounds=5,
        target_batch_s=0.08,
        max_step_s=1.0,
        sweep_leaves=(10, 100, 500),
        compile_cap_s=15.0,
        precision_params=1 << 20,
    )


def tiny_config() -> Config:
    """Seconds-long sizes for the smoke test; the numbers mean nothing."""
    return Config(
        mode="tiny",
        cases=(
            Case(
                "large",
                "one 4,096-parameter leaf",
                lambda: one_leaf(4096),
                ("adamw", "clip_adamw"),
            ),
            Case(
                "transformer",
                "1-layer GPT-like tree",
                lambda: transformer_tree(8, 1, 16, 8),
                ("adamw",),
            ),
            Case(
                "many",
                "20 leaves (8,) + 1 of 32x32",
                lambda: many_leaves_tree(20, 1, small=8, large=32),
                ("adamw",),
            ),
        ),
        rounds=2,
        target_batch_s=0.002,
        max_step_s=5.0,
        probe_params=4096,
        sweep_leaves=(2,),
        compile_cap_s=30.0,
        compile_isolation="inline",
        torch=False,
        precision_params=4096,
        guards_tree=lambda: transformer_tree(8, 1, 16, 8),
    )
