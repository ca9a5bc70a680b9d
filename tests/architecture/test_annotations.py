"""Public signatures carry annotation objects, not strings (as Optax's do).

A module with ``from __future__ import annotations`` stores every annotation
as a string, which tools that read ``inspect.signature`` (Flax's config
dataclasses, argument parsers, documentation builders) see as ``str``.
"""

import inspect
import pathlib

import pytest

import gradtx
from gradtx import schedules, transforms, tree


def _public_callables():
    seen = {}
    for module, names in [
        (gradtx, gradtx.__all__),
        (transforms, getattr(transforms, "__all__", dir(transforms))),
        (schedules, getattr(schedules, "__all__", dir(schedules))),
        (tree, getattr(tree, "__all__", dir(tree))),
    ]:
        for name in names:
            if name.startswith("_"):
                continue
            obj = getattr(module, name)
            if callable(obj) and not inspect.ismodule(obj):
                seen.setdefault(f"{module.__name__}.{name}", obj)
    return seen


PUBLIC = _public_callables()


def _signature(obj):
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):  # builtins and some C types have none
        return None


def test_there_are_many_public_callables():
    assert len(PUBLIC) > 200
    assert sum(_signature(obj) is not None for obj in PUBLIC.values()) > 200


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_no_annotation_is_a_string(name):
    sig = _signature(PUBLIC[name])
    if sig is None:
        pytest.skip("no signature")
    strings = {
        p.name: p.annotation
        for p in sig.parameters.values()
        if isinstance(p.annotation, str)
    }
    if isinstance(sig.return_annotation, str):
        strings["return"] = sig.return_annotation
    assert not strings, f"{name}: string annotations {strings}"


def test_adam_learning_rate_annotation_is_a_type():
    annotation = inspect.signature(gradtx.adam).parameters["learning_rate"].annotation
    assert not isinstance(annotation, str)
    assert annotation is not inspect.Parameter.empty


def test_no_module_postpones_its_annotations():
    root = pathlib.Path(gradtx.__file__).parent
    offenders = [
        str(path.relative_to(root.parent))
        for path in sorted(root.rglob("*.py"))
        if "from __future__ import annotations" in path.read_text()
    ]
    assert not offenders, offenders
