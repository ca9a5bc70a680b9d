"""An optional native CPU kernel: one-pass, in-place Adam(W) leaf updates.

XLA:CPU compiles an Adam(W) leaf step into three loop fusions (it does not fuse
several outputs into one loop), moving ~40 bytes per parameter where 28 suffice
(read ``p, g, m, v``; write ``p, m, v``). :func:`adam_leaf_step` does the whole
step in one pass through a ``jax.ffi`` custom call whose outputs are aliased to
``p, m, v``, so with donated buffers the update happens in place.

The kernel (``native_adam.cc``, next to this file) is compiled on first use
with ``g++`` from ``PATH`` into ``$GRADTX_CACHE_DIR`` (default
``~/.cache/gradtx``), keyed by a hash of the source, the jax and jaxlib
versions, the compiler, its flags and the CPU. Nothing here is needed for
gradtx to work: :func:`available` returns False, and says why through
:func:`why_unavailable`, when ``g++`` is missing, compilation fails, the
platform has no CPU backend, or ``GRADTX_NATIVE=0`` is set.

The per-element maths is gradtx's one definition,
:func:`gradtx.transforms.adam.adam_leaf` (then ``u + wd·p`` and ``p + (−lr)·u``),
written out in C++ with each operation rounded once in float32; its scalar
coefficients are computed in Python by :func:`gradtx.transforms.adam.adam_scalars`
(see :mod:`gradtx.engines.fused`) and passed in. XLA compiles the same jnp
expression with its own roundings (FMAs, ``x * (1/c)`` for ``x / c``), so the
kernel agrees with the plain path to the ulp bound that ``tests/engines/test_native.py``
states, not bit for bit.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib

TARGET = "gradtx_adam_leaf"
_SYMBOL = "GradtxAdamLeaf"
_SOURCE = Path(__file__).with_name("native_adam.cc")
# -ffp-contract=off: every operation of the expression is rounded on its own
# (no FMA), whatever the CPU, so the kernel's roundings do not depend on which
# products GCC would contract. -fno-math-errno lets GCC
# vectorise sqrtf (errno is never read; results are unchanged). -march=native
# is safe because the library is built on the machine that runs it (the CPU
# is part of the cache key).
FLAGS = (
    "-O3",
    "-march=native",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-shared",
    "-fPIC",
    "-std=c++17",
    "-fvisibility=hidden",
)
_COMPILE_TIMEOUT_S = 600

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "ok": bool, "why": str, "lib": ctypes.CDLL


def _cache_dir() -> Path:
    root = os.environ.get("GRADTX_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "gradtx"


def _cpu_signature() -> str:
    """The CPU model and feature flags (what ``-march=native`` depends on)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = [
        line
        for line in text.splitlines()
        if line.split(":")[0].strip() in ("model name", "flags", "Features")
    ]
    return "\n".join(sorted(set(keep)))


def _library_path(cxx: str, source: bytes) -> Path:
    version = subprocess.run(
        [cxx, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    key = hashlib.sha256()
    for part in (
        source,
        jax.__version__.encode(),
        jaxlib.__version__.encode(),
        version.encode(),
        " ".join(FLAGS).encode(),
        _cpu_signature().encode(),
    ):
        key.update(hashlib.sha256(part).digest())
    return _cache_dir() / f"gradtx_adam_{key.hexdigest()[:24]}.so"


def _build(cxx: str, source: bytes, target: Path) -> None:
    """Compiles into a temporary file beside ``target`` and renames it there.

    The rename is atomic, so concurrent builders (pytest-xdist workers) never
    load a half-written library; the last one to finish simply wins.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=target.stem + ".", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    try:
        cmd = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), str(_SOURCE), "-o", tmp]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load() -> tuple[bool, str]:
    if os.environ.get("GRADTX_NATIVE", "").strip() == "0":
        return False, "disabled by GRADTX_NATIVE=0"
    cxx = shutil.which("g++")
    if cxx is None:
        return False, "g++ not found on PATH"
    try:
        source = _SOURCE.read_bytes()
    except OSError as e:
        return False, f"kernel source not readable: {e}"
    try:
        jax.devices("cpu")  # raises RuntimeError without a CPU backend
        path = _library_path(cxx, source)
        if not path.exists():
            _build(cxx, source, path)
        lib = ctypes.CDLL(str(path))
        jax.ffi.register_ffi_target(
            TARGET, jax.ffi.pycapsule(getattr(lib, _SYMBOL)), platform="cpu"
        )
    except Exception as e:  # never raise: the caller falls back to jnp
        return False, f"{type(e).__name__}: {e}"
    _state["lib"] = lib  # keep the library loaded for the process lifetime
    return True, f"loaded {path}"


def available() -> bool:
    """Whether the native kernel is built, loaded and registered with XLA:CPU.

    The first call compiles the kernel if no cached build matches (a few
    seconds) and registers the ``jax.ffi`` target; the answer is cached for
    the life of the process. Never raises: on any failure it returns False
    and :func:`why_unavailable` gives the reason.
    """
    with _lock:
        if "ok" not in _state:
            _state["ok"], _state["why"] = _load()
        return _state["ok"]


def why_unavailable() -> str | None:
    """Why :func:`available` is False (None when the kernel is available).

    Calls :func:`available` first if it has not run yet.
    """
    return None if available() else _state["why"]


def _is_one(x: Any) -> bool:
    """True for None and the Python number 1 (static: XLA drops ``g * 1``)."""
    if x is None:
        return True
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == 1


def _f32_scalar(name: str, x: Any) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 0:
        raise ValueError(
            f"adam_leaf_step: {name} must be a scalar, got shape {x.shape}"
        )
    return x


def adam_leaf_step(
    p: jax.Array,
    g: jax.Array,
    m: jax.Array,
    v: jax.Array,
    *,
    f: Any = None,
    b1: Any,
    omb1: Any,
    b2: Any,
    omb2: Any,
    c1: Any,
    c2: Any,
    c1n: Any,
    eps: Any,
    eps_root: Any,
    wd: Any,
    nlr: Any,
    nesterov: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Adam(W) step of a float32 leaf in one pass: returns ``(p', m', v')``.

    Per element, in float32 and in this order, each operation rounded once::

        gs = g * f                 (g when f is None)
        m' = omb1 * gs + b1 * m
        v' = omb2 * (gs * gs) + b2 * v
        mh = b1 * (m' / c1n) + omb1 * (gs / c1) if nesterov else m' / c1
        u  = mh / (sqrt(v' / c2 + eps_root) + eps)
        u  = u + wd * p            (skipped where wd == 0, even for inf p)
        p' = p + nlr * u

    which is :func:`gradtx.transforms.adam.adam_leaf` followed by
    ``add_decayed_weights``, ``scale(-lr)`` and ``apply_updates``; the
    scalars are :func:`gradtx.transforms.adam.adam_scalars`'. It agrees with
    gradtx's jitted ``adam``/``adamw`` to the bound of ``tests/engines/test_native.py``.

    The outputs are aliased to ``p, m, v``: inside a jitted function whose
    arguments ``p, m, v`` are donated, the update is written in place.
    Scalars may be Python numbers (rounded to float32 as jnp does) or traced
    0-d values (schedules). ``f`` is a global-clip factor (None, or the
    Python number 1, for none),
    ``omb1``/``omb2`` the complements ``1 - b`` as the caller rounds them,
    ``c1``, ``c2``, ``c1n`` the bias corrections (``c1n`` for step ``t + 1``,
    used only with ``nesterov``) and ``nlr`` the negated learning rate.

    Under :func:`jax.vmap` every operand is broadcast to the batch
    (``vmap_method="broadcast_all"``) and each batch row uses its own scalars
    in one kernel call.

    Raises:
      RuntimeError: if :func:`available` is False.
      TypeError, ValueError: on non-float32 or mismatched leaves.
    """
    if not available():
        raise RuntimeError(f"gradtx native kernel unavailable: {why_unavailable()}")
    p, g, m, v = (jnp.asarray(x) for x in (p, g, m, v))
    for name, x in zip("pgmv", (p, g, m, v), strict=True):
        if x.dtype != jnp.float32:
            raise TypeError(f"adam_leaf_step: {name} must be float32, got {x.dtype}")
        if x.shape != p.shape:
            raise ValueError(
                f"adam_leaf_step: {name} has shape {x.shape}, p has {p.shape}"
            )
    named = dict(
        f=f, b1=b1, omb1=omb1, b2=b2, omb2=omb2, c1=c1, c2=c2, c1n=c1n,
        eps=eps, eps_root=eps_root, wd=wd, nlr=nlr,
    )  # fmt: skip
    scaled = not _is_one(f)
    if not scaled:
        named["f"] = 1.0
    s = jnp.stack([_f32_scalar(k, x) for k, x in named.items()])
    leaf = jax.ShapeDtypeStruct(p.shape, jnp.float32)
    call = jax.ffi.ffi_call(
        TARGET,
        (leaf, leaf, leaf),
        input_output_aliases={0: 0, 2: 1, 3: 2},
        vmap_method="broadcast_all",
    )
    p, m, v = call(p, g, m, v, s, nesterov=bool(nesterov), scaled=scaled)
    return p, m, v
