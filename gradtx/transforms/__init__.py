"""Gradient transformations: the ``optax.transforms`` namespace.

The primitives live here, one family of maths per module (``adam.py``,
``moments.py``, ``clipping.py``, ``sign.py``, …). This package's namespace
re-exports every primitive gradtx has and every name of ``optax.transforms``,
including the combinators and wrappers Optax files under the same name
(``chain``, ``masked``, ``partition``, ``MultiSteps``, ``apply_if_finite``,
…), so code written against ``optax.transforms.X`` runs with
``gradtx.transforms.X``.
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
from .accumulation import ApplyEvery as ApplyEvery
from .accumulation import apply_every as apply_every
from .adadelta import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from .adadelta import scale_by_adadelta as scale_by_adadelta
from .adam import ScaleByAdamState as ScaleByAdamState
from .adam import ScaleByAmsgradState as ScaleByAmsgradState
from .adam import scale_by_adam as scale_by_adam
from .adam import scale_by_adamax as scale_by_adamax
from .adam import scale_by_amsgrad as scale_by_amsgrad
from .adam_mini import ScaleByAdamMiniState as ScaleByAdamMiniState
from .adam_mini import scale_by_adam_mini as scale_by_adam_mini
from .adan import ScaleByAdanState as ScaleByAdanState
from .adan import scale_by_adan as scale_by_adan
from .ademamix import ScaleByAdemamixState as ScaleByAdemamixState
from .ademamix import ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState
from .ademamix import scale_by_ademamix as scale_by_ademamix
from .ademamix import scale_by_simplified_ademamix as scale_by_simplified_ademamix
from .adopt import scale_by_adopt as scale_by_adopt
from .backtracking import (
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)
from .backtracking import (
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
)
from .backtracking import value_and_grad_from_state as value_and_grad_from_state
from .belief import ScaleByBeliefState as ScaleByBeliefState
from .belief import scale_by_belief as scale_by_belief
from .block_clipping import adaptive_grad_clip as adaptive_grad_clip
from .block_clipping import clip_by_block_rms as clip_by_block_rms
from .block_clipping import per_example_global_norm_clip as per_example_global_norm_clip
from .block_clipping import per_example_layer_norm_clip as per_example_layer_norm_clip
from .block_clipping import unitwise_clip as unitwise_clip
from .block_clipping import unitwise_norm as unitwise_norm
from .centralization import centralize as centralize
from .centralization import normalize_by_update_norm as normalize_by_update_norm
from .clipping import clip as clip
from .clipping import clip_by_global_norm as clip_by_global_norm
from .constraints import NonNegativeParamsState as NonNegativeParamsState
from .constraints import ZeroNansState as ZeroNansState
from .constraints import keep_params_nonnegative as keep_params_nonnegative
from .constraints import zero_nans as zero_nans
from .factored import FactoredState as FactoredState
from .factored import scale_by_factored_rms as scale_by_factored_rms
from .kron import KronState as KronState
from .kron import precond_update_prob_schedule as precond_update_prob_schedule
from .kron import scale_by_kron as scale_by_kron
from .laprop import ScaleByLaPropState as ScaleByLaPropState
from .laprop import scale_by_laprop as scale_by_laprop
from .layerwise import scale_by_param_block_norm as scale_by_param_block_norm
from .layerwise import scale_by_param_block_rms as scale_by_param_block_rms
from .layerwise import scale_by_trust_ratio as scale_by_trust_ratio
from .lbfgs import ScaleByLBFGSState as ScaleByLBFGSState
from .lbfgs import scale_by_lbfgs as scale_by_lbfgs
from .mars import ScaleByMarsState as ScaleByMarsState
from .mars import scale_by_mars as scale_by_mars
from .moments import EmaState as EmaState
from .moments import ScaleByRmsState as ScaleByRmsState
from .moments import ScaleByRmsWithCountState as ScaleByRmsWithCountState
from .moments import ScaleByRssState as ScaleByRssState
from .moments import ScaleByRStdDevState as ScaleByRStdDevState
from .moments import ScaleByRStdDevWithCountState as ScaleByRStdDevWithCountState
from .moments import TraceState as TraceState
from .moments import ema as ema
from .moments import scale_by_rms as scale_by_rms
from .moments import scale_by_rss as scale_by_rss
from .moments import scale_by_stddev as scale_by_stddev
from .moments import trace as trace
from .muon import MuonDimensionNumbers as MuonDimensionNumbers
from .muon import MuonState as MuonState
from .muon import scale_by_muon as scale_by_muon
from .newton_schulz import gram_newton_schulz as gram_newton_schulz
from .newton_schulz import newton_schulz as newton_schulz
from .noise import AddNoiseState as AddNoiseState
from .noise import add_noise as add_noise
from .normuon import NorMuonState as NorMuonState
from .normuon import scale_by_normuon as scale_by_normuon
from .novograd import ScaleByNovogradState as ScaleByNovogradState
from .novograd import scale_by_novograd as scale_by_novograd
from .optimistic import ScaleByOptimisticGradientState as ScaleByOptimisticGradientState
from .optimistic import scale_by_optimistic_gradient as scale_by_optimistic_gradient
from .prodigy import ProdigyState as ProdigyState
from .prodigy import scale_by_prodigy as scale_by_prodigy
from .radam import scale_by_radam as scale_by_radam
from .rprop import ScaleByRpropState as ScaleByRpropState
from .rprop import scale_by_rprop as scale_by_rprop
from .scaling import ScaleByScheduleState as ScaleByScheduleState
from .scaling import scale as scale
from .scaling import scale_by_learning_rate as scale_by_learning_rate
from .scaling import scale_by_schedule as scale_by_schedule
from .scaling import scale_gradient as scale_gradient
from .shampoo import ShampooState as ShampooState
from .shampoo import scale_by_shampoo as scale_by_shampoo
from .sign import ScaleByLionState as ScaleByLionState
from .sign import scale_by_lion as scale_by_lion
from .sign import scale_by_sign as scale_by_sign
from .sm3 import ScaleBySM3State as ScaleBySM3State
from .sm3 import scale_by_sm3 as scale_by_sm3
from .soap import ScaleBySoapState as ScaleBySoapState
from .soap import scale_by_soap as scale_by_soap
from .sophia import HutchinsonState as HutchinsonState
from .sophia import SophiaState as SophiaState
from .sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from .sophia import scale_by_sophia as scale_by_sophia
from .step_size_free import (
    ScaleByDistanceOverGradientsState as ScaleByDistanceOverGradientsState,
)
from .step_size_free import (
    scale_by_distance_over_gradients as scale_by_distance_over_gradients,
)
from .step_size_free import scale_by_polyak as scale_by_polyak
from .weight_decay import DecayAfterStepState as DecayAfterStepState
from .weight_decay import WeightDecaySchedule as WeightDecaySchedule
from .weight_decay import add_decayed_weights as add_decayed_weights
from .weight_decay import (
    add_decayed_weights_after_step as add_decayed_weights_after_step,
)
from .yogi import scale_by_yogi as scale_by_yogi
from .zoom_linesearch import ScaleByZoomLinesearchState as ScaleByZoomLinesearchState
from .zoom_linesearch import ZoomLinesearchInfo as ZoomLinesearchInfo
from .zoom_linesearch import scale_by_zoom_linesearch as scale_by_zoom_linesearch

__all__ = [
    "AddNoiseState",
    "ApplyEvery",
    "ApplyIfFiniteState",
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "DecayAfterStepState",
    "EmaState",
    "FactoredState",
    "HutchinsonState",
    "KronState",
    "MaskedNode",
    "MaskedState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "MuonDimensionNumbers",
    "MuonState",
    "NonNegativeParamsState",
    "NorMuonState",
    "PartitionState",
    "ProdigyState",
    "ScaleByAdaDeltaState",
    "ScaleByAdamMiniState",
    "ScaleByAdamState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByAmsgradState",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByBeliefState",
    "ScaleByDistanceOverGradientsState",
    "ScaleByLBFGSState",
    "ScaleByLaPropState",
    "ScaleByLionState",
    "ScaleByMarsState",
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByRpropState",
    "ScaleByRssState",
    "ScaleBySM3State",
    "ScaleByScheduleState",
    "ScaleBySimplifiedAdEMAMixState",
    "ScaleBySoapState",
    "ScaleByZoomLinesearchState",
    "ShampooState",
    "ShouldSkipUpdateFunction",
    "SnapshotState",
    "SophiaState",
    "TraceState",
    "WeightDecaySchedule",
    "ZeroNansState",
    "ZoomLinesearchInfo",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_decayed_weights_after_step",
    "add_noise",
    "apply_every",
    "apply_if_finite",
    "centralize",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_mask",
    "conditionally_transform",
    "ema",
    "flatten",
    "freeze",
    "gram_newton_schulz",
    "hutchinson_estimator_diag_hessian",
    "keep_params_nonnegative",
    "masked",
    "measure_with_ema",
    "monitor",
    "named_chain",
    "newton_schulz",
    "normalize_by_update_norm",
    "partition",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "precond_update_prob_schedule",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adam_mini",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_amsgrad",
    "scale_by_backtracking_linesearch",
    "scale_by_belief",
    "scale_by_distance_over_gradients",
    "scale_by_factored_rms",
    "scale_by_kron",
    "scale_by_laprop",
    "scale_by_lbfgs",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_mars",
    "scale_by_muon",
    "scale_by_normuon",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_polyak",
    "scale_by_prodigy",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_shampoo",
    "scale_by_sign",
    "scale_by_simplified_ademamix",
    "scale_by_sm3",
    "scale_by_soap",
    "scale_by_sophia",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "scale_by_zoom_linesearch",
    "scale_gradient",
    "selective_transform",
    "skip_large_updates",
    "skip_not_finite",
    "snapshot",
    "trace",
    "unitwise_clip",
    "unitwise_norm",
    "value_and_grad_from_state",
    "zero_nans",
]
