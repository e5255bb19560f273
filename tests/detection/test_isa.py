"""The ISA limit (surveil.detection.isa): the environment it sets, and that OpenVINO really runs other kernels under it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from surveil.detection import isa

ROOT = Path(__file__).resolve().parents[2]


def test_the_avx2_limit_sets_onednn_both_names_and_aten():
    assert isa.isa_environment("avx2") == {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "DNNL_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    }
    assert isa.isa_environment("native") == {}


def test_apply_sets_the_variables_once_and_reads_them_back():
    env: dict[str, str] = {}
    assert isa.apply_isa_limit("avx2", env) is True
    assert isa.requested_isa(env) == "AVX2"
    assert isa.apply_isa_limit("avx2", env) is False  # already set: nothing to do (no re-exec loop)
    assert isa.requested_isa({}) == "native"


@pytest.mark.parametrize(
    ("limit", "allowed"),
    [(None, True), ("AVX2", False), ("AVX512_CORE", False), ("AVX512_CORE_VNNI", False), ("AVX512_CORE_BF16", True)],
)
def test_bf16_only_at_or_above_avx512_core_bf16(limit, allowed):
    assert isa.bf16_allowed({"ONEDNN_MAX_CPU_ISA": limit} if limit else {}) is allowed


def test_cpu_flags_summary_and_highest_isa():
    zen4 = "processor : 0\nflags : fpu avx avx2 fma avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16\n"
    flags = isa.cpu_flags(zen4)
    assert isa.flags_summary(flags) == "avx2 yes, avx512f yes, avx512_vnni yes, avx512_bf16 yes, amx no"
    assert isa.highest_isa(flags) == "avx512_core_bf16"
    assert isa.highest_isa({"avx2", "fma"}) == "avx2"
    assert isa.highest_isa({"avx2", "fma", "avx512f"}) == "avx2"  # AVX512_CORE needs bw, vl, dq too
    assert "amx yes (amx_bf16 amx_int8 amx_tile)" in isa.flags_summary(flags | {"amx_bf16", "amx_int8", "amx_tile"})
    assert isa.cpu_flags("no flags here") == set()


def test_isa_line_names_the_kernels_most_used_first():
    line = isa.isa_line("AVX2", {"brgconv_avx2_f32": 5, "brgconv_avx2_1x1_f32": 40})
    assert line == "ISA: requested AVX2, OpenVINO convolutions ran 40 brgconv_avx2_1x1_f32, 5 brgconv_avx2_f32"


# A child process: imports openvino FIRST, then asks for the limit (so apply_isa_limit must re-execute it
# with the variables set, as `surveil bench --isa` would), compiles a tiny convolution graph and prints
# the primitive types of its convolutions.
KERNELS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops
    from surveil.detection import isa
    isa.apply_isa_limit(sys.argv[1])
    x = ops.parameter([1, 16, 32, 32], np.float32, name="x")
    w = ops.constant(np.ones((32, 16, 3, 3), np.float32))
    y = ops.relu(ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1]))
    pointwise = ops.convolution(y, ops.constant(np.ones((8, 32, 1, 1), np.float32)), [1, 1], [0, 0], [0, 0], [1, 1])
    compiled = ov.Core().compile_model(ov.Model([pointwise], [x], "tiny"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    print(json.dumps({"requested": isa.requested_isa(), "kernels": isa.openvino_kernels(compiled)}))
    """
)


def _kernels(limit: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", KERNELS_SCRIPT, limit], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= isa.cpu_flags(),
    reason="this CPU has no AVX-512: OpenVINO runs AVX2 kernels with or without the limit, nothing to tell apart",
)
def test_the_avx2_limit_changes_the_kernels_openvino_runs():
    pytest.importorskip("openvino")
    native, limited = _kernels("native"), _kernels("avx2")
    assert native["requested"] == "native" and limited["requested"] == "AVX2"
    assert sum(native["kernels"].values()) == sum(limited["kernels"].values()) == 2, (native, limited)
    assert all("avx512" in kind for kind in native["kernels"]), native
    assert all("avx2" in kind and "avx512" not in kind for kind in limited["kernels"]), limited
