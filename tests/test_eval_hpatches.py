"""Reading HPatches-layout folders, and the clear errors for malformed ones."""

import cv2
import numpy as np
import pytest

from zippypoint.eval.hpatches import HPatchesFormatError, find_sequences, load_sequence, read_homography

H_TEXT = "1 0 5\n0 1 -3\n0 0 1\n"


def make_sequence(folder, n=3, ext=".png", sizes=None):
    folder.mkdir(parents=True)
    for k in range(1, n + 1):
        w, h = (sizes or {}).get(k, (64, 48))
        cv2.imwrite(str(folder / f"{k}{ext}"), np.full((h, w, 3), 40 * k, np.uint8))
        if k > 1:
            (folder / f"H_1_{k}").write_text(H_TEXT)
    return folder


def test_reads_sequences_pairs_and_homographies(tmp_path):
    make_sequence(tmp_path / "v_b", n=3, sizes={2: (80, 60)})
    make_sequence(tmp_path / "i_a", n=2, ext=".jpg")
    (tmp_path / "notes").mkdir()  # unrelated folders are ignored
    (tmp_path / "README.txt").write_text("x")
    sequences = find_sequences(tmp_path)
    assert [s.name for s in sequences] == ["i_a", "v_b"]
    pairs = [p.id for s in sequences for p in s.pairs()]
    assert pairs == ["i_a/2", "v_b/2", "v_b/3"]
    np.testing.assert_array_equal(sequences[1].homographies[3], [[1, 0, 5], [0, 1, -3], [0, 0, 1]])
    assert [s.name for s in find_sequences(tmp_path, subset="v")] == ["v_b"]


def test_a_single_sequence_folder_is_accepted_as_data(tmp_path):
    folder = make_sequence(tmp_path / "v_x")
    assert [s.name for s in find_sequences(folder)] == ["v_x"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "1.png").unlink(), "missing image 1"),
        (lambda f: (f / "H_1_3").unlink(), "3.png has no homography file H_1_3"),
        (lambda f: (f / "H_1_4").write_text(H_TEXT), "H_1_4 has no image 4"),
        (lambda f: (f / "H_1_2").write_text("1 0 0\n0 1 0\n0 0\n"), "expected 9 numbers"),
        (lambda f: (f / "H_1_2").write_text("1 0 0\n0 one 0\n0 0 1\n"), "non-numeric"),
        (lambda f: (f / "H_1_2").write_text("1 2 3\n2 4 6\n0 0 1\n"), "singular"),
        (lambda f: (f / "H_1_2").write_text("1 0 nan\n0 1 0\n0 0 1\n"), "NaN or Inf"),
        (lambda f: cv2.imwrite(str(f / "2.ppm"), np.zeros((8, 8, 3), np.uint8)), "image 2 exists twice"),
    ],
)
def test_malformed_sequences_name_the_problem(tmp_path, damage, message):
    folder = make_sequence(tmp_path / "v_bad")
    damage(folder)
    with pytest.raises(HPatchesFormatError, match=message):
        find_sequences(tmp_path)


def test_empty_or_missing_data_folders(tmp_path):
    with pytest.raises(HPatchesFormatError, match="no HPatches sequences"):
        find_sequences(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_sequences(tmp_path / "nowhere")
    only_one = tmp_path / "v_one"
    only_one.mkdir()
    cv2.imwrite(str(only_one / "1.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(HPatchesFormatError, match="no pairs"):
        load_sequence(only_one)


def test_read_homography_accepts_hpatches_formatting(tmp_path):
    path = tmp_path / "H_1_2"
    path.write_text("  0.87976964 0.31245438 -39.430589\n-0.18389418 0.93847198 153.15784 \n"
                    "0.00019641425 -1.6015275e-05 1\n")
    assert read_homography(path).shape == (3, 3)
