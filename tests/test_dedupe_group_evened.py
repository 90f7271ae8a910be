"""Two copies of a smooth close-up, each matched to its photo, do not keep each other out of its cluster.

A close-up of one lesion on plain skin has few keypoints. Each of its copies (a sticker on it, a caption under
it, a watermarked or mirrored crop) can still match the photo, but two such copies may share only 7-9 agreeing
keypoints as they are. That "different" kept one copy out of the photo's cluster, free to land in another
split. Inside the group, such a pair is now looked at again with contrast evened out
(`curate.dedupe.pairs._both_matched`), where the copies share a hundred and more; different close-ups stay apart.
"""

from __future__ import annotations

from pathlib import Path

from dedupe_corpus import dedupe_files
from photo_corpus import leak, skin_closeups

KEEP = (3, 9, 15, 27)  # 15's sticker copy was kept out by its two cropped copies
KINDS = ("watermark_crop", "mirror_crop", "caption", "sticker", "frame_rescale")


def test_copies_of_a_closeup_matched_to_it_join_it_and_nothing_else(tmp_path: Path):
    files = {}
    for k, img in skin_closeups(KEEP).items():
        files[f"lesion{k:02d}.jpg"] = img
        for j, kind in enumerate(KINDS):
            files[f"lesion{k:02d}_{kind}.jpg"] = leak(img, kind, k * 10 + j)
    cluster, _, pairs = dedupe_files(tmp_path, files)
    apart = [n for n in files if "_" in n and cluster[n] != cluster[n.split("_")[0] + ".jpg"]]
    assert not apart, f"copies left apart from their photo: {apart}"
    assert len(set(cluster.values())) == len(KEEP), "different close-ups were merged"
    evened = {frozenset((a, b)) for a, b, kind, why in pairs if kind == "hash" and "contrast evened" in why}
    for crop in ("mirror_crop", "watermark_crop"):  # each kept the sticker copy out before
        assert frozenset(("lesion15_sticker.jpg", f"lesion15_{crop}.jpg")) in evened, f"sticker and {crop} not joined"
