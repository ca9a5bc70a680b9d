"""Test collection.

The tests mirror the package: ``tests/core``, ``tests/transforms``,
``tests/combinators``, ``tests/wrappers``, ``tests/schedules``,
``tests/precision``, ``tests/engines`` and ``tests/contrib`` test the modules
of the subpackage of the same name; ``tests/architecture`` the layering; the
files directly in ``tests/`` are the cross-cutting, table-driven tests (the
optimizer table in ``optimizers.py``, properties, NumPy references in
``reference*.py``, Optax parity, bad inputs, docs, examples). Test modules
import shared helpers by module name (``import reference``, ``from
test_reference import …``), so every test folder is put on ``sys.path`` here
and every test file's basename is unique across the tree.

``tests/multidevice`` is collected only when ``XLA_FLAGS`` asks for 8 host
devices (``--xla_force_host_platform_device_count=8``), which must be set
before JAX starts; ``tests/test_multidevice.py`` runs it that way in
subprocesses, so the plain ``pytest`` command covers it. ``tests/multihost``
holds the worker that ``tests/test_multihost.py`` starts as two JAX processes:
never collected here.
"""

import os
import pathlib
import sys

_TESTS = pathlib.Path(__file__).resolve().parent
for _folder in sorted(p for p in _TESTS.iterdir() if p.is_dir()):
    if not _folder.name.startswith((".", "_")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))

collect_ignore = ["multihost"]
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    collect_ignore.append("multidevice")
