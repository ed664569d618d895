import pytest

from reid.runtimes.openvino import native_precisions

pytest.importorskip("openvino")


@pytest.mark.parametrize("cap", ["SSE41", "AVX2", "avx512_core_vnni"])
def test_an_isa_cap_below_bf16_means_no_native_bf16(monkeypatch, cap):
    # OpenVINO reports the CPU's features, but a capped oneDNN has no bf16 kernels to compile a model with.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert "BF16" not in native_precisions()
    assert "FP32" in native_precisions()


def test_no_cap_keeps_what_the_cpu_reports(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    uncapped = native_precisions()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert native_precisions() == uncapped
