"""Cached exports of a preset for ``--runtime onnx|onnx-int8`` with a preset name."""

import pytest
from export_helpers import reference_model

from zippypoint.model.weights import WeightsError, save_weights
from zippypoint.runtime.model_cache import exported_model_path


def test_exports_once_and_reuses(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_weights(reference_model("zippypoint-fp-gray"), weights)
    first = exported_model_path("zippypoint-fp-gray", "onnx", weights=weights, directory=tmp_path / "cache")
    assert first.is_file() and first.parent == tmp_path / "cache"
    stamp = first.stat().st_mtime_ns
    again = exported_model_path("zippypoint-fp-gray", "onnx", weights=weights, directory=tmp_path / "cache")
    assert again == first and again.stat().st_mtime_ns == stamp
    assert not list((tmp_path / "cache").glob("*.partial"))

    from zippypoint.runtime import OnnxExtractor

    extractor = OnnxExtractor(first)
    assert extractor.in_channels == 1 and extractor.metadata.weights_sha256 != "random"


def test_missing_weights_and_bad_format(tmp_path):
    with pytest.raises(WeightsError, match="no weights"):
        exported_model_path("zippypoint", "onnx", weights=tmp_path / "none.safetensors", directory=tmp_path)
    with pytest.raises(ValueError, match="format"):
        exported_model_path("zippypoint", "coreml", directory=tmp_path)


def test_packaged_int8_model_is_used_without_export(tmp_path, monkeypatch):
    from zippypoint.model.registry import WEIGHTS_DIR
    from zippypoint.resolve import default_runtime

    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path / "cache"))
    path = exported_model_path("zippypoint", "onnx-int8")
    assert path == WEIGHTS_DIR / "zippypoint-int8.onnx"
    ir = exported_model_path("zippypoint", "openvino-int8")
    assert ir == WEIGHTS_DIR / "zippypoint-openvino-int8.xml" and ir.with_suffix(".bin").is_file()
    assert not (tmp_path / "cache").exists()
    # the fastest packaged runtime where OpenVINO is installed (it is in the base install), else the int8 ONNX:
    # the int8 IR with AMX, the 1-bit IR on an x86 CPU without (docs/isa-levels.md)
    amx = {"avx2": True, "avx512f": True, "avx512_vnni": True, "amx_int8": True}
    monkeypatch.setattr("zippypoint.machine.isa_flags", lambda: amx)
    assert default_runtime("zippypoint") == "openvino-int8"
    monkeypatch.setattr("zippypoint.machine.isa_flags", lambda: {"avx2": True, "avx512f": True, "avx512_vnni": True})
    assert default_runtime("zippypoint") == "openvino"
    assert exported_model_path("zippypoint", "openvino") == WEIGHTS_DIR / "zippypoint-openvino.xml"
    monkeypatch.setattr("zippypoint.resolve.available_runtimes", lambda: ("torch", "onnx", "onnx-int8"))
    assert default_runtime("zippypoint") == "onnx-int8"
    assert default_runtime("zippypoint-gray") in ("torch", "onnx-int8")  # no packaged model: torch where installed


def test_int8_export_of_other_weights_needs_the_data_setting_not_the_current_folder(tmp_path, monkeypatch):
    weights = tmp_path / "w.safetensors"
    save_weights(reference_model("zippypoint"), weights)
    monkeypatch.delenv("ZIPPYPOINT_DATA", raising=False)
    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="ZIPPYPOINT_DATA"):
        exported_model_path("zippypoint", "onnx-int8", weights=weights)
    assert not list((tmp_path / "cache").rglob("*.onnx"))


def test_a_replaced_packaged_ir_weights_file_is_refused(tmp_path, monkeypatch):
    import shutil

    from zippypoint.model.weights import WeightsError
    from zippypoint.runtime import model_cache

    for name in ("zippypoint-openvino-int8.xml", "zippypoint-openvino-int8.bin", "zippypoint-openvino-int8.xml.card.json",
                 "zippypoint.sha256"):
        shutil.copyfile(model_cache.packaged_dir() / name, tmp_path / name)
    bin_path = tmp_path / "zippypoint-openvino-int8.bin"
    data = bytearray(bin_path.read_bytes())
    data[100] ^= 0xFF
    bin_path.write_bytes(bytes(data))
    monkeypatch.setattr(model_cache, "packaged_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="bin"):
        model_cache.packaged_model_path("zippypoint", "openvino-int8")


def test_without_a_packaged_one_bit_ir_an_old_cpu_still_gets_the_packaged_int8_ir(monkeypatch):
    from zippypoint.resolve import default_runtime
    from zippypoint.runtime import model_cache

    real = model_cache.packaged_card
    monkeypatch.setattr(model_cache, "packaged_card", lambda preset, fmt: None if fmt == "openvino" else real(preset, fmt))
    monkeypatch.setattr("zippypoint.machine.isa_flags", lambda: {"avx2": True})
    assert default_runtime("zippypoint") == "openvino-int8"  # never an export on first use for the default path


@pytest.mark.parametrize(("flags", "one_bit"), [
    ({"avx2": True}, True),  # x86 without AVX-512 or VNNI (AMD before Zen 4, most laptops before 2022)
    ({"avx2": True, "avx_vnni": True}, True),  # Alder Lake and later
    ({"avx2": True, "avx512f": True}, True),  # AVX-512 without VNNI
    ({"avx2": True, "avx512f": True, "avx512_vnni": True, "avx512_vpopcntdq": True}, True),  # Zen 4 / 5, Ice Lake
    ({"avx2": True, "avx512f": True, "avx512_vnni": True, "amx_int8": True}, False),  # Sapphire Rapids and later
    ({"neon": True, "asimd": True, "asimddp": True}, False),  # ARM: OpenVINO has no 1-bit kernel there
    ({}, False),  # flags unknown: keep the int8 IR
])
def test_which_cpus_get_the_one_bit_ir(flags, one_bit):
    from zippypoint.machine import prefers_one_bit_ir

    assert prefers_one_bit_ir(flags) is one_bit
