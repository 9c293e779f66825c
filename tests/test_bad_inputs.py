"""A bad-input corpus generated here: each file gets a clear error, nothing crashes, no partial output is left
behind, and the good files of the same batch are done (exit code 1 overall). Runs on the packaged int8 model."""

from __future__ import annotations

import pickle
import shutil
from pathlib import PurePath

import cv2
import numpy as np
import pytest

from zippypoint.cli import main
from zippypoint.demo import sample_photo
from zippypoint.io import ImageReadError, read_image
from zippypoint.model.weights import WeightsError, read_state_dict


def _png_claiming(width: int, height: int) -> bytes:
    """A real small PNG whose IHDR says ``width`` x ``height`` (the pixel data stays tiny)."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


# file name -> (what to write, the expected error; None = a good file)
def _corpus(root):
    photo = cv2.resize(sample_photo("coffee"), (240, 160), interpolation=cv2.INTER_AREA)
    jpg = cv2.imencode(".jpg", photo)[1].tobytes()
    png = cv2.imencode(".png", photo)[1].tobytes()
    gray16 = (cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    files = {
        "good.jpg": (jpg, None),
        "good_png.png": (png, None),
        "sub/png_named.jpg": (png, None),  # a wrong extension on a real image: decoded by content
        "gray16.png": (cv2.imencode(".png", gray16)[1].tobytes(), None),  # 16-bit: scaled by 65535
        "truncated_jpg.jpg": (jpg[: len(jpg) // 2], "truncated JPEG"),
        "truncated_png.png": (png[: len(png) // 2], "not a decodable image"),
        "corrupt_png.png": (png[:200] + bytes(200) + png[400:], "not a decodable image"),
        "corrupt_jpg.jpg": (jpg[:2] + bytes(range(256)) * 4, "not a decodable image"),
        "zero.png": (b"", "0 bytes"),
        "text_named.jpg": (b"this is text, not a picture\n" * 10, "not a decodable image"),
        "bomb_png.png": (_png_claiming(100_000, 100_000), "refused before decoding"),
        "bomb_jpg.jpg": (_jpeg_claiming(65_000, 65_000), "refused before decoding"),
        "one.png": (cv2.imencode(".png", photo[:1, :1])[1].tobytes(), "--resize WxH"),
        "seven.png": (cv2.imencode(".png", photo[:7, :7])[1].tobytes(), "--resize WxH"),
        "float_out_of_range.tiff": (cv2.imencode(".tiff", photo.astype(np.float32))[1].tobytes(),
                                    "float images must be in [0, 1]"),
        "float_ok.tiff": (cv2.imencode(".tiff", photo.astype(np.float32) / 255)[1].tobytes(), None),
    }
    for name, (data, _) in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return {name: expected for name, (_, expected) in files.items()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, _corpus(root)


def test_each_bad_file_fails_alone_with_a_clear_message(corpus, tmp_path, capsys):
    root, expected = corpus
    out = tmp_path / "feats"
    code = main(["extract", str(root), "--out", str(out), "--max-keypoints", "100"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = {line.split(": ", 2)[1]: line for line in err.splitlines() if line.startswith("failed: ")}
    for name, why in expected.items():
        path = str(root / name)
        if why is None:
            assert path not in lines, lines.get(path)
            assert (out / name).with_suffix(".npz").is_file(), name
        else:
            assert why in lines[path], lines[path]
            assert lines[path].count(path) == 1  # the path is printed once
            assert not (out / name).with_suffix(".npz").exists()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(PurePath(n).with_suffix(".npz").as_posix()
                             for n, why in expected.items() if why is None)  # no partial files either
    with np.load(out / "gray16.npz") as f:
        assert 0 < len(f["scores"]) <= 100


def test_bomb_is_refused_before_the_decoder_runs(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(100_000, 100_000))

    def no_decode(*args, **kwargs):
        raise AssertionError("the decoder ran on a decompression bomb")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(ImageReadError, match="100000x100000"):
        read_image(path)


def test_nan_arrays_and_tensors_through_the_api():
    from zippypoint.resolve import build_extractor

    extractor = build_extractor("zippypoint", "onnx-int8")
    image = np.full((64, 64, 3), 0.5, np.float32)
    image[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extractor.extract(image)
    with pytest.raises(ValueError, match="NaN"):
        extractor.extract(np.where(np.isnan(image), np.inf, image))
    torch = pytest.importorskip("torch")
    from zippypoint.extractor import Extractor

    tensor = torch.full((3, 64, 64), 0.5)
    tensor[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Extractor("zippypoint", pretrained=False).extract(tensor)


def test_tampered_packaged_model_is_refused(tmp_path, monkeypatch):
    from zippypoint.model import registry
    from zippypoint.runtime.model_cache import packaged_model_path

    weights = tmp_path / "weights"
    shutil.copytree(registry.WEIGHTS_DIR, weights)
    model = weights / "zippypoint-int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    with pytest.raises(WeightsError, match="sha256 mismatch for the packaged model"):
        packaged_model_path("zippypoint", "onnx-int8")


def test_tampered_and_pickled_weights_are_refused(tmp_path, capsys):
    from zippypoint.model.registry import WEIGHTS_DIR

    shipped = WEIGHTS_DIR / "zippypoint.safetensors"
    digest = (WEIGHTS_DIR / "zippypoint.sha256").read_text().split()[0]
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray(shipped.read_bytes())
    data[-5] ^= 0x01
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        read_state_dict(tampered, sha256=digest)

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"conv.weight": [1.0, 2.0]}, protocol=4))
    pytest.importorskip("torch")
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), sample_photo("coffee"))
    out = tmp_path / "out"
    assert main(["extract", str(image), "--out", str(out), "--weights", str(evil)]) == 1
    err = capsys.readouterr().err.strip()
    assert "pickle" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.rglob("*"))
