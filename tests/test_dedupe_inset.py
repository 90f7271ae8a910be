"""A photo shown inside a light chat app's screenshot or printed on a page photographed on a desk
(`curate.dedupe.inset`): the content box is cut to the photo, so screenshots of one app, or pages of one template,
around different photos are no longer one cluster and each joins its photo; photos, tiles and close-ups on plain
skin keep their boxes. End to end on real photo bytes, and the box alone."""

from __future__ import annotations

import numpy as np
import pytest
from dedupe_corpus import photo, photos_and_copies
from photo_corpus import CHAT, PRINTED, chat_screenshot, closeup, originals, printed_page
from PIL import Image
from test_dedupe_pages import _as_dedupe_decodes

from curate.dedupe.content import content_box
from curate.dedupe.inset import inset

PHOTOS = originals()
SHOWN = {  # whole photos, close-ups of one lesion on plain skin, synthetic skin photos
    **{f"p{k}": PHOTOS[k] for k in (0, 1, 3, 5, 8, 9, 60)},
    **{f"c{k}": closeup(k) for k in (3, 13, 21, 34)},
    **{f"s{k}": photo(k) for k in (1, 2)},
}


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", [n for n in SHOWN if n != "p8"])
def test_a_chat_screenshot_is_cut_to_the_photo(name, side):
    """Every row through the photo crosses the app's background, its bubble and the photo: no band rule cuts
    that, and the whole screen was the box. Now the box lies inside the photo, to a few pixels of the decoded
    screen, and holds most of it (a plain edge of the photo may be left out, as a crop: no app is in it; the
    moon's plain side is cut as a band, as on the photo itself: it is in the end-to-end test below)."""
    screen, (x0, y0, x1, y1) = chat_screenshot(SHOWN[name], side)
    w, h = CHAT
    assert _inside_and_most(content_box(_as_dedupe_decodes(screen)).fractions(), (x0 / w, y0 / h, x1 / w, y1 / h))


def _inside_and_most(box, photo, slack=0.02, least=0.75) -> bool:
    """Whether `box` (fractions) lies inside `photo` (fractions) to `slack` and holds `least` of its area."""
    (bx0, by0, bx1, by1), (px0, py0, px1, py1) = box, photo
    inside = bx0 >= px0 - slack and by0 >= py0 - slack and bx1 <= px1 + slack and by1 <= py1 + slack
    return inside and (bx1 - bx0) * (by1 - by0) >= least * (px1 - px0) * (py1 - py0)


PRINTS = [n for n in SHOWN if n not in ("p60", "s1", "s2")]  # photos large enough on the page (`inset.LEAST`)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", PRINTS)
def test_a_photographed_page_is_cut_to_its_photo(name, seed):
    """A handout printed with the photo under a heading, above a caption and lines of text, photographed on a
    desk in perspective with blur, noise and a darker edge: the box was the page with its lettering (or the
    whole picture); now it lies inside the photo's corners and holds most of them."""
    page, (x0, y0, x1, y1) = printed_page(SHOWN[name], seed)
    box = content_box(_as_dedupe_decodes(page)).fractions()
    assert _inside_and_most(box, (x0 / PRINTED, y0 / PRINTED, x1 / PRINTED, y1 / PRINTED))


@pytest.mark.parametrize("name", ["p60", "s1", "s2"])
def test_a_small_photo_on_a_page_is_not_taken_for_its_text(name):
    """A photo under `inset.LEAST` of the picture is not found on its page, and the block of text under it, as
    large and as square, is not taken for a photo either (most of it is the paper between the lines): the box
    keeps the photo."""
    page, (x0, y0, x1, y1) = printed_page(SHOWN[name], 1)
    bx0, by0, bx1, by1 = content_box(_as_dedupe_decodes(page)).fractions()
    assert bx0 <= x0 / PRINTED and by0 <= y0 / PRINTED and bx1 >= x1 / PRINTED and by1 >= y1 / PRINTED


def test_photos_and_close_ups_keep_their_box(monkeypatch):
    """The corpora's photos and tiles, close-ups on plain skin and synthetic skin photos, as stored, halved and
    mirrored, decoded as dedupe decodes them: the inset rule finds no photo inside any of them, so their boxes
    are the band rule's. A lesion on plain skin is left by its skin as a photo is by a screen, but as a blob
    whose edge fades (`inset.SHARP`), and a photo's content reaches its edge."""
    from curate.dedupe import content

    pictures = PHOTOS + [closeup(k) for k in range(30)] + [photo(k) for k in range(30)]
    arrays = []
    for img in pictures:
        for copy in (img, img.resize((img.width // 2, img.height // 2)), img.transpose(Image.FLIP_LEFT_RIGHT)):
            arrays.append(_as_dedupe_decodes(copy))
    found = [content_box(a).fractions() for a in arrays]
    monkeypatch.setattr(content, "inset", lambda _: None)
    assert [k for k, a in enumerate(arrays) if content_box(a).fractions() != found[k]] == []


def test_a_lesion_on_plain_skin_is_no_inset():
    """The hard case on its own: close-ups of one lesion on plain skin, smooth or textured, leave their skin as
    the surroundings and the lesion inside, but never as a photo with straight, sharp sides."""
    for seed in range(40):
        for texture in (0.0, 0.02):
            assert inset(np.asarray(closeup(seed, texture=texture).convert("RGB"))) is None, (seed, texture)


def test_odd_pictures_have_no_inset():
    """A single colour, a tiny picture, a grey one and a picture with an alpha plane: None or a box, no error."""
    assert inset(np.full((120, 80, 3), 200, np.uint8)) is None
    assert inset(np.zeros((10, 10, 3), np.uint8)) is None
    screen, _ = chat_screenshot(PHOTOS[0])
    grey = np.asarray(screen.convert("L"))
    assert inset(grey) == inset(grey[..., None])
    rgba = np.asarray(screen.convert("RGBA"))
    assert content_box(rgba).fractions() == content_box(rgba[..., :3]).fractions()


@pytest.mark.slow
def test_different_photos_in_one_light_chat_app_stay_apart_and_each_joins_its_photo(tmp_path):
    """Screenshots of one light chat app around different photos and close-ups: before the photo inside was
    found, `bench/unseen_edits.py`'s seven were one cluster (21 false pairs, on the app's header, bubbles and
    input bar) and none joined its photo."""
    shown = {n: SHOWN[n] for n in ("p0", "p3", "p8", "p9", "p60", "c3", "c21", "s1")}
    chat = lambda k, img: chat_screenshot(img, "left" if k % 2 else "right")[0]  # noqa: E731
    cluster, photo_of, _ = photos_and_copies(tmp_path, shown, chat, "chat.jpg")
    for n in shown:
        assert cluster[f"{n}.jpg"] == cluster[f"{n}_chat.jpg"], n
    assert _one_photo_each(cluster, photo_of)


def _one_photo_each(cluster: dict[str, str], photo_of: dict[str, str]) -> bool:
    """Whether no cluster holds two different photos' files."""
    return all(len({photo_of[f] for f in cluster if cluster[f] == key}) == 1 for key in set(cluster.values()))


@pytest.mark.slow
def test_different_photos_on_pages_of_one_template_stay_apart_and_each_joins_its_photo(tmp_path):
    """Photographed handouts of one template around different photos and close-ups: before the photo on the page
    was found, `bench/unseen_edits.py`'s five such pages were one cluster (10 false pairs, on the page's heading
    and lines) and one of seven joined its photo. A close-up on plain skin keeps few keypoints through the
    print's blur and noise: it joins its photo or is listed with it to review, never with another photo."""
    shown = {n: SHOWN[n] for n in ("p0", "p1", "p5", "p9", "c3", "c13")}
    page = lambda k, img: printed_page(img, k)[0]  # noqa: E731
    cluster, photo_of, pairs = photos_and_copies(tmp_path, shown, page, "page.jpg")
    review = {frozenset((a, b)) for a, b, kind, _ in pairs if kind == "review"}
    for n in shown:
        joined = cluster[f"{n}.jpg"] == cluster[f"{n}_page.jpg"]
        assert joined or (n.startswith("c") and frozenset((f"{n}.jpg", f"{n}_page.jpg")) in review), n
    assert _one_photo_each(cluster, photo_of)
