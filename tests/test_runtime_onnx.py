"""The torch-free ONNX runtime: same output contract and options as the PyTorch extractor."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_helpers import HPATCHES, exported, reference_model

from zippypoint.runtime import OnnxExtractor

IMAGE = HPATCHES / "v_graf" / "1.ppm"


def _image():
    if IMAGE.exists():
        from zippypoint.io import read_image

        return read_image(IMAGE)[:200, :260]
    rng = np.random.default_rng(0)
    return (rng.random((200, 260, 3)) * 255).astype(np.uint8)


def _check_contract(f, width, height, max_keypoints):
    assert f["keypoints"].dtype == np.float32 and f["keypoints"].ndim == 2 and f["keypoints"].shape[1] == 2
    assert f["scores"].dtype == np.float32 and f["descriptors"].dtype == np.uint8
    n = len(f["scores"])
    assert n <= max_keypoints and f["descriptors"].shape == (n, 32) and f["keypoints"].shape == (n, 2)
    assert np.all(np.diff(f["scores"]) <= 0) and np.isfinite(f["scores"]).all()
    assert np.all(f["keypoints"] >= 0)
    assert np.all(f["keypoints"][:, 0] <= width - 1) and np.all(f["keypoints"][:, 1] <= height - 1)
    assert np.all(np.unpackbits(f["descriptors"], axis=1).sum(1) == 64)


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_output_contract(fmt):
    image = _image()
    f = OnnxExtractor(exported(fmt), max_keypoints=300).extract(image)
    assert len(f["scores"]) > 0
    _check_contract(f, image.shape[1], image.shape[0], 300)


def test_same_features_as_pytorch_extractor():
    """Full-precision preset (its dense maps match to 1e-4; the mixed preset with random weights is chaotic at
    rounding boundaries, see test_export_onnx). Random weights give almost flat scores, so NMS ties may pick
    a different cell of equal score: compare keypoint sets, not lists."""
    from zippypoint.extractor import Extractor
    from zippypoint.io import prepare_image

    image = _image()
    torch_ex = Extractor(reference_model("zippypoint-fp"), max_keypoints=400)
    onnx_ex = OnnxExtractor(exported("onnx", "zippypoint-fp"), max_keypoints=400)
    batch, _ = prepare_image(image, 3)
    ref_dense, out_dense = torch_ex.infer(batch), onnx_ex.infer(batch)
    for k in ref_dense:
        np.testing.assert_allclose(out_dense[k], ref_dense[k], atol=1e-4, rtol=0, err_msg=k)
    ref, out = torch_ex.extract(image), onnx_ex.extract(image)
    assert abs(len(out["scores"]) - len(ref["scores"])) <= 0.05 * len(ref["scores"])
    d = np.linalg.norm(ref["keypoints"][:, None] - out["keypoints"][None], axis=2)
    nearest = d.argmin(1)
    same = d[np.arange(len(nearest)), nearest] <= 1e-3
    assert same.mean() >= 0.95
    bits = np.unpackbits(out["descriptors"][nearest[same]], axis=1) == np.unpackbits(ref["descriptors"][same], axis=1)
    assert bits.mean() >= 0.999


def test_resize_maps_keypoints_to_the_input_image():
    image = _image()
    f = OnnxExtractor(exported("onnx"), resize=(128, 96), max_keypoints=100).extract(image)
    _check_contract(f, image.shape[1], image.shape[0], 100)


def test_metadata_drives_the_runtime():
    e = OnnxExtractor(exported("onnx"))
    assert e.in_channels == 3 and e.metadata.preset == "zippypoint" and e.metadata.descriptor_ones == 64


def test_the_post_processing_config_follows_a_replaced_extractor_config():
    import dataclasses

    e = OnnxExtractor(exported("onnx"), max_keypoints=50)
    first = e.postprocess_config()
    assert e.postprocess_config() is first and first.max_keypoints == 50 and first.descriptor_ones == 64
    e.config = dataclasses.replace(e.config, max_keypoints=7)  # a new config is read, not the one built before
    assert e.postprocess_config().max_keypoints == 7
    assert len(e.extract(_image())["scores"]) == 7


def test_infer_shapes_and_validation():
    e = OnnxExtractor(exported("onnx"))
    dense = e.infer(np.zeros((2, 3, 32, 48), np.float32))
    assert dense["scores"].shape == (2, 1, 4, 6) and dense["keypoints"].shape == (2, 2, 4, 6)
    assert dense["descriptors"].shape == (2, 256, 8, 12)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        e.infer(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="multiples of 8"):
        e.infer(np.zeros((1, 3, 30, 32), np.float32))
    with pytest.raises(TypeError, match="float32"):
        e.infer(np.zeros((1, 3, 32, 32), np.float64))
    with pytest.raises(TypeError, match="numpy"):
        e.infer([[0.0]])
    with pytest.raises(ValueError, match="empty"):
        e.infer(np.zeros((0, 3, 32, 32), np.float32))


def test_bad_images_are_refused(tmp_path):
    e = OnnxExtractor(exported("onnx"), max_pixels=10_000)
    with pytest.raises(ValueError):
        e.extract(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError):
        e.extract(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="exceeds"):
        e.extract(np.zeros((200, 200), np.uint8))
    with pytest.raises(TypeError):
        e.extract(12)
    with pytest.raises(ValueError):
        e.extract(np.zeros((32, 32, 2), np.uint8))


def test_zero_keypoints_is_well_typed():
    f = OnnxExtractor(exported("onnx"), max_keypoints=0).extract(_image())
    assert f["keypoints"].shape == (0, 2) and f["scores"].shape == (0,) and f["descriptors"].shape == (0, 32)
    assert f["keypoints"].dtype == np.float32 and f["descriptors"].dtype == np.uint8


def test_deterministic():
    e = OnnxExtractor(exported("onnx-int8"), intra_op_num_threads=2)
    a, b = e.extract(_image()), e.extract(_image())
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_constructor_does_not_touch_disk(tmp_path):
    e = OnnxExtractor(tmp_path / "later.onnx")  # nothing is read yet
    with pytest.raises(FileNotFoundError, match="later.onnx"):
        e.load()


def test_refuses_models_without_zippypoint_metadata(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["scores"])], "g", [x], [y])
    path = Path(tmp_path / "other.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="not a zippypoint export"):
        OnnxExtractor(path).load()


def test_config_and_overrides_are_exclusive():
    from zippypoint.extractor import ExtractorConfig

    with pytest.raises(TypeError):
        OnnxExtractor("m.onnx", config=ExtractorConfig(), max_keypoints=5)
    with pytest.raises(ValueError):
        OnnxExtractor("m.onnx", max_keypoints=-1)
