"""The documentation site: every public name on an API page; a strict build."""

from __future__ import annotations

import collections
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

import gradtx

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
MODULES = {"tree", "microbatching"}  # documented as whole modules


def _directives() -> collections.Counter:
    found = collections.Counter()
    for page in API.glob("*.md"):
        found.update(re.findall(r"^::: gradtx\.(\w+)$", page.read_text(), re.M))
    return found


def test_every_public_name_is_on_exactly_one_api_page():
    found = _directives()
    public = set(gradtx.__all__) | MODULES
    missing = public - set(found)
    assert not missing, f"add to a docs/api page: {sorted(missing)}"
    unknown = set(found) - public
    assert not unknown, f"not public: {sorted(unknown)}"
    twice = [name for name, n in found.items() if n > 1]
    assert not twice, f"on several pages: {twice}"


def test_every_api_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in API.glob("*.md"):
        assert f"api/{page.name}" in nav, page.name


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-d",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "api" / "optimizers" / "index.html").exists()


def test_rst_maths_becomes_mathjax():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location(
        "rst_math", ROOT / "docs" / "_ext" / "rst_math.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "Rule:\n\n    .. math::\n        a = b\n        + c\n\n"
        "    with :math:`a` >= 0.\n"
    )
    assert module.convert(text) == (
        "Rule:\n\n    \\[\n    a = b + c\n    \\]\n\n    with \\(a\\) >= 0.\n"
    )
