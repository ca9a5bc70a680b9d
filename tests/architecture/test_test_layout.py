"""The tests mirror the package, and test basenames are unique.

Each test folder named after a subpackage of ``gradtx`` tests that subpackage
(``tests/transforms`` ↔ ``gradtx/transforms``); a new test folder must either
mirror a subpackage or be listed here. Basenames must be unique across the
tree because the folders share ``sys.path`` (``tests/conftest.py``).
"""

import collections
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = TESTS.parent / "gradtx"
NOT_MIRRORS = {"architecture", "multidevice", "multihost", "__pycache__"}


def test_every_test_folder_mirrors_a_subpackage():
    for folder in TESTS.iterdir():
        if folder.is_dir() and folder.name not in NOT_MIRRORS:
            mirror = folder.name if folder.name != "core" else "_core"
            assert (PACKAGE / mirror / "__init__.py").exists(), folder


def test_test_basenames_are_unique():
    names = collections.Counter(p.name for p in TESTS.rglob("*.py"))
    names.pop("__init__.py", None)
    names.pop("_setup.py", None)
    assert [n for n, c in names.items() if c > 1] == []
