"""Test collection: the multi-device tests need 8 devices.

``tests/multidevice`` is collected only when ``XLA_FLAGS`` asks for 8 host
devices (``--xla_force_host_platform_device_count=8``), which must be set
before JAX starts; ``tests/test_multidevice.py`` runs it that way in
subprocesses, so the plain ``pytest`` command covers it.
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    collect_ignore = ["multidevice"]
