"""Which vector instructions the CPU has, limiting the inference runtimes to fewer, and what they really ran.

Most camera hosts have AVX2 only (no AVX-512, AMX or native bf16); a benchmark on a newer CPU can imitate
one with :func:`apply_isa_limit`, which sets, before torch or OpenVINO initialise:

- ``ONEDNN_MAX_CPU_ISA`` (and the older name ``DNNL_MAX_CPU_ISA``): oneDNN's ceiling, honoured by
  OpenVINO's CPU plugin (built on oneDNN) and by PyTorch's oneDNN kernels;
- ``ATEN_CPU_CAPABILITY``: PyTorch's own vectorised kernels (``default`` / ``avx2`` / ``avx512``).

ONNX Runtime's MLAS picks its kernels from CPUID with no run-time limit; OpenVINO's fully connected
layers that it runs with MLAS (``gemm_mlas``) likewise. Check what ran with :func:`openvino_kernels`:
the primitive type of every convolution in OpenVINO's execution graph (``jit_avx2_f32``,
``brgconv_avx512_1x1_f32``...). Under a limit below AVX512_CORE_BF16 OpenVINO still lists BF16 among
the CPU's ``OPTIMIZATION_CAPABILITIES`` but fails to run a bf16 model ("object is not
initialized": at compile time, or at the first inference of a graph with a dynamic input size):
ask :func:`bf16_allowed` before choosing bf16.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

# the limits offered, lowest first: the oneDNN name of each and PyTorch's ATen capability under it
ISA_LIMITS: dict[str, tuple[str, str]] = {
    "avx2": ("AVX2", "avx2"),
    "avx512_core": ("AVX512_CORE", "avx512"),
    "avx512_core_vnni": ("AVX512_CORE_VNNI", "avx512"),
    "avx512_core_bf16": ("AVX512_CORE_BF16", "avx512"),
    "avx512_core_amx": ("AVX512_CORE_AMX", "avx512"),
}
ISA_CHOICES = ["native", *ISA_LIMITS]
ONEDNN_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
ATEN_VARIABLE = "ATEN_CPU_CAPABILITY"
# modules that read the limit when they initialise: once one is imported, only a new process takes it
RUNTIME_MODULES = ("torch", "openvino", "onnxruntime")
CONV_LAYERS = ("Convolution", "GroupConvolution", "Deconvolution", "BinaryConvolution")


def isa_environment(isa: str) -> dict[str, str]:
    """The variables that limit the runtimes to ``isa`` (one of :data:`ISA_CHOICES`; ``native``: none)."""
    if isa == "native":
        return {}
    onednn, aten = ISA_LIMITS[isa]
    return {**dict.fromkeys(ONEDNN_VARIABLES, onednn), ATEN_VARIABLE: aten}


def requested_isa(environ: Mapping[str, str] | None = None) -> str:
    """The limit in force for this process: the oneDNN name set in the environment, or ``native``."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in ONEDNN_VARIABLES if env.get(name)), "native")


def apply_isa_limit(isa: str, environ: MutableMapping[str, str] | None = None, reexec: bool = True) -> bool:
    """Limit the runtimes to ``isa`` for this process: sets :func:`isa_environment` in ``environ``; when one of
    :data:`RUNTIME_MODULES` is already imported (it has read the variables), re-executes this command
    line (``sys.orig_argv``) with them set instead, if ``reexec``. Returns whether anything changed.
    Calling it again in the re-executed process changes nothing (the variables are already set)."""
    env = os.environ if environ is None else environ
    wanted = isa_environment(isa)
    if all(env.get(k) == v for k, v in wanted.items()):
        return False
    env.update(wanted)
    loaded = [name for name in RUNTIME_MODULES if name in sys.modules]
    if loaded and reexec and environ is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return True


def bf16_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """False when a oneDNN limit below AVX512_CORE_BF16 is set (OpenVINO's bf16 then fails to run)."""
    limit = requested_isa(environ).upper()
    if limit == "NATIVE":
        return True
    order = [onednn for onednn, _ in ISA_LIMITS.values()]
    if limit not in order:  # a oneDNN name not offered here: SSE41, AVX, AVX2_VNNI... all below bf16
        return limit.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10"))
    return order.index(limit) >= order.index("AVX512_CORE_BF16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (the first ``flags`` line of /proc/cpuinfo, or of ``cpuinfo``); empty when unknown."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as info:
                cpuinfo = info.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def flags_summary(flags: Iterable[str]) -> str:
    """The features that decide the detector's kernels: 'avx2 yes, avx512f yes, avx512_bf16 no, amx no'."""
    have = set(flags)
    if not have:
        return "CPU flags unknown (no /proc/cpuinfo)"
    amx = sorted(f for f in have if f.startswith("amx"))
    parts = [f"{name} {'yes' if name in have else 'no'}" for name in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")]
    return ", ".join(parts) + (f", amx yes ({' '.join(amx)})" if amx else ", amx no")


def highest_isa(flags: Iterable[str]) -> str:
    """The highest of :data:`ISA_LIMITS` this CPU has (``below avx2`` when none)."""
    have = set(flags)
    needs = {
        "avx2": {"avx2", "fma"},
        "avx512_core": {"avx512f", "avx512bw", "avx512vl", "avx512dq"},
        "avx512_core_vnni": {"avx512_vnni"},
        "avx512_core_bf16": {"avx512_bf16"},
        "avx512_core_amx": {"amx_tile", "amx_bf16", "amx_int8"},
    }
    best, required = "below avx2", set()
    for isa, extra in needs.items():
        required |= extra
        if not required <= have:
            break
        best = isa
    return best


def openvino_kernels(compiled_model: Any, layers: Iterable[str] = CONV_LAYERS) -> Counter[str]:
    """Primitive types (rt_info ``primitiveType``, e.g. ``brgconv_avx2_1x1_f32``) of the ``layers`` in a compiled
    OpenVINO model's execution graph, counted (the top-level graph: not inside ``If`` bodies)."""
    wanted = set(layers)
    counts: Counter[str] = Counter()
    for op in compiled_model.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or str(info["layerType"].astype(str)) not in wanted:
            continue
        counts[str(info["primitiveType"].astype(str)) if "primitiveType" in info else "unknown"] += 1
    return counts


def kernels_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def isa_line(requested: str, counts: Mapping[str, int] | None, why_not: str = "") -> str:
    """'ISA: requested AVX2, OpenVINO convolutions ran 40 brgconv_avx2_1x1_f32, ...' (or why they were not read)."""
    ran = f"OpenVINO convolutions ran {kernels_text(counts)}" if counts is not None else why_not
    return f"ISA: requested {requested}, {ran}"


def openvino_graph_kernels(graph: Any, precision: str = "fp32", layers: Iterable[str] = CONV_LAYERS) -> Counter[str]:
    """:func:`openvino_kernels` of the OpenVINO graph at ``graph`` (an ONNX or IR path) compiled here for the CPU in
    ``precision`` (fp32 / bf16): in this process, so under the same limit as the detector's own compile."""
    import openvino as ov

    core = ov.Core()
    hint = "bf16" if precision == "bf16" else "f32"
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    return openvino_kernels(compiled, layers)
