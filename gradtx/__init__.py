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

from . import contrib as contrib  # the optax.contrib namespace
from . import microbatching, second_order, tree, tree_utils
from . import schedules as schedules  # the optax.schedules namespace
from . import transforms as transforms  # the optax.transforms namespace
from ._core.base import (
    EmptyState,
    GradientTransformation,
    GradientTransformationExtraArgs,
    MaskOrFn,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    TransformInitFn,
    TransformUpdateExtraArgsFn,
    TransformUpdateFn,
    Updates,
    apply_updates,
    identity,
    init_empty_state,
    set_to_zero,
    stateless,
    stateless_with_tree_map,
    with_extra_args_support,
)
from ._core.lifting import (
    global_norm,
    tree_cast,
    tree_cast_like,
    tree_full_like,
    tree_sum_of_squares,
    tree_zeros_like,
)
from ._core.low_precision_stall import PrecisionStallWarning, silence_stall_warning
from ._core.maths import safe_increment
from ._core.moments import (
    bias_correction,
    update_infinity_moment,
    update_moment,
    update_moment_per_elem_norm,
)
from ._core.numerics import safe_int32_increment, safe_norm, safe_root_mean_squares
from ._core.state_paths import map_params as tree_map_params
from ._core.target_updates import incremental_update, periodic_update
from ._core.traits import declare_elementwise
from .checkpoint import restore_state, state_signature, validate_state
from .combinators.chain import chain, named_chain
from .combinators.flatten import flatten
from .combinators.graft import GraftState, graft
from .combinators.masked import MaskedNode, MaskedState, masked
from .combinators.partition import (
    MultiTransformState,
    PartitionState,
    freeze,
    multi_transform,
    partition,
    selective_transform,
)
from .engines.fused import fused_step
from .engines.pack import (
    Packed,
    pack,
    pack_labels,
    packed_value_and_grad,
    refuse_packed,
    unpack,
)
from .engines.packed import packed
from .linalg import matrix_inverse_pth_root, nnls, power_iteration
from .optimizers.adadelta import adadelta
from .optimizers.adam import (
    adam,
    adam_l2,
    adamax,
    adamaxw,
    adamw,
    amsgrad,
    nadam,
    nadamw,
)
from .optimizers.adam_mini import adam_mini
from .optimizers.adan import adan
from .optimizers.ademamix import ademamix, simplified_ademamix
from .optimizers.adopt import adopt
from .optimizers.belief import adabelief
from .optimizers.factored import adafactor
from .optimizers.kron import psgd_kron
from .optimizers.laprop import laprop
from .optimizers.layerwise import fromage, lamb, lars
from .optimizers.lbfgs import lbfgs
from .optimizers.mars import mars_adamw
from .optimizers.moments import adagrad, rmsprop, sgd
from .optimizers.muon import muon
from .optimizers.noise import noisy_sgd
from .optimizers.normuon import normuon
from .optimizers.novograd import novograd
from .optimizers.optimistic import (
    optimistic_adam,
    optimistic_adam_v2,
    optimistic_gradient_descent,
)
from .optimizers.prodigy import prodigy
from .optimizers.radam import radam
from .optimizers.rprop import rprop
from .optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd
from .optimizers.shampoo import shampoo
from .optimizers.sign import lion, sign_sgd, signum
from .optimizers.sm3 import sm3
from .optimizers.soap import soap
from .optimizers.sophia import sophia
from .optimizers.step_size_free import polyak_sgd
from .optimizers.yogi import yogi
from .precision.eight_bit import adam_8bit, adamw_8bit, sgd_8bit
from .precision.quantized import (
    QuantizedArray,
    ScaleByAdam8bitState,
    Trace8bitState,
    dequantize_8bit,
    quantize_8bit,
    scale_by_adam_8bit,
    trace_8bit,
)
from .precision.rounding import (
    KahanSummationState,
    StochasticRoundingState,
    kahan_summation,
    stochastic_rounding,
)
from .schedules.cosine import cosine_decay_schedule, warmup_cosine_decay_schedule
from .schedules.exponential import exponential_decay
from .schedules.join import join_schedules
from .schedules.onecycle import (
    cosine_onecycle_schedule,
    linear_onecycle_schedule,
    piecewise_interpolate_schedule,
)
from .schedules.polynomial import (
    constant_schedule,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
)
from .schedules.sgdr import sgdr_schedule
from .schedules.warmup import (
    warmup_constant_schedule,
    warmup_exponential_decay_schedule,
)
from .sharding import per_device_bytes, state_shardings, zero1_shardings
from .transforms.accumulation import ApplyEvery, apply_every
from .transforms.adadelta import ScaleByAdaDeltaState, scale_by_adadelta
from .transforms.adam import (
    ScaleByAdamState,
    ScaleByAmsgradState,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
)
from .transforms.adam_mini import ScaleByAdamMiniState, scale_by_adam_mini
from .transforms.adan import ScaleByAdanState, scale_by_adan
from .transforms.ademamix import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
    scale_by_ademamix,
    scale_by_simplified_ademamix,
)
from .transforms.adopt import scale_by_adopt
from .transforms.backtracking import (
    ScaleByBacktrackingLinesearchState,
    scale_by_backtracking_linesearch,
    value_and_grad_from_state,
)
from .transforms.belief import ScaleByBeliefState, scale_by_belief
from .transforms.block_clipping import (
    AdaptiveGradClipState,
    adaptive_grad_clip,
    clip_by_block_rms,
    per_example_global_norm_clip,
    per_example_layer_norm_clip,
)
from .transforms.centralization import centralize, normalize_by_update_norm
from .transforms.clipping import (
    ClipByGlobalNormState,
    ClipState,
    clip,
    clip_by_global_norm,
)
from .transforms.constraints import (
    NonNegativeParamsState,
    ZeroNansState,
    keep_params_nonnegative,
    zero_nans,
)
from .transforms.factored import FactoredState, scale_by_factored_rms
from .transforms.kron import KronState, precond_update_prob_schedule, scale_by_kron
from .transforms.laprop import ScaleByLaPropState, scale_by_laprop
from .transforms.layerwise import (
    ScaleByTrustRatioState,
    scale_by_param_block_norm,
    scale_by_param_block_rms,
    scale_by_trust_ratio,
)
from .transforms.lbfgs import ScaleByLBFGSState, scale_by_lbfgs
from .transforms.mars import ScaleByMarsState, scale_by_mars
from .transforms.moments import (
    EmaState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRssState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    TraceState,
    ema,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    trace,
)
from .transforms.muon import MuonDimensionNumbers, MuonState, scale_by_muon
from .transforms.noise import AddNoiseState, add_noise
from .transforms.normuon import NorMuonState, scale_by_normuon
from .transforms.novograd import ScaleByNovogradState, scale_by_novograd
from .transforms.optimistic import (
    ScaleByOptimisticGradientState,
    scale_by_optimistic_gradient,
)
from .transforms.prodigy import ProdigyState, scale_by_prodigy
from .transforms.radam import scale_by_radam
from .transforms.rprop import ScaleByRpropState, scale_by_rprop
from .transforms.scaling import (
    ScaleByScheduleState,
    ScaleState,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    scale_gradient,
)
from .transforms.shampoo import ShampooState, scale_by_shampoo
from .transforms.sign import ScaleByLionState, scale_by_lion, scale_by_sign
from .transforms.sm3 import ScaleBySM3State, scale_by_sm3
from .transforms.soap import ScaleBySoapState, scale_by_soap
from .transforms.sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
)
from .transforms.step_size_free import (
    ScaleByDistanceOverGradientsState,
    scale_by_distance_over_gradients,
    scale_by_polyak,
)
from .transforms.weight_decay import (
    AddDecayedWeightsState,
    DecayAfterStepState,
    WeightDecaySchedule,
    add_decayed_weights,
    add_decayed_weights_after_step,
)
from .transforms.yogi import scale_by_yogi
from .transforms.zoom_linesearch import (
    ScaleByZoomLinesearchState,
    ZoomLinesearchInfo,
    scale_by_zoom_linesearch,
)
from .wrappers.cautious import cautious
from .wrappers.conditionals import (
    ApplyIfFiniteState,
    ConditionallyMaskState,
    ConditionallyTransformState,
    apply_if_finite,
    conditionally_mask,
    conditionally_transform,
)
from .wrappers.diagnostics import (
    MonitorLayersState,
    layer_diagnostics,
    monitor_layers,
)
from .wrappers.inject import (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    WrappedSchedule,
    inject_hyperparams,
    inject_stateful_hyperparams,
)
from .wrappers.lookahead import LookaheadParams, LookaheadState, lookahead
from .wrappers.microbatch import microbatch
from .wrappers.monitoring import (
    MonitorState,
    SnapshotState,
    measure_with_ema,
    monitor,
    snapshot,
)
from .wrappers.multisteps import (
    MultiSteps,
    MultiStepsState,
    ShouldSkipUpdateFunction,
    skip_large_updates,
    skip_not_finite,
)
from .wrappers.plateau import ReduceLROnPlateauState, reduce_on_plateau
from .wrappers.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)
from .wrappers.spike_guard import SkipOnSpikeState, skip_on_spike

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
    "DecayAfterStepState",
    "EmaState",
    "EmptyState",
    "FactoredState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "GraftState",
    "HutchinsonState",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "KahanSummationState",
    "KronState",
    "LookaheadParams",
    "LookaheadState",
    "MaskOrFn",
    "MaskedNode",
    "MaskedState",
    "MonitorLayersState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransformState",
    "MuonDimensionNumbers",
    "MuonState",
    "NonNegativeParamsState",
    "NorMuonState",
    "OptState",
    "Packed",
    "Params",
    "PartitionState",
    "PrecisionStallWarning",
    "ProdigyState",
    "QuantizedArray",
    "ReduceLROnPlateauState",
    "ScalarOrSchedule",
    "ScaleByAdaDeltaState",
    "ScaleByAdam8bitState",
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
    "ScaleByTrustRatioState",
    "ScaleByZoomLinesearchState",
    "ScaleState",
    "Schedule",
    "ScheduleFreeState",
    "ShampooState",
    "ShouldSkipUpdateFunction",
    "SkipOnSpikeState",
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
    "adam_mini",
    "adamax",
    "adamaxw",
    "adamw",
    "adamw_8bit",
    "adan",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_decayed_weights_after_step",
    "add_noise",
    "ademamix",
    "adopt",
    "amsgrad",
    "apply_every",
    "apply_if_finite",
    "apply_updates",
    "bias_correction",
    "cautious",
    "centralize",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_mask",
    "conditionally_transform",
    "constant_schedule",
    "contrib",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "declare_elementwise",
    "dequantize_8bit",
    "ema",
    "exponential_decay",
    "flatten",
    "freeze",
    "fromage",
    "fused_step",
    "global_norm",
    "graft",
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
    "laprop",
    "lars",
    "layer_diagnostics",
    "lbfgs",
    "linear_onecycle_schedule",
    "linear_schedule",
    "lion",
    "lookahead",
    "mars_adamw",
    "masked",
    "matrix_inverse_pth_root",
    "measure_with_ema",
    "microbatch",
    "microbatching",
    "monitor",
    "monitor_layers",
    "multi_transform",
    "muon",
    "nadam",
    "nadamw",
    "named_chain",
    "nnls",
    "noisy_sgd",
    "normalize_by_update_norm",
    "normuon",
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
    "precond_update_prob_schedule",
    "prodigy",
    "psgd_kron",
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
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "second_order",
    "selective_transform",
    "set_to_zero",
    "sgd",
    "sgd_8bit",
    "sgdr_schedule",
    "shampoo",
    "sign_sgd",
    "signum",
    "silence_stall_warning",
    "simplified_ademamix",
    "skip_large_updates",
    "skip_not_finite",
    "skip_on_spike",
    "sm3",
    "snapshot",
    "soap",
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
    "tree_utils",
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
