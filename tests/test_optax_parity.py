"""Every optimizer-related public name of Optax exists in gradtx, alike.

Enumerates Optax's top-level names (less losses, projections, perturbations and
assignment, which are out of scope) and the contrib optimizers gradtx adopts,
and checks that gradtx has each one, with the same parameters (names, order,
kinds, defaults) for functions and the same fields for state NamedTuples.
"""

from __future__ import annotations

import enum
import inspect
import math

import optax
import pytest

import gradtx

OUT_OF_SCOPE_MODULES = ("losses", "projections", "perturbations", "assignment")

# Names Optax exports that gradtx deliberately does not, with the reason.
NOT_OPTIMIZER_RELATED = {
    "multi_normal": "a Gaussian log-density helper used by perturbations",
}

# optax.contrib names that gradtx adopts at its top level (the list).
CONTRIB = """
muon scale_by_muon MuonState adopt scale_by_adopt ademamix scale_by_ademamix
ScaleByAdemamixState simplified_ademamix scale_by_simplified_ademamix
ScaleBySimplifiedAdEMAMixState prodigy ProdigyState schedule_free
schedule_free_sgd schedule_free_adamw schedule_free_eval_params
ScheduleFreeState sophia SophiaState hutchinson_estimator_diag_hessian
HutchinsonState reduce_on_plateau ReduceLROnPlateauState
""".split()

# Parameters where gradtx's default deliberately differs, with the reason.
DEFAULT_DIFFERENCES: dict[tuple[str, str], str] = {
    ("sophia", "hessian_diagonal_fn"): "a fresh Hutchinson estimator: same behaviour",
    ("lbfgs", "linesearch"): "a zoom line search built once: same behaviour",
    ("adopt", "clip_value_fn"): "the same clipping function, another object",
    ("scale_by_adopt", "clip_value_fn"): "the same clipping function, another object",
}


def _optax_names():
    names = []
    for name in dir(optax):
        if name.startswith("_"):
            continue
        obj = getattr(optax, name)
        if inspect.ismodule(obj):
            continue
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


def _same_default(a, b):
    if a is b or a == b:
        return True
    if isinstance(a, enum.Enum) and isinstance(b, enum.Enum):
        return a.name == b.name
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return type(a) is type(b) and callable(a)


NAMES = _optax_names()


def test_nothing_is_missing():
    missing = [f"{w}.{n}" for w, n in NAMES if not hasattr(gradtx, n)]
    assert not missing, f"gradtx lacks {len(missing)} Optax names: {missing}"


@pytest.mark.parametrize("where,name", NAMES, ids=[n for _, n in NAMES])
def test_same_signature_or_fields(where, name):
    if not hasattr(gradtx, name):
        pytest.fail(f"gradtx lacks {where}.{name}")
    ours, theirs = getattr(gradtx, name), _optax_obj(where, name)
    if isinstance(theirs, type) and issubclass(theirs, tuple):
        fields = getattr(theirs, "_fields", None)
        if fields is not None:
            assert getattr(ours, "_fields", None) == fields, name
        return
    if not (inspect.isfunction(theirs) or inspect.isclass(theirs)):
        return  # a type alias or a constant
    try:
        sig_theirs = inspect.signature(theirs)
    except (TypeError, ValueError):
        return
    sig_ours = inspect.signature(ours)
    p_ours = list(sig_ours.parameters.values())
    p_theirs = list(sig_theirs.parameters.values())
    # gradtx may add keyword-only options after Optax's parameters.
    extra = p_ours[len(p_theirs) :]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra)
    p_ours = p_ours[: len(p_theirs)]
    assert [p.name for p in p_ours] == [p.name for p in p_theirs], name
    for a, b in zip(p_ours, p_theirs, strict=True):
        assert a.kind == b.kind, f"{name}({a.name}): kind {a.kind} != {b.kind}"
        if (name, a.name) in DEFAULT_DIFFERENCES:
            continue
        assert _same_default(a.default, b.default), (
            f"{name}({a.name}): default {a.default!r} != Optax's {b.default!r}"
        )
