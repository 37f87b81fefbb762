"""Output paths: one folder per media, unique by construction and within the file system's limit on
one name; and no directory() output that a rerun could delete along with the checkout."""

from __future__ import annotations

import pytest

from robust_deepfake import paths
from robust_deepfake.paths import (PathCollisionError, check_distinct_folders, item_path, media_slug,
                                   unsafe_output_folder)


def test_names_that_flatten_alike_get_their_own_folders():
    """`/` -> `__` alone mapped these two people's videos to one folder, real__alice__clip.mp4."""
    one, other = media_slug("real/alice/clip.mp4"), media_slug("real/alice__clip.mp4")
    assert one != other
    assert one.startswith("real__alice__clip.mp4-") and other.startswith("real__alice__clip.mp4-")
    check_distinct_folders(["real/alice/clip.mp4", "real/alice__clip.mp4"])


@pytest.mark.parametrize("media_id", ["real/" + "p" * 200 + "/" + "v" * 196 + ".mp4",
                                      "real/" + "é" * 120 + "/clip.mp4",  # two bytes a character
                                      "fake/" + "顔" * 90 + ".png"])
def test_a_long_name_becomes_a_short_unique_folder(media_id, tmp_path):
    slug = media_slug(media_id)
    assert len(slug.encode("utf-8")) <= paths.READABLE_BYTES + 1 + paths.DIGEST_CHARS < 255
    assert slug != media_slug(media_id + "x")  # the same first bytes, another media
    path = item_path(tmp_path, media_id, 3, "png")
    path.parent.mkdir()  # the file system takes it
    assert path.name == "000003.png"


def test_a_collision_should_it_ever_happen_is_an_error(monkeypatch):
    monkeypatch.setattr(paths, "media_slug", lambda media_id: "same")
    check_distinct_folders(["a.mp4", "a.mp4"])  # one media twice (its frames) is no collision
    with pytest.raises(PathCollisionError, match="'a.mp4' and 'b.mp4' would share the output folder 'same'"):
        check_distinct_folders(["a.mp4", "b.mp4"])


def test_no_output_folder_may_be_the_checkout_results_or_above(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    protected = [tmp_path, "results", "resources"]
    for folder in ("resources/..", ".", "results", "results/demo/..", "resources", "/", str(tmp_path.parent)):
        assert unsafe_output_folder(folder, protected), folder
    for folder in ("resources/demo", "results/demo/crops/{shard}", "results/demo/fakes/x/images"):
        assert unsafe_output_folder(folder, protected) is None, folder
