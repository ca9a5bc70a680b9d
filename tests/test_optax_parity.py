"""Every optimizer-related public name of Optax exists in gradtx, alike.

Two levels, both enumerated from Optax 0.2.8 itself (so nothing is skipped
without a line in a table below):

* the top level: Optax's top-level names (less losses, projections,
  perturbations and assignment, which are out of scope) and the contrib
  optimizers gradtx also keeps at its top level;
* the namespaces: every public name of ``optax.<ns>`` for each namespace
  gradtx mirrors (``NAMESPACES``) exists in ``gradtx.<ns>``.

For functions and classes, the parameters (names, order, kinds, defaults) are
Optax's; gradtx may add keyword-only options with defaults after them. State
NamedTuples have Optax's fields; enums Optax's members; dataclasses Optax's
fields; protocols Optax's methods, with the same parameters (gradtx's may
also take ``**extra_args``). Type aliases (typing objects, which have no
signature) are checked for existence only.
The top level also keeps every name it exported before the namespaces were
completed (``TOP_LEVEL_SNAPSHOT``).
"""

import dataclasses
import enum
import importlib
import inspect
import math
import pathlib
import typing

import optax
import optax.contrib
import pytest

import gradtx

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Optax modules gradtx does not mirror: they keep coming from Optax.
NOT_MIRRORED = {
    "losses": "out of scope: loss functions are not gradient transformations",
    "projections": "out of scope: projections onto constraint sets",
    "perturbations": "out of scope: perturbation-based smoothing of functions",
    "assignment": "out of scope: the Hungarian algorithm",
    "experimental": "not in the issue's list of namespaces (optax.experimental"
    ".aggregating, an experimental API)",
}
OUT_OF_SCOPE_MODULES = tuple(NOT_MIRRORED)

# The Optax namespaces gradtx mirrors under the same name.
NAMESPACES = (
    "transforms",
    "schedules",
    "contrib",
    "second_order",
    "microbatching",
    "tree",
    "tree_utils",
)

# Names Optax exports that gradtx deliberately does not, with the reason.
NOT_OPTIMIZER_RELATED = {
    "multi_normal": "a Gaussian log-density helper used by perturbations",
}

# optax.contrib names that gradtx also keeps at its top level.
CONTRIB = """
muon scale_by_muon MuonState adopt scale_by_adopt ademamix scale_by_ademamix
ScaleByAdemamixState simplified_ademamix scale_by_simplified_ademamix
ScaleBySimplifiedAdEMAMixState prodigy ProdigyState schedule_free
schedule_free_sgd schedule_free_adamw schedule_free_eval_params
ScheduleFreeState sophia SophiaState hutchinson_estimator_diag_hessian
HutchinsonState reduce_on_plateau ReduceLROnPlateauState
""".split()

# Parameters where gradtx's default deliberately differs, with the reason
# (the same object wherever it is exported: top level or a namespace).
DEFAULT_DIFFERENCES: dict[tuple[str, str], str] = {
    ("sophia", "hessian_diagonal_fn"): "a fresh Hutchinson estimator: same behaviour",
    ("lbfgs", "linesearch"): "a zoom line search built once: same behaviour",
    ("adopt", "clip_value_fn"): "the same clipping function, another object",
    ("scale_by_adopt", "clip_value_fn"): "the same clipping function, another object",
}

# gradtx.__all__ before the namespaces were completed: none may disappear.
TOP_LEVEL_SNAPSHOT = """
AdaptiveGradClipState AddDecayedWeightsState AddNoiseState ApplyEvery
ApplyIfFiniteState ClipByGlobalNormState ClipState ConditionallyMaskState
ConditionallyTransformState EmaState EmptyState FactoredState
GradientTransformation GradientTransformationExtraArgs HutchinsonState
InjectHyperparamsState InjectStatefulHyperparamsState KahanSummationState
LookaheadParams LookaheadState MaskOrFn MaskedNode MaskedState MonitorState
MultiSteps MultiStepsState MultiTransformState MuonDimensionNumbers MuonState
NonNegativeParamsState OptState Packed Params PartitionState ProdigyState
QuantizedArray ReduceLROnPlateauState ScalarOrSchedule ScaleByAdaDeltaState
ScaleByAdam8bitState ScaleByAdamState ScaleByAdanState ScaleByAdemamixState
ScaleByAmsgradState ScaleByBacktrackingLinesearchState ScaleByBeliefState
ScaleByDistanceOverGradientsState ScaleByLBFGSState ScaleByLionState
ScaleByNovogradState ScaleByOptimisticGradientState ScaleByRStdDevState
ScaleByRStdDevWithCountState ScaleByRmsState ScaleByRmsWithCountState
ScaleByRpropState ScaleByRssState ScaleBySM3State ScaleByScheduleState
ScaleBySimplifiedAdEMAMixState ScaleByTrustRatioState ScaleByZoomLinesearchState
ScaleState Schedule ScheduleFreeState ShouldSkipUpdateFunction SnapshotState
SophiaState StochasticRoundingState Trace8bitState TraceState TransformInitFn
TransformUpdateExtraArgsFn TransformUpdateFn Updates WeightDecaySchedule
WrappedSchedule ZeroNansState ZoomLinesearchInfo adabelief adadelta adafactor
adagrad adam adam_8bit adam_l2 adamax adamaxw adamw adamw_8bit adan
adaptive_grad_clip add_decayed_weights add_noise ademamix adopt amsgrad
apply_every apply_if_finite apply_updates bias_correction centralize chain clip
clip_by_block_rms clip_by_global_norm conditionally_mask conditionally_transform
constant_schedule cosine_decay_schedule cosine_onecycle_schedule dequantize_8bit
ema exponential_decay flatten freeze fromage fused_step global_norm
hutchinson_estimator_diag_hessian identity incremental_update init_empty_state
inject_hyperparams inject_stateful_hyperparams join_schedules kahan_summation
keep_params_nonnegative lamb lars lbfgs linear_onecycle_schedule linear_schedule
lion lookahead masked matrix_inverse_pth_root measure_with_ema microbatch
microbatching monitor multi_transform muon nadam nadamw named_chain nnls
noisy_sgd normalize_by_update_norm novograd optimistic_adam optimistic_adam_v2
optimistic_gradient_descent pack pack_labels packed packed_value_and_grad
partition per_device_bytes per_example_global_norm_clip
per_example_layer_norm_clip periodic_update piecewise_constant_schedule
piecewise_interpolate_schedule polyak_sgd polynomial_schedule power_iteration
prodigy quantize_8bit radam reduce_on_plateau refuse_packed restore_state
rmsprop rprop safe_increment safe_int32_increment safe_norm
safe_root_mean_squares scale scale_by_adadelta scale_by_adam scale_by_adam_8bit
scale_by_adamax scale_by_adan scale_by_ademamix scale_by_adopt scale_by_amsgrad
scale_by_backtracking_linesearch scale_by_belief
scale_by_distance_over_gradients scale_by_factored_rms scale_by_lbfgs
scale_by_learning_rate scale_by_lion scale_by_muon scale_by_novograd
scale_by_optimistic_gradient scale_by_param_block_norm scale_by_param_block_rms
scale_by_polyak scale_by_radam scale_by_rms scale_by_rprop scale_by_rss
scale_by_schedule scale_by_sign scale_by_simplified_ademamix scale_by_sm3
scale_by_sophia scale_by_stddev scale_by_trust_ratio scale_by_yogi
scale_by_zoom_linesearch scale_gradient schedule_free schedule_free_adamw
schedule_free_eval_params schedule_free_sgd selective_transform set_to_zero sgd
sgd_8bit sgdr_schedule sign_sgd signum simplified_ademamix skip_large_updates
skip_not_finite sm3 snapshot sophia state_shardings state_signature stateless
stateless_with_tree_map stochastic_rounding trace trace_8bit tree tree_cast
tree_cast_like tree_full_like tree_map_params tree_sum_of_squares
tree_zeros_like unpack update_infinity_moment update_moment
update_moment_per_elem_norm validate_state value_and_grad_from_state
warmup_constant_schedule warmup_cosine_decay_schedule
warmup_exponential_decay_schedule with_extra_args_support yogi zero1_shardings
zero_nans
""".split()


def _public(module) -> list[str]:
    return sorted(
        n
        for n in dir(module)
        if not n.startswith("_") and not inspect.ismodule(getattr(module, n))
    )


def _ours(ns: str, name: str):
    """gradtx's ``<ns>.<name>``."""
    namespace = importlib.import_module(f"gradtx.{ns}")
    if not hasattr(namespace, name):
        pytest.fail(f"gradtx.{ns} lacks {name}")
    return getattr(namespace, name)


def _same_default(a, b):
    if a is b or a == b:
        return True
    if isinstance(a, enum.Enum) and isinstance(b, enum.Enum):
        return a.name == b.name
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return type(a) is type(b) and callable(a)


def _same_parameters(label, name, ours, theirs):
    sig_theirs = inspect.signature(theirs)
    p_ours = list(inspect.signature(ours).parameters.values())
    p_theirs = list(sig_theirs.parameters.values())
    # gradtx may add keyword-only options after Optax's parameters, and
    # ``**extra_args`` (every gradtx update function accepts them).
    extra = p_ours[len(p_theirs) :]
    assert all(
        (p.kind is p.KEYWORD_ONLY and p.default is not p.empty)
        or p.kind is p.VAR_KEYWORD
        for p in extra
    ), f"{label}: extra parameters {extra} must be keyword-only with defaults"
    p_ours = p_ours[: len(p_theirs)]
    assert [p.name for p in p_ours] == [p.name for p in p_theirs], label
    for a, b in zip(p_ours, p_theirs, strict=True):
        assert a.kind == b.kind, f"{label}({a.name}): kind {a.kind} != {b.kind}"
        if (name, a.name) in DEFAULT_DIFFERENCES:
            continue
        assert _same_default(a.default, b.default), (
            f"{label}({a.name}): default {a.default!r} != Optax's {b.default!r}"
        )


def _check_alike(label, name, ours, theirs):
    """Fields, members, methods or parameters of ``ours`` are ``theirs``."""
    if isinstance(theirs, type) and issubclass(theirs, tuple):
        fields = getattr(theirs, "_fields", None)
        if fields is not None:
            assert getattr(ours, "_fields", None) == fields, label
        return
    if isinstance(theirs, type) and issubclass(theirs, enum.Enum):
        assert [m.name for m in ours] == [m.name for m in theirs], label
        return
    if dataclasses.is_dataclass(theirs):
        names = [f.name for f in dataclasses.fields(theirs)]
        assert [f.name for f in dataclasses.fields(ours)] == names, label
        return
    if getattr(theirs, "_is_protocol", False):
        assert getattr(ours, "_is_protocol", False), f"{label}: not a Protocol"
        methods = [
            m
            for m, v in vars(theirs).items()
            if callable(v) and (m == "__call__" or not m.startswith("_"))
        ]
        for m in methods:
            _same_parameters(f"{label}.{m}", m, getattr(ours, m), getattr(theirs, m))
        return
    if _has_signature(theirs):
        _same_parameters(label, name, ours, theirs)
    # else: a type alias (a typing object): existence only.


def _has_signature(obj) -> bool:
    if not callable(obj) or typing.get_origin(obj) is not None:
        return False  # typing aliases (Union[...], Callable[...]) are callable
    try:
        inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------
# The top level.


def _optax_names():
    names = []
    for name in dir(optax):
        if name.startswith("_"):
            continue
        obj = getattr(optax, name)
        if inspect.ismodule(obj):
            continue  # the namespaces: tested below
        module = getattr(obj, "__module__", "") or ""
        if any(m in module for m in OUT_OF_SCOPE_MODULES):
            continue
        if name in NOT_OPTIMIZER_RELATED:
            continue
        names.append(("optax", name))
    names += [("optax.contrib", name) for name in CONTRIB]
    return names


def _optax_obj(where, name):
    return getattr(optax.contrib if where == "optax.contrib" else optax, name)


NAMES = _optax_names()


def test_nothing_is_missing():
    missing = [f"{w}.{n}" for w, n in NAMES if not hasattr(gradtx, n)]
    assert not missing, f"gradtx lacks {len(missing)} Optax names: {missing}"


@pytest.mark.parametrize("where,name", NAMES, ids=[n for _, n in NAMES])
def test_same_signature_or_fields(where, name):
    if not hasattr(gradtx, name):
        pytest.fail(f"gradtx lacks {where}.{name}")
    _check_alike(name, name, getattr(gradtx, name), _optax_obj(where, name))


def test_the_top_level_keeps_every_name_it_had():
    gone = [n for n in TOP_LEVEL_SNAPSHOT if n not in gradtx.__all__]
    assert not gone, f"gradtx.__all__ lost {gone}"
    assert all(hasattr(gradtx, n) for n in TOP_LEVEL_SNAPSHOT)


# --------------------------------------------------------------------------
# The namespaces.


def test_every_optax_module_is_mirrored_or_listed_out_of_scope():
    modules = {n for n in dir(optax) if inspect.ismodule(getattr(optax, n))}
    modules -= {n for n in modules if n.startswith("_")}
    unlisted = modules - set(NAMESPACES) - set(NOT_MIRRORED)
    assert not unlisted, f"add to NAMESPACES or NOT_MIRRORED: {sorted(unlisted)}"


@pytest.mark.parametrize("ns", NAMESPACES)
def test_each_namespace_is_an_attribute_of_gradtx(ns):
    assert getattr(gradtx, ns) is importlib.import_module(f"gradtx.{ns}")


def test_the_contrib_facade_exports_every_optax_contrib_name():
    theirs = set(_public(optax.contrib))
    assert set(_public(gradtx.contrib)) == theirs
    assert gradtx.contrib.__all__ == sorted(theirs)


NS_NAMES = [(ns, n) for ns in NAMESPACES for n in _public(getattr(optax, ns))]


@pytest.mark.parametrize("ns,name", NS_NAMES, ids=[f"{a}.{b}" for a, b in NS_NAMES])
def test_namespace_name_exists_alike(ns, name):
    theirs = getattr(getattr(optax, ns), name)
    _check_alike(f"gradtx.{ns}.{name}", name, _ours(ns, name), theirs)


@pytest.mark.parametrize("ns", [n for n in NAMESPACES if n != "contrib"])
def test_namespace_all_lists_its_names(ns):
    namespace = importlib.import_module(f"gradtx.{ns}")
    assert set(_public(getattr(optax, ns))) <= set(namespace.__all__)
    assert all(hasattr(namespace, n) for n in namespace.__all__)


def test_the_type_aliases_are_typing_objects():
    # Existence-only names must really be type aliases, not untested functions.
    for ns in NAMESPACES:
        for name in _public(getattr(optax, ns)):
            obj = getattr(getattr(optax, ns), name)
            if not _has_signature(obj):
                assert typing.get_origin(obj) is not None or isinstance(
                    obj, (typing.TypeVar, type(typing.Any))
                ), f"optax.{ns}.{name} ({obj!r}) is neither callable nor an alias"
