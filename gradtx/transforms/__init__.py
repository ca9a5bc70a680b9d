"""Gradient transformations: the ``optax.transforms`` namespace.

The primitives live here, one family of maths per module (``adam.py``,
``moments.py``, ``clipping.py``, ``sign.py``, …). This package's namespace
re-exports every name of ``optax.transforms`` — the primitives, and the
combinators and wrappers Optax files under the same name (``chain``,
``masked``, ``partition``, ``MultiSteps``, ``apply_if_finite``, …) — so code
written against ``optax.transforms.X`` runs with ``gradtx.transforms.X``.
"""

from ..combinators.chain import chain as chain
from ..combinators.chain import named_chain as named_chain
from ..combinators.flatten import flatten as flatten
from ..combinators.masked import MaskedNode as MaskedNode
from ..combinators.masked import MaskedState as MaskedState
from ..combinators.masked import masked as masked
from ..combinators.partition import PartitionState as PartitionState
from ..combinators.partition import freeze as freeze
from ..combinators.partition import partition as partition
from ..combinators.partition import selective_transform as selective_transform
from ..wrappers.conditionals import ApplyIfFiniteState as ApplyIfFiniteState
from ..wrappers.conditionals import ConditionallyMaskState as ConditionallyMaskState
from ..wrappers.conditionals import (
    ConditionallyTransformState as ConditionallyTransformState,
)
from ..wrappers.conditionals import ConditionFn as ConditionFn
from ..wrappers.conditionals import apply_if_finite as apply_if_finite
from ..wrappers.conditionals import conditionally_mask as conditionally_mask
from ..wrappers.conditionals import conditionally_transform as conditionally_transform
from ..wrappers.monitoring import MonitorState as MonitorState
from ..wrappers.monitoring import SnapshotState as SnapshotState
from ..wrappers.monitoring import measure_with_ema as measure_with_ema
from ..wrappers.monitoring import monitor as monitor
from ..wrappers.monitoring import snapshot as snapshot
from ..wrappers.multisteps import MultiSteps as MultiSteps
from ..wrappers.multisteps import MultiStepsState as MultiStepsState
from ..wrappers.multisteps import ShouldSkipUpdateFunction as ShouldSkipUpdateFunction
from ..wrappers.multisteps import skip_large_updates as skip_large_updates
from ..wrappers.multisteps import skip_not_finite as skip_not_finite
from .block_clipping import adaptive_grad_clip as adaptive_grad_clip
from .block_clipping import clip_by_block_rms as clip_by_block_rms
from .block_clipping import per_example_global_norm_clip as per_example_global_norm_clip
from .block_clipping import per_example_layer_norm_clip as per_example_layer_norm_clip
from .block_clipping import unitwise_clip as unitwise_clip
from .block_clipping import unitwise_norm as unitwise_norm
from .clipping import clip as clip
from .clipping import clip_by_global_norm as clip_by_global_norm
from .constraints import NonNegativeParamsState as NonNegativeParamsState
from .constraints import ZeroNansState as ZeroNansState
from .constraints import keep_params_nonnegative as keep_params_nonnegative
from .constraints import zero_nans as zero_nans
from .moments import EmaState as EmaState
from .moments import TraceState as TraceState
from .moments import ema as ema
from .moments import trace as trace
from .noise import AddNoiseState as AddNoiseState
from .noise import add_noise as add_noise
from .weight_decay import add_decayed_weights as add_decayed_weights

__all__ = [
    "AddNoiseState",
    "ApplyIfFiniteState",
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "EmaState",
    "MaskedNode",
    "MaskedState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "NonNegativeParamsState",
    "PartitionState",
    "ShouldSkipUpdateFunction",
    "SnapshotState",
    "TraceState",
    "ZeroNansState",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "apply_if_finite",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_mask",
    "conditionally_transform",
    "ema",
    "flatten",
    "freeze",
    "keep_params_nonnegative",
    "masked",
    "measure_with_ema",
    "monitor",
    "named_chain",
    "partition",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "selective_transform",
    "skip_large_updates",
    "skip_not_finite",
    "snapshot",
    "trace",
    "unitwise_clip",
    "unitwise_norm",
    "zero_nans",
]
