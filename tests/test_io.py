"""Robust image reading and conversion (STYLE.md checklist)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zippypoint.io import (
    ImageReadError,
    PrepInfo,
    image_header_size,
    list_images,
    prepare_image,
    read_image,
    to_float_channels,
    working_size,
)


def test_missing_path_directory_empty_and_text_files(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="0 bytes"):
        read_image(empty)
    text = tmp_path / "text.png"
    text.write_text("this is not an image")
    with pytest.raises(ImageReadError, match="not a decodable image"):
        read_image(text)


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((300, 400), np.uint8))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded an image above the pixel limit")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(ImageReadError, match="above the limit of 100000 .refused before decoding"):
        read_image(path, max_pixels=100_000)


def test_uint16_is_scaled_by_65535():
    img = np.full((32, 40), 65535, np.uint16)
    img[0, 0] = 0
    chw = to_float_channels(img, 1)
    assert chw.shape == (1, 32, 40) and chw[0, 1, 1] == 1.0 and chw[0, 0, 0] == 0.0


def test_bgra_drops_alpha_and_bgr_becomes_rgb():
    img = np.zeros((24, 24, 4), np.uint8)
    img[..., 0] = 255  # blue
    img[..., 3] = 7
    chw = to_float_channels(img, 3)
    assert chw.shape == (3, 24, 24)
    assert chw[2].min() == 1.0 and chw[0].max() == 0.0  # blue ends in the last RGB channel


@pytest.mark.parametrize("bad, err", [
    (np.zeros((24, 24, 2), np.uint8), ValueError),  # 2 channels
    (np.zeros((2, 24, 24, 3), np.uint8), ValueError),  # wrong rank
    (np.zeros((0, 24), np.uint8), ValueError),  # empty
    (np.full((24, 24), np.nan, np.float32), ValueError),  # NaN
    (np.full((24, 24), np.inf, np.float32), ValueError),  # Inf
    (np.full((24, 24), 2.0, np.float32), ValueError),  # float outside [0, 1]
    (np.zeros((24, 24), np.int32), TypeError),  # unsupported dtype
    ([[0, 1]], TypeError),  # not an array
])
def test_bad_arrays_raise_specific_errors(bad, err):
    with pytest.raises(err):
        to_float_channels(bad, 3)


def test_too_small_image_is_refused():
    with pytest.raises(ValueError, match="at least"):
        prepare_image(np.zeros((16, 100), np.uint8), 1)


def test_non_multiple_of_8_is_padded_and_mapped_back():
    batch, info = prepare_image(np.zeros((61, 99, 3), np.uint8), 3)
    assert batch.shape == (1, 3, 64, 104) and batch.dtype == np.float32
    assert info == PrepInfo((99, 61), (99, 61), (104, 64))
    kp = np.array([[10.0, 20.0], [103.0, 63.0]], np.float32)
    out = info.to_original(kp)
    assert np.allclose(out[0], kp[0]) and out[1].tolist() == [98.0, 60.0]  # clipped into the image


def test_resize_maps_keypoints_with_pixel_centre_convention():
    _, info = prepare_image(np.zeros((480, 640), np.uint8), 1, resize="320x240")
    assert info.resized_size == (320, 240)
    out = info.to_original(np.array([[-0.5 + 160, -0.5 + 120]], np.float32))
    assert np.allclose(out, [[-0.5 + 320, -0.5 + 240]])


def test_list_images_sorted_recursive_and_file(tmp_path):
    for rel in ["b/2.PNG", "a/1.jpg", "top.jpeg", "notes.txt", ".hidden/3.png", "a/.4.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list_images(tmp_path) == [tmp_path / "a/1.jpg", tmp_path / "b/2.PNG", tmp_path / "top.jpeg"]
    assert list_images(tmp_path, recursive=False) == [tmp_path / "top.jpeg"]
    assert list_images(tmp_path / "a/1.jpg") == [tmp_path / "a/1.jpg"]
    (tmp_path / "empty").mkdir()
    assert list_images(tmp_path / "empty") == []
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_images(tmp_path / "missing")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".ppm", ".pgm", ".tif", ".webp"])
def test_header_size_without_decoding(tmp_path, ext):
    path = tmp_path / f"im{ext}"
    gray = ext == ".pgm"
    cv2.imwrite(str(path), np.zeros((37, 53) if gray else (37, 53, 3), np.uint8))
    assert image_header_size(path) == (53, 37)


def test_jpeg_header_behind_exif_segment(tmp_path):
    ok, buf = cv2.imencode(".jpg", np.zeros((20, 30, 3), np.uint8))
    data = buf.tobytes()
    app1 = b"\xff\xe1" + (2 + 40).to_bytes(2, "big") + b"Exif\x00\x00" + b"\xff\xc0" * 17  # fake SOF inside EXIF
    path = tmp_path / "exif.jpg"
    path.write_bytes(data[:2] + app1 + data[2:])
    assert image_header_size(path) == (30, 20)


def test_max_size_downscales_and_maps_back():
    assert working_size(6000, 4000, max_size=2048) == (2048, 1365)
    assert working_size(600, 400, max_size=2048) == (600, 400)
    assert working_size(6000, 4000, resize="640x480", max_size=2048) == (640, 480)
    assert working_size(6000, 4000, max_size=0) == (6000, 4000)
    img = np.zeros((400, 1000, 3), np.uint8)
    batch, info = prepare_image(img, 3, max_size=500)
    assert batch.shape == (1, 3, 200, 504) and info.resized_size == (500, 200) and info.original_size == (1000, 400)
    corner = info.to_original(np.array([[499.0, 199.0]], np.float32))
    np.testing.assert_allclose(corner, [[998.5, 398.5]], atol=1e-3)  # pixel-centre convention
    with pytest.raises(ValueError, match="max_size"):
        working_size(10, 10, max_size=-1)


def test_gray_from_8bit_colour_is_opencv_gray_within_half_a_level():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    chw = to_float_channels(img, 1)
    exact = img.astype(np.float64) @ np.array([0.114, 0.587, 0.299]) / 255.0
    assert chw.shape == (1, 24, 32) and chw.dtype == np.float32
    assert np.abs(chw[0] - exact).max() <= 0.5 / 255 + 1e-6
    bgra = np.concatenate([img, np.full((24, 32, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_float_channels(bgra, 1), chw)
