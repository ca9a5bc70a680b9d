"""gradtx: composable gradient transformations for JAX.

An optimizer is a pair of pure functions ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``. Small
primitives compose with :func:`chain` into full optimizers; the names,
arguments and numbers follow Optax, so ``import gradtx as optax`` works for
the names gradtx has.

    >>> import gradtx, jax, jax.numpy as jnp
    >>> params = {"w": jnp.ones(3)}
    >>> opt = gradtx.adam(1e-2)
    >>> state = opt.init(params)
    >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
    >>> updates, state = opt.update(grads, state, params)
    >>> params = gradtx.apply_updates(params, updates)
"""

from . import microbatching as microbatching
from . import tree as tree
from ._base import EmptyState as EmptyState
from ._base import GradientTransformation as GradientTransformation
from ._base import GradientTransformationExtraArgs as GradientTransformationExtraArgs
from ._base import MaskOrFn as MaskOrFn
from ._base import OptState as OptState
from ._base import Params as Params
from ._base import ScalarOrSchedule as ScalarOrSchedule
from ._base import Schedule as Schedule
from ._base import TransformInitFn as TransformInitFn
from ._base import TransformUpdateExtraArgsFn as TransformUpdateExtraArgsFn
from ._base import TransformUpdateFn as TransformUpdateFn
from ._base import Updates as Updates
from ._base import apply_updates as apply_updates
from ._base import identity as identity
from ._base import init_empty_state as init_empty_state
from ._base import set_to_zero as set_to_zero
from ._base import stateless as stateless
from ._base import stateless_with_tree_map as stateless_with_tree_map
from ._base import with_extra_args_support as with_extra_args_support
from ._checkpoint import restore_state as restore_state
from ._checkpoint import state_signature as state_signature
from ._checkpoint import validate_state as validate_state
from ._conditionals import ApplyIfFiniteState as ApplyIfFiniteState
from ._conditionals import ConditionallyMaskState as ConditionallyMaskState
from ._conditionals import ConditionallyTransformState as ConditionallyTransformState
from ._conditionals import apply_if_finite as apply_if_finite
from ._conditionals import conditionally_mask as conditionally_mask
from ._conditionals import conditionally_transform as conditionally_transform
from ._fused import fused_step as fused_step
from ._inject import InjectHyperparamsState as InjectHyperparamsState
from ._inject import InjectStatefulHyperparamsState as InjectStatefulHyperparamsState
from ._inject import WrappedSchedule as WrappedSchedule
from ._inject import inject_hyperparams as inject_hyperparams
from ._inject import inject_stateful_hyperparams as inject_stateful_hyperparams
from ._layouts import flatten as flatten
from ._linear_algebra import matrix_inverse_pth_root as matrix_inverse_pth_root
from ._linear_algebra import nnls as nnls
from ._linear_algebra import power_iteration as power_iteration
from ._lookahead import LookaheadParams as LookaheadParams
from ._lookahead import LookaheadState as LookaheadState
from ._lookahead import lookahead as lookahead
from ._low_precision import KahanSummationState as KahanSummationState
from ._low_precision import StochasticRoundingState as StochasticRoundingState
from ._low_precision import kahan_summation as kahan_summation
from ._low_precision import stochastic_rounding as stochastic_rounding
from ._maths import safe_increment as safe_increment
from ._microbatch import microbatch as microbatch
from ._monitoring import MonitorState as MonitorState
from ._monitoring import SnapshotState as SnapshotState
from ._monitoring import measure_with_ema as measure_with_ema
from ._monitoring import monitor as monitor
from ._monitoring import snapshot as snapshot
from ._multisteps import MultiSteps as MultiSteps
from ._multisteps import MultiStepsState as MultiStepsState
from ._multisteps import ShouldSkipUpdateFunction as ShouldSkipUpdateFunction
from ._multisteps import skip_large_updates as skip_large_updates
from ._multisteps import skip_not_finite as skip_not_finite
from ._numerics import safe_int32_increment as safe_int32_increment
from ._numerics import safe_norm as safe_norm
from ._numerics import safe_root_mean_squares as safe_root_mean_squares
from ._packed import packed as packed
from ._packing import Packed as Packed
from ._packing import pack as pack
from ._packing import pack_labels as pack_labels
from ._packing import packed_value_and_grad as packed_value_and_grad
from ._packing import refuse_packed as refuse_packed
from ._packing import unpack as unpack
from ._partition import MultiTransformState as MultiTransformState
from ._partition import PartitionState as PartitionState
from ._partition import freeze as freeze
from ._partition import multi_transform as multi_transform
from ._partition import partition as partition
from ._partition import selective_transform as selective_transform
from ._plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from ._plateau import reduce_on_plateau as reduce_on_plateau
from ._schedule_free import ScheduleFreeState as ScheduleFreeState
from ._schedule_free import schedule_free as schedule_free
from ._schedule_free import schedule_free_adamw as schedule_free_adamw
from ._schedule_free import schedule_free_eval_params as schedule_free_eval_params
from ._schedule_free import schedule_free_sgd as schedule_free_sgd
from ._schedules_extra import cosine_onecycle_schedule as cosine_onecycle_schedule
from ._schedules_extra import linear_onecycle_schedule as linear_onecycle_schedule
from ._schedules_extra import (
    piecewise_interpolate_schedule as piecewise_interpolate_schedule,
)
from ._schedules_extra import sgdr_schedule as sgdr_schedule
from ._schedules_extra import warmup_constant_schedule as warmup_constant_schedule
from ._schedules_extra import (
    warmup_exponential_decay_schedule as warmup_exponential_decay_schedule,
)
from ._sharding import per_device_bytes as per_device_bytes
from ._sharding import state_shardings as state_shardings
from ._sharding import zero1_shardings as zero1_shardings
from ._state_utils import map_params as tree_map_params
from ._tree import bias_correction as bias_correction
from ._tree import global_norm as global_norm
from ._tree import tree_cast as tree_cast
from ._tree import tree_cast_like as tree_cast_like
from ._tree import tree_full_like as tree_full_like
from ._tree import tree_sum_of_squares as tree_sum_of_squares
from ._tree import tree_zeros_like as tree_zeros_like
from ._tree import update_infinity_moment as update_infinity_moment
from ._tree import update_moment as update_moment
from ._tree import update_moment_per_elem_norm as update_moment_per_elem_norm
from ._updates import incremental_update as incremental_update
from ._updates import periodic_update as periodic_update
from .alias import adagrad as adagrad
from .alias import adam as adam
from .alias import adam_l2 as adam_l2
from .alias import adamax as adamax
from .alias import adamaxw as adamaxw
from .alias import adamw as adamw
from .alias import amsgrad as amsgrad
from .alias import nadam as nadam
from .alias import nadamw as nadamw
from .alias import rmsprop as rmsprop
from .alias import sgd as sgd
from .alias_8bit import adam_8bit as adam_8bit
from .alias_8bit import adamw_8bit as adamw_8bit
from .alias_8bit import sgd_8bit as sgd_8bit
from .alias_adaptive import adadelta as adadelta
from .alias_adaptive import adan as adan
from .alias_adaptive import novograd as novograd
from .alias_adaptive import optimistic_adam as optimistic_adam
from .alias_adaptive import optimistic_adam_v2 as optimistic_adam_v2
from .alias_adaptive import optimistic_gradient_descent as optimistic_gradient_descent
from .alias_adaptive import rprop as rprop
from .alias_adaptive import sm3 as sm3
from .alias_layerwise import adafactor as adafactor
from .alias_layerwise import fromage as fromage
from .alias_layerwise import lamb as lamb
from .alias_layerwise import lars as lars
from .alias_layerwise import noisy_sgd as noisy_sgd
from .alias_layerwise import polyak_sgd as polyak_sgd
from .alias_lbfgs import lbfgs as lbfgs
from .alias_modern import ademamix as ademamix
from .alias_modern import adopt as adopt
from .alias_modern import muon as muon
from .alias_modern import simplified_ademamix as simplified_ademamix
from .alias_sophia import sophia as sophia
from .alias_variants import adabelief as adabelief
from .alias_variants import lion as lion
from .alias_variants import radam as radam
from .alias_variants import sign_sgd as sign_sgd
from .alias_variants import signum as signum
from .alias_variants import yogi as yogi
from .combine import MaskedNode as MaskedNode
from .combine import MaskedState as MaskedState
from .combine import chain as chain
from .combine import masked as masked
from .combine import named_chain as named_chain
from .schedules import constant_schedule as constant_schedule
from .schedules import cosine_decay_schedule as cosine_decay_schedule
from .schedules import exponential_decay as exponential_decay
from .schedules import join_schedules as join_schedules
from .schedules import linear_schedule as linear_schedule
from .schedules import piecewise_constant_schedule as piecewise_constant_schedule
from .schedules import polynomial_schedule as polynomial_schedule
from .schedules import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from .transforms._adam import ScaleByAdamState as ScaleByAdamState
from .transforms._adam import ScaleByAmsgradState as ScaleByAmsgradState
from .transforms._adam import scale_by_adam as scale_by_adam
from .transforms._adam import scale_by_adamax as scale_by_adamax
from .transforms._adam import scale_by_amsgrad as scale_by_amsgrad
from .transforms._adaptive import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from .transforms._adaptive import ScaleByAdanState as ScaleByAdanState
from .transforms._adaptive import ScaleByNovogradState as ScaleByNovogradState
from .transforms._adaptive import (
    ScaleByOptimisticGradientState as ScaleByOptimisticGradientState,
)
from .transforms._adaptive import ScaleByRpropState as ScaleByRpropState
from .transforms._adaptive import ScaleBySM3State as ScaleBySM3State
from .transforms._adaptive import scale_by_adadelta as scale_by_adadelta
from .transforms._adaptive import scale_by_adan as scale_by_adan
from .transforms._adaptive import scale_by_novograd as scale_by_novograd
from .transforms._adaptive import (
    scale_by_optimistic_gradient as scale_by_optimistic_gradient,
)
from .transforms._adaptive import scale_by_rprop as scale_by_rprop
from .transforms._adaptive import scale_by_sm3 as scale_by_sm3
from .transforms._clipping import ClipByGlobalNormState as ClipByGlobalNormState
from .transforms._clipping import ClipState as ClipState
from .transforms._clipping import clip as clip
from .transforms._clipping import clip_by_global_norm as clip_by_global_norm
from .transforms._clipping_extra import AdaptiveGradClipState as AdaptiveGradClipState
from .transforms._clipping_extra import adaptive_grad_clip as adaptive_grad_clip
from .transforms._clipping_extra import clip_by_block_rms as clip_by_block_rms
from .transforms._clipping_extra import (
    per_example_global_norm_clip as per_example_global_norm_clip,
)
from .transforms._clipping_extra import (
    per_example_layer_norm_clip as per_example_layer_norm_clip,
)
from .transforms._constraints import NonNegativeParamsState as NonNegativeParamsState
from .transforms._constraints import ZeroNansState as ZeroNansState
from .transforms._constraints import keep_params_nonnegative as keep_params_nonnegative
from .transforms._constraints import zero_nans as zero_nans
from .transforms._decay import AddDecayedWeightsState as AddDecayedWeightsState
from .transforms._decay import WeightDecaySchedule as WeightDecaySchedule
from .transforms._decay import add_decayed_weights as add_decayed_weights
from .transforms._factored import FactoredState as FactoredState
from .transforms._factored import scale_by_factored_rms as scale_by_factored_rms
from .transforms._layerwise import ScaleByTrustRatioState as ScaleByTrustRatioState
from .transforms._layerwise import (
    scale_by_param_block_norm as scale_by_param_block_norm,
)
from .transforms._layerwise import scale_by_param_block_rms as scale_by_param_block_rms
from .transforms._layerwise import scale_by_trust_ratio as scale_by_trust_ratio
from .transforms._lbfgs import ScaleByLBFGSState as ScaleByLBFGSState
from .transforms._lbfgs import scale_by_lbfgs as scale_by_lbfgs
from .transforms._linesearch import (
    ScaleByBacktrackingLinesearchState as ScaleByBacktrackingLinesearchState,
)
from .transforms._linesearch import (
    scale_by_backtracking_linesearch as scale_by_backtracking_linesearch,
)
from .transforms._linesearch import (
    value_and_grad_from_state as value_and_grad_from_state,
)
from .transforms._misc import ApplyEvery as ApplyEvery
from .transforms._misc import apply_every as apply_every
from .transforms._misc import centralize as centralize
from .transforms._misc import normalize_by_update_norm as normalize_by_update_norm
from .transforms._misc import scale_gradient as scale_gradient
from .transforms._modern import ScaleByAdemamixState as ScaleByAdemamixState
from .transforms._modern import (
    ScaleBySimplifiedAdEMAMixState as ScaleBySimplifiedAdEMAMixState,
)
from .transforms._modern import scale_by_ademamix as scale_by_ademamix
from .transforms._modern import scale_by_adopt as scale_by_adopt
from .transforms._modern import (
    scale_by_simplified_ademamix as scale_by_simplified_ademamix,
)
from .transforms._moments import EmaState as EmaState
from .transforms._moments import ScaleByRmsState as ScaleByRmsState
from .transforms._moments import ScaleByRmsWithCountState as ScaleByRmsWithCountState
from .transforms._moments import ScaleByRssState as ScaleByRssState
from .transforms._moments import ScaleByRStdDevState as ScaleByRStdDevState
from .transforms._moments import (
    ScaleByRStdDevWithCountState as ScaleByRStdDevWithCountState,
)
from .transforms._moments import TraceState as TraceState
from .transforms._moments import ema as ema
from .transforms._moments import scale_by_rms as scale_by_rms
from .transforms._moments import scale_by_rss as scale_by_rss
from .transforms._moments import scale_by_stddev as scale_by_stddev
from .transforms._moments import trace as trace
from .transforms._muon import MuonDimensionNumbers as MuonDimensionNumbers
from .transforms._muon import MuonState as MuonState
from .transforms._muon import scale_by_muon as scale_by_muon
from .transforms._prodigy import ProdigyState as ProdigyState
from .transforms._prodigy import prodigy as prodigy
from .transforms._quantized import QuantizedArray as QuantizedArray
from .transforms._quantized import ScaleByAdam8bitState as ScaleByAdam8bitState
from .transforms._quantized import Trace8bitState as Trace8bitState
from .transforms._quantized import dequantize_8bit as dequantize_8bit
from .transforms._quantized import quantize_8bit as quantize_8bit
from .transforms._quantized import scale_by_adam_8bit as scale_by_adam_8bit
from .transforms._quantized import trace_8bit as trace_8bit
from .transforms._scaling import ScaleByScheduleState as ScaleByScheduleState
from .transforms._scaling import ScaleState as ScaleState
from .transforms._scaling import scale as scale
from .transforms._scaling import scale_by_learning_rate as scale_by_learning_rate
from .transforms._scaling import scale_by_schedule as scale_by_schedule
from .transforms._sophia import HutchinsonState as HutchinsonState
from .transforms._sophia import SophiaState as SophiaState
from .transforms._sophia import (
    hutchinson_estimator_diag_hessian as hutchinson_estimator_diag_hessian,
)
from .transforms._sophia import scale_by_sophia as scale_by_sophia
from .transforms._stochastic import AddNoiseState as AddNoiseState
from .transforms._stochastic import (
    ScaleByDistanceOverGradientsState as ScaleByDistanceOverGradientsState,
)
from .transforms._stochastic import add_noise as add_noise
from .transforms._stochastic import (
    scale_by_distance_over_gradients as scale_by_distance_over_gradients,
)
from .transforms._stochastic import scale_by_polyak as scale_by_polyak
from .transforms._variants import ScaleByBeliefState as ScaleByBeliefState
from .transforms._variants import ScaleByLionState as ScaleByLionState
from .transforms._variants import scale_by_belief as scale_by_belief
from .transforms._variants import scale_by_lion as scale_by_lion
from .transforms._variants import scale_by_radam as scale_by_radam
from .transforms._variants import scale_by_sign as scale_by_sign
from .transforms._variants import scale_by_yogi as scale_by_yogi
from .transforms._zoom_linesearch import (
    ScaleByZoomLinesearchState as ScaleByZoomLinesearchState,
)
from .transforms._zoom_linesearch import ZoomLinesearchInfo as ZoomLinesearchInfo
from .transforms._zoom_linesearch import (
    scale_by_zoom_linesearch as scale_by_zoom_linesearch,
)

__version__ = "0.1.0"

__all__ = [
    "AdaptiveGradClipState",
    "AddDecayedWeightsState",
    "AddNoiseState",
    "ApplyEvery",
    "ApplyIfFiniteState",
    "ClipByGlobalNormState",
    "ClipState",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "EmaState",
    "EmptyState",
    "FactoredState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "HutchinsonState",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "KahanSummationState",
    "LookaheadParams",
    "LookaheadState",
    "MaskOrFn",
    "MaskedNode",
    "MaskedState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransformState",
    "MuonDimensionNumbers",
    "MuonState",
    "NonNegativeParamsState",
    "OptState",
    "Packed",
    "Params",
    "PartitionState",
    "ProdigyState",
    "QuantizedArray",
    "ReduceLROnPlateauState",
    "ScalarOrSchedule",
    "ScaleByAdaDeltaState",
    "ScaleByAdam8bitState",
    "ScaleByAdamState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByAmsgradState",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByBeliefState",
    "ScaleByDistanceOverGradientsState",
    "ScaleByLBFGSState",
    "ScaleByLionState",
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
    "ScaleByTrustRatioState",
    "ScaleByZoomLinesearchState",
    "ScaleState",
    "Schedule",
    "ScheduleFreeState",
    "ShouldSkipUpdateFunction",
    "SnapshotState",
    "SophiaState",
    "StochasticRoundingState",
    "Trace8bitState",
    "TraceState",
    "TransformInitFn",
    "TransformUpdateExtraArgsFn",
    "TransformUpdateFn",
    "Updates",
    "WeightDecaySchedule",
    "WrappedSchedule",
    "ZeroNansState",
    "ZoomLinesearchInfo",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adam_8bit",
    "adam_l2",
    "adamax",
    "adamaxw",
    "adamw",
    "adamw_8bit",
    "adan",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "ademamix",
    "adopt",
    "amsgrad",
    "apply_every",
    "apply_if_finite",
    "apply_updates",
    "bias_correction",
    "centralize",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_mask",
    "conditionally_transform",
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "dequantize_8bit",
    "ema",
    "exponential_decay",
    "flatten",
    "freeze",
    "fromage",
    "fused_step",
    "global_norm",
    "hutchinson_estimator_diag_hessian",
    "identity",
    "incremental_update",
    "init_empty_state",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
    "join_schedules",
    "kahan_summation",
    "keep_params_nonnegative",
    "lamb",
    "lars",
    "lbfgs",
    "linear_onecycle_schedule",
    "linear_schedule",
    "lion",
    "lookahead",
    "masked",
    "matrix_inverse_pth_root",
    "measure_with_ema",
    "microbatch",
    "microbatching",
    "monitor",
    "multi_transform",
    "muon",
    "nadam",
    "nadamw",
    "named_chain",
    "nnls",
    "noisy_sgd",
    "normalize_by_update_norm",
    "novograd",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "pack",
    "pack_labels",
    "packed",
    "packed_value_and_grad",
    "partition",
    "per_device_bytes",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "periodic_update",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polyak_sgd",
    "polynomial_schedule",
    "power_iteration",
    "prodigy",
    "quantize_8bit",
    "radam",
    "reduce_on_plateau",
    "refuse_packed",
    "restore_state",
    "rmsprop",
    "rprop",
    "safe_increment",
    "safe_int32_increment",
    "safe_norm",
    "safe_root_mean_squares",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adam_8bit",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_amsgrad",
    "scale_by_backtracking_linesearch",
    "scale_by_belief",
    "scale_by_distance_over_gradients",
    "scale_by_factored_rms",
    "scale_by_lbfgs",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_polyak",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_sign",
    "scale_by_simplified_ademamix",
    "scale_by_sm3",
    "scale_by_sophia",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "scale_by_zoom_linesearch",
    "scale_gradient",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "selective_transform",
    "set_to_zero",
    "sgd",
    "sgd_8bit",
    "sgdr_schedule",
    "sign_sgd",
    "signum",
    "simplified_ademamix",
    "skip_large_updates",
    "skip_not_finite",
    "sm3",
    "snapshot",
    "sophia",
    "state_shardings",
    "state_signature",
    "stateless",
    "stateless_with_tree_map",
    "stochastic_rounding",
    "trace",
    "trace_8bit",
    "tree",
    "tree_cast",
    "tree_cast_like",
    "tree_full_like",
    "tree_map_params",
    "tree_sum_of_squares",
    "tree_zeros_like",
    "unpack",
    "update_infinity_moment",
    "update_moment",
    "update_moment_per_elem_norm",
    "validate_state",
    "value_and_grad_from_state",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "with_extra_args_support",
    "yogi",
    "zero1_shardings",
    "zero_nans",
]
