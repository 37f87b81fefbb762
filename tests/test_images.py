"""The one image reader every stage uses: errors name the file, colours and sizes are as stated."""

import cv2
import numpy as np
import pytest

from robust_deepfake.images import MediaError, read_image, read_rgb


def test_read_image_names_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(MediaError, match=r"absent.png: file not found"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MediaError, match=r"broken.png: unreadable image"):
        read_image(tmp_path / "broken.png")


def test_grey_files_become_three_channels_and_rgb_is_resized_by_area(tmp_path):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    assert read_image(tmp_path / "grey.png").shape == (64, 64, 3)
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    bgr[:4, :4, 2] = 100  # some red in one quarter
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = read_rgb(tmp_path / "blue.png", size=2)
    assert rgb.shape == (2, 2, 3) and rgb[..., 2].min() == 200
    assert rgb[0, 0, 0] == 100 and rgb[1, 1, 0] == 0  # area interpolation averages each 4x4 block
    assert read_rgb(tmp_path / "blue.png").shape == (8, 8, 3)
