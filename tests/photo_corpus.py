"""Real photos, their re-posted copies and their look-alikes, for dedupe tests and `bench/dedupe.py`.

Originals are the photographs shipped inside scikit-image (`skimage.data`:
astronaut, coffee, chelsea, rocket, retina, hubble …) and tiles cut from the
large ones, so every picture carries real camera texture. `LEAKS` are the
re-posting edits seen on real lesion photos (issue 9): frames and padding of
several colours and widths, watermark + crop, mirror + crop, frame + rescale, and
those a second look found: a caption strip, a screenshot of one web page (the same
page around different photos) or of one phone app, a sticker, a thumbnail-sized JPEG,
a perspective warp.
`AUGMENTS` are what a script growing a dataset does (turns, shear, hue, zoom, jitter + flip);
`EDITS` are edits none of the corpora was tuned on (tone curves, noise, squeezes, small turns ...);
`RETOUCHES` what a journal, an app or a forum does to a photo, added after every threshold was set
(greyscale and sepia prints, a colour cast, an app's filter, sharpening, denoising, heavy JPEG, a teaching
figure's ring and arrow, a tight crop ...).
The hard negatives are `closeup(seed)` (one lesion-like blob on plain skin,
a different blob per seed), `same_frame` (different photos in one frame), `stamp` (a stock
site's watermark), `with_ruler` (one clinic's measuring ruler beside different lesions; `with_chart`, its colour
chart, a known gap), `collage`
(several different photos in one figure, each of which may be in the catalogue on its own), `banner`
(one news site's banner across the foot of every photo it serves) and `avatar` (a round crop on white).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

# skimage.data.cat() is chelsea again (one photo): listed once, or the corpus would call one photo two
COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
GREY_PHOTOS = ("camera", "moon", "coins", "clock", "brick", "grass", "gravel", "cell")
FRAME_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "cream": (240, 228, 200),
    "teal": (40, 120, 130),
}


@cache
def _load(name: str) -> Image.Image:
    import skimage.data  # test and benchmark dependency only

    a = getattr(skimage.data, name)()
    img = Image.fromarray(a)
    return img.convert("RGB")


def tiles(name: str, side: int) -> list[Image.Image]:
    """Non-overlapping `side` x `side` tiles of a photo (different pictures, same camera and scene)."""
    img = _load(name)
    out = [
        img.crop((x, y, x + side, y + side))
        for y in range(0, img.height - side + 1, side)
        for x in range(0, img.width - side + 1, side)
    ]
    return [t for t in out if np.asarray(t.convert("L")).std() >= 12]  # not the black corners of a fundus photo


TILED = {
    "retina": 256,
    "hubble_deep_field": 160,
    "astronaut": 160,
    "coffee": 160,
    "immunohistochemistry": 160,
    "rocket": 160,
    "camera": 160,
    "brick": 160,
    "gravel": 160,
    "moon": 160,
}  # not skimage's grass: a synthesised texture that repeats its own patches (two patches 200 px
# apart correlate 0.85), so two of its tiles can share content: not different pictures


def originals(limit: int | None = None) -> list[Image.Image]:
    """Distinct real photos: whole pictures first, then non-overlapping tiles of the large ones
    (one tile size per photo; a tile is under a tenth of its photo, a different picture)."""
    out = [_load(n) for n in COLOUR_PHOTOS + GREY_PHOTOS]
    for n, side in TILED.items():
        out.extend(tiles(n, side))
    return out[:limit] if limit else out


# --- re-posting edits --------------------------------------------------------------


def frame(img: Image.Image, colour: str, width: float) -> Image.Image:
    """A uniform frame `width` (share of the shorter side) on every side."""
    b = max(2, round(min(img.size) * width))
    out = Image.new("RGB", (img.width + 2 * b, img.height + 2 * b), FRAME_COLOURS[colour])
    out.paste(img, (b, b))
    return out


def pad(img: Image.Image, colour: str, aspect: float) -> Image.Image:
    """Padding to a wider (or taller) aspect ratio, content centred or to one side."""
    w, h = img.size
    if aspect >= w / h:
        out = Image.new("RGB", (round(h * aspect), h), FRAME_COLOURS[colour])
        out.paste(img, ((out.width - w) // 3, 0))
    else:
        out = Image.new("RGB", (w, round(w / aspect)), FRAME_COLOURS[colour])
        out.paste(img, (0, (out.height - h) // 2))
    return out


def crop(img: Image.Image, rng: np.random.Generator, most: float = 0.15) -> Image.Image:
    w, h = img.size
    fx, fy = rng.uniform(0.04, most), rng.uniform(0.04, most)
    x0, y0 = round(w * fx * rng.uniform()), round(h * fy * rng.uniform())
    return img.crop((x0, y0, x0 + round(w * (1 - fx)), y0 + round(h * (1 - fy))))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def watermark(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    d = ImageDraw.Draw(out)
    font = _font(max(10, img.height // 12))
    y = round(img.height * rng.uniform(0.55, 0.85))
    d.text(
        (round(img.width * 0.05), y),
        "© dermatlas.example",
        fill=(255, 255, 255),
        font=font,
        stroke_width=1,
        stroke_fill=(0, 0, 0),
    )
    return out


def caption(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A strip of lettering added above or below the photo (a figure caption, a social-media handle),
    white or black, 10-20 % of the height."""
    w, h = img.size
    strip = round(h * rng.uniform(0.10, 0.20))
    dark = bool(rng.integers(2))
    top = bool(rng.integers(2))
    out = Image.new("RGB", (w, h + strip), (20, 20, 20) if dark else (255, 255, 255))
    out.paste(img.convert("RGB"), (0, strip if top else 0))
    text = "@derm_cases  #mpox  day 5" if top else "Fig. 2: vesiculopustular lesions, day 5"
    y = (0 if top else h) + strip // 4
    ImageDraw.Draw(out).text(
        (round(w * 0.04), y), text, fill=(255, 255, 255) if dark else (0, 0, 0), font=_font(max(9, strip // 3))
    )
    return out


PAGE = (480, 720)  # the web page every `web_page` copy sits on


def web_page(img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
    """The photo as a screenshot of one fixed web page: a header bar and a footer of lettering, the photo
    (shrunk to fit, never enlarged) centred on a light page. Different photos come out with the same page
    around them, which neither a hash nor local features may take for the photo."""
    w, h = PAGE
    out = Image.new("RGB", PAGE, (245, 245, 245))
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, w, 70), fill=(30, 80, 160))
    d.text((16, 22), "DermAtlas  |  Case library  |  Search", fill=(255, 255, 255), font=_font(20))
    d.rectangle((0, h - 120, w, h), fill=(230, 230, 235))
    lines = ("Diagnosis: see discussion", "Submitted by: anonymous", "Views: 1,024  Likes: 33", "Share  Save  Report")
    for k, line in enumerate(lines):
        d.text((16, h - 110 + k * 26), line, fill=(60, 60, 60), font=_font(16))
    room = (w - 40, h - 70 - 120 - 40)
    photo = img.convert("RGB")
    photo.thumbnail(room)
    out.paste(photo, (20 + (room[0] - photo.width) // 2, 90 + (room[1] - photo.height) // 2))
    return out


PHONE = (360, 780)  # the phone screen every `app_screenshot` copy was taken on


def app_screenshot(img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
    """The photo as a phone screenshot of one dark app: a status bar and a title line above, a line of
    actions below, the photo (shrunk to the screen's width, never enlarged) in the middle of a near-black
    screen. A tall picture: sampled every other pixel for its content box, its rows were too short to
    read as lettering, and the screen was taken for the photo (and different photos for each other)."""
    w, h = PHONE
    out = Image.new("RGB", PHONE, (18, 18, 18))
    d = ImageDraw.Draw(out)
    d.text((12, 8), "9:41          LTE  87%", fill=(240, 240, 240), font=_font(14))
    d.text((12, 50), "< Back      Photo 3 of 12", fill=(240, 240, 240), font=_font(16))
    d.text((12, h - 50), "Like   Comment   Share   Save", fill=(200, 200, 200), font=_font(16))
    room = (w, h - 220)
    photo = img.convert("RGB")
    photo.thumbnail(room)
    out.paste(photo, ((w - photo.width) // 2, 110 + (room[1] - photo.height) // 2))
    return out


CHAT = (375, 812)  # a light chat app's screen (`chat_screenshot`)
BUBBLE = 232  # px: the widest a photo in one of its bubbles is shown


def chat_screenshot(img: Image.Image, side: str = "left") -> tuple[Image.Image, tuple[int, int, int, int]]:
    """`img` sent in a light chat app, as a screenshot, and where the photo lies in it (x0, y0, x1, y1): a
    coloured header with a contact's name, message bubbles of lettering above and below, the photo shrunk into a
    tinted bubble on the `side` of the sender with a time under it, an input bar. Every row through the photo
    crosses the app's background, the bubble's margin and the photo, so no band of one colour is left on a side:
    the whole screen was the box, and screenshots of one app around different photos were merged on the app's
    own keypoints (`bench/unseen_edits.py`: 21 false pairs), none with its photo (`curate.dedupe.inset`)."""
    w, h = CHAT
    out = Image.new("RGB", CHAT, (244, 241, 236))
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, w, 92), fill=(38, 92, 160))
    d.text((16, 10), "10:24", fill="white", font=_font(14))
    d.ellipse((16, 44, 52, 80), fill=(170, 190, 215))
    d.text((64, 46), "Clinic triage", fill="white", font=_font(17))
    d.text((64, 68), "typing...", fill=(215, 228, 245), font=_font(12))
    d.rounded_rectangle((w - 262, 110, w - 12, 162), 12, fill=(255, 255, 255))
    d.text((w - 250, 118), "Could you send a photo", fill=(30, 30, 30), font=_font(14))
    d.text((w - 250, 138), "of the spot, please?", fill=(30, 30, 30), font=_font(14))
    photo = img.convert("RGB")
    photo.thumbnail((BUBBLE, 300))
    bx = 12 if side == "left" else w - 12 - photo.width - 16
    d.rounded_rectangle((bx, 180, bx + photo.width + 16, 180 + photo.height + 40), 14, fill=(214, 236, 255))
    at = (bx + 8, 188, bx + 8 + photo.width, 188 + photo.height)
    out.paste(photo, at[:2])
    d.text((bx + photo.width - 40, 188 + photo.height + 10), "10:31", fill=(90, 110, 130), font=_font(11))
    y = 180 + photo.height + 60
    d.rounded_rectangle((w - 282, y, w - 12, y + 52), 12, fill=(255, 255, 255))
    d.text((w - 270, y + 8), "Thanks, the team will look", fill=(30, 30, 30), font=_font(14))
    d.text((w - 270, y + 28), "at it this afternoon.", fill=(30, 30, 30), font=_font(14))
    d.rectangle((0, h - 64, w, h), fill=(250, 250, 250))
    d.rounded_rectangle((12, h - 52, w - 64, h - 14), 19, outline=(200, 200, 200), width=2)
    d.text((28, h - 42), "Message", fill=(160, 160, 160), font=_font(15))
    d.ellipse((w - 52, h - 54, w - 12, h - 14), fill=(38, 92, 160))
    return out, at


PRINTED = 760  # px: the side of a photographed printed page (`printed_page`)


def printed_page(img: Image.Image, seed: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """`img` printed on a handout page of one template (a heading, the photo, a caption and lines of text) and
    photographed on a desk: the page turned a little in perspective (each corner moved by up to 4 % of the
    picture, `seed`), the lens's blur, sensor noise and a darker edge; and the box of the photo's corners in it.
    The page is no band on any side: the whole picture was the box, and pages of one template around different
    photos were merged on the page's lettering (`bench/unseen_edits.py`: 10 false pairs, `curate.dedupe.inset`)."""
    rng = np.random.default_rng(seed)
    pw, ph = 600, 820
    page = Image.new("RGB", (pw, ph), (248, 246, 240))
    d = ImageDraw.Draw(page)
    d.text((48, 36), "Patient information leaflet", fill=(20, 20, 20), font=_font(26))
    photo = img.convert("RGB")
    photo.thumbnail((500, 400))
    px, py = (pw - photo.width) // 2, 96
    page.paste(photo, (px, py))
    y = py + photo.height + 24
    d.text((48, y), "Figure 2. What to look for", fill=(40, 40, 40), font=_font(16))
    for k in range(7):
        d.text(
            (48, y + 40 + 26 * k),
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit"[: 40 + k],
            fill=(60, 60, 60),
            font=_font(15),
        )
    side = 900
    dst = [(150, 40), (770, 70), (800, 860), (110, 830)]
    dst = [(x + rng.uniform(-36, 36), y_ + rng.uniform(-36, 36)) for x, y_ in dst]
    src = [(0, 0), (pw, 0), (pw, ph), (0, ph)]
    rows, rhs = [], []  # the homography taking the desk's points to the page's (PIL's convention)
    for (x, y_), (u, v) in zip(dst, src, strict=True):
        rows += [[x, y_, 1, 0, 0, 0, -u * x, -u * y_], [0, 0, 0, x, y_, 1, -v * x, -v * y_]]
        rhs += [u, v]
    coeffs = tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))
    desk = Image.new("RGB", (side, side), (70, 84, 96))
    desk.paste(
        page.transform((side, side), Image.PERSPECTIVE, coeffs, Image.BICUBIC),
        (0, 0),
        Image.new("L", page.size, 255).transform((side, side), Image.PERSPECTIVE, coeffs, Image.BICUBIC),
    )
    a = np.asarray(desk.filter(ImageFilter.GaussianBlur(1.2)), np.float64)
    yy, xx = np.mgrid[0:side, 0:side] / side - 0.5
    a *= (1 - 0.5 * (xx**2 + yy**2))[..., None]  # the lens's darker edge
    a += rng.normal(0, 4, a.shape)
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).resize((PRINTED, PRINTED), Image.LANCZOS)
    inverse = np.linalg.inv(np.array([*coeffs, 1.0]).reshape(3, 3))  # page -> desk
    corners = []
    for u, v in [(px, py), (px + photo.width, py), (px + photo.width, py + photo.height), (px, py + photo.height)]:
        x, y_, z = inverse @ (u, v, 1.0)
        corners.append((x / z * PRINTED / side, y_ / z * PRINTED / side))
    xs, ys = zip(*corners, strict=True)
    return out, (round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))


VIEWERS = {  # theme -> (screen size, screen colour, ink): two phones' photo viewers (`phone_viewer`)
    "dark": ((390, 844), (0, 0, 0), (255, 255, 255)),
    "light": ((360, 780), (255, 255, 255), (20, 20, 20)),
}


def phone_viewer(img: Image.Image, theme: str = "dark") -> Image.Image:
    """`img` as a screenshot of a phone's photo viewer (`VIEWERS`): the photo fitted to the screen's width
    in the middle, a status bar above (the time at one end, the battery at the other), a row of four icons
    and the home indicator below, on a black or a white screen. No line of lettering: the marks are too
    sparse to read as text, so the whole screen was the content box, and different close-ups shown in one
    viewer, alike in every pixel but the photo's, correlated 0.96-0.999 as thumbnails (a hard negative)."""
    (w, h), screen, ink = VIEWERS[theme]
    out = Image.new("RGB", (w, h), screen)
    d = ImageDraw.Draw(out)
    d.text((24, 14), "9:41", fill=ink, font=_font(16))
    d.text((w - 78, 14), "87%", fill=ink, font=_font(14))
    d.rounded_rectangle((w - 38, 15, w - 14, 27), radius=3, outline=ink, width=2)  # the battery
    for k in range(4):  # share, favourite, edit, delete
        cx, cy = round(w * (2 * k + 1) / 8), h - 72
        if k % 2:
            d.ellipse((cx - 11, cy - 11, cx + 11, cy + 11), outline=ink, width=2)
        else:
            d.rounded_rectangle((cx - 10, cy - 11, cx + 10, cy + 11), radius=4, outline=ink, width=2)
    d.rounded_rectangle((w // 2 - 67, h - 14, w // 2 + 67, h - 9), radius=3, fill=ink)  # the home indicator
    photo = img.convert("RGB")
    f = min(w / photo.width, (h - 200) / photo.height)
    photo = photo.resize((max(1, round(photo.width * f)), max(1, round(photo.height * f))), Image.LANCZOS)
    out.paste(photo, ((w - photo.width) // 2, (h - photo.height) // 2))
    return out


def sticker(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A solid emoji-like disc over a sixth of each side (a privacy sticker)."""
    out = img.convert("RGB")
    w, h = out.size
    x, y = rng.uniform(0.2, 0.65) * w, rng.uniform(0.2, 0.65) * h
    ImageDraw.Draw(out).ellipse((x, y, x + w / 6, y + h / 6), fill=(250, 200, 0))
    return out


def small_jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A thumbnail-sized copy (110 px), heavily compressed."""
    out = img.convert("RGB")
    out.thumbnail((110, 110))
    return reencode(out, int(rng.integers(30, 45)))


def perspective(img: Image.Image, rng: np.random.Generator, most: float = 0.05) -> Image.Image:
    """A photo of the photo: each corner moved inwards by up to `most` of the side."""
    w, h = img.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [
        (x + (1 if x == 0 else -1) * w * most * rng.uniform(), y + (1 if y == 0 else -1) * h * most * rng.uniform())
        for x, y in corners
    ]
    rows, rhs = [], []  # the homography taking the output's corners to the input's (PIL's convention)
    for (x, y), (u, v) in zip(moved, corners, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return img.convert("RGB").transform((w, h), Image.PERSPECTIVE, tuple(coeffs), Image.BICUBIC)


def rotated_canvas(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Turned by 20-40 degrees on a canvas that holds it all, the corners white, black or grey (a
    dataset's augmented copy, a re-post turned to fit)."""
    colour = FRAME_COLOURS[_pick(rng, ["white", "black", "grey"])]
    angle = float(rng.uniform(20, 40)) * _pick(rng, [-1, 1])
    return img.convert("RGB").rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=colour)


def reencode(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _rescale(img: Image.Image, f: float) -> Image.Image:
    return img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), Image.LANCZOS)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


LEAKS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "frame": lambda im, r: frame(im, _pick(r, list(FRAME_COLOURS)), float(r.uniform(0.03, 0.15))),
    "white_frame": lambda im, r: frame(im, "white", float(r.uniform(0.05, 0.2))),
    "pad_wide": lambda im, r: pad(im, _pick(r, ["white", "black", "grey"]), float(r.choice([16 / 9, 2.0, 0.6]))),
    "watermark_crop": lambda im, r: crop(watermark(im, r), r),
    "mirror_crop": lambda im, r: crop(im.transpose(Image.FLIP_LEFT_RIGHT), r),
    "frame_rescale": lambda im, r: _rescale(
        frame(im, _pick(r, list(FRAME_COLOURS)), float(r.uniform(0.04, 0.12))), float(r.choice([0.5, 0.7, 1.4]))
    ),
    # the edits a second look at real re-posts found (the `curate.dedupe.content` lettering rule, `pairs._small`)
    "caption": caption,
    "web_page": web_page,
    "app_screenshot": app_screenshot,
    "sticker": sticker,
    "small_jpeg": small_jpeg,
    "perspective": perspective,
    # a dataset's augmented copies (`curate.dedupe.decode.rotation_fill`)
    "rotated_canvas": rotated_canvas,
}


def leak(img: Image.Image, name: str, seed: int) -> Image.Image:
    return LEAKS[name](img, np.random.default_rng([seed, 9]))


# --- a dataset's augmentations ---------------------------------------------------------


def _turned(angle: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def turn(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Turned in place by `angle` one way or the other, the corners black (the picture keeps its size)."""
        return img.rotate(angle * _pick(rng, [-1, 1]), Image.BICUBIC, expand=False, fillcolor=(0, 0, 0))

    return turn


def shear(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    k = float(rng.uniform(0.15, 0.25))
    return img.transform((w, h), Image.AFFINE, (1, k, -k * h / 2, 0, 1, 0), Image.BICUBIC)


def hue(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.uniform(15, 30))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def zoom(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random 70-78 % of the picture, enlarged back to its size."""
    w, h = img.size
    f = rng.uniform(0.70, 0.78)
    cw, ch = int(w * f), int(h * f)
    x0, y0 = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
    return img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)


def jitter_flip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = ImageEnhance.Brightness(ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))).enhance(rng.uniform(0.8, 1.2))
    return out.transpose(Image.FLIP_TOP_BOTTOM)


# what scripts that grow a public dataset do to each photo (the mpox sets' "augmented" folders)
AUGMENTS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "turn15": _turned(15),
    "turn45": _turned(45),
    "turned_canvas": lambda im, r: im.rotate(
        float(r.uniform(20, 40)), Image.BICUBIC, expand=True, fillcolor=(255, 255, 255)
    ),
    "shear": shear,
    "hue": hue,
    "zoom": zoom,
    "jitter_flip": jitter_flip,
}


# --- hard negatives ------------------------------------------------------------------


def closeup(
    seed: int, size: tuple[int, int] = (320, 256), skin: tuple[int, int, int] = (208, 160, 130), texture: float = 0.025
) -> Image.Image:
    """One lesion-like blob on plain skin: the same skin colour and light for every seed, its own
    pores and lesion. `texture=0` gives a smooth, noiseless picture (too little for keypoints)."""
    w, h = size
    base = np.random.default_rng([seed, 5])
    rng = np.random.default_rng([seed, 6])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.12 * (xx / w - 0.5) - 0.08 * (yy / h - 0.5)
    pores = np.asarray(
        Image.fromarray(base.normal(0, 1, (h // 3, w // 3)).astype(np.float32), "F").resize((w, h), Image.BICUBIC)
    )
    rgb = np.array(skin, np.float32)[None, None] * (light * (1 + texture * pores))[..., None]
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    r = rng.uniform(0.08, 0.16) * min(w, h)
    ang = rng.uniform(0, np.pi)
    ex = rng.uniform(0.6, 1.5)
    u = ((xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)) / (r * ex)
    v = (-(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)) / (r / ex)
    wobble = 1 + 0.25 * np.sin(rng.integers(3, 7) * np.arctan2(v, u) + rng.uniform(0, 6))
    d2 = (u**2 + v**2) / wobble**2
    lesion = np.array([rng.uniform(120, 170), rng.uniform(50, 90), rng.uniform(50, 80)], np.float32)
    halo, core = np.exp(-d2 / 2.5), np.exp(-(d2**2))
    rgb = rgb * (1 - 0.4 * halo[..., None]) + lesion * 0.4 * halo[..., None]
    rgb = rgb * (1 - core[..., None]) + lesion * rng.uniform(0.6, 1.1) * core[..., None]
    rgb += rng.normal(0, 2.0, rgb.shape) * (texture > 0)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.5 if texture else 3)
    )


SKIN_SIZES = ((224, 224), (400, 300), (640, 480), (800, 600), (1024, 768), (300, 400), (480, 640))


def skin_closeups(keep) -> dict[int, Image.Image]:
    """Close-ups `bench/skin_photos.py` writes first (one lesion on plain skin, each with its own size, skin
    colour and 1-4 % texture), those numbered in `keep`, as read back from JPEG at quality 90: the
    benchmark's `--photos` corpus, where its copies are looked for."""
    rng = np.random.default_rng(9000)
    out = {}
    for k in range(max(keep) + 1):
        skin = tuple(int(x) for x in rng.integers([150, 100, 80], [235, 180, 150]))
        texture = float(rng.uniform(0.01, 0.04))
        if k in keep:
            buf = io.BytesIO()
            closeup(9000 + k, SKIN_SIZES[(k + 3) % len(SKIN_SIZES)], skin=skin, texture=texture).save(
                buf, "JPEG", quality=90
            )
            out[k] = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out


def same_frame(
    img: Image.Image, width: int = 40, colour: str = "white", canvas: tuple[int, int] = (400, 340)
) -> Image.Image:
    """`img` fitted into one fixed frame: different photos come out with identical borders."""
    inner = (canvas[0] - 2 * width, canvas[1] - 2 * width)
    out = Image.new("RGB", canvas, FRAME_COLOURS[colour])
    out.paste(img.convert("RGB").resize(inner, Image.LANCZOS), (width, width))
    return out


def ruler(length: int = 420, height: int = 56) -> Image.Image:
    """A clinic's measuring ruler: millimetre ticks, centimetre numbers, a brand line and four colour
    patches, the same on every photo it is laid beside (`with_ruler`)."""
    img = Image.new("RGB", (length, height), (246, 242, 228))
    d = ImageDraw.Draw(img)
    mm = (length - 20) / 100
    for k in range(101):
        x = 10 + k * mm
        d.line([(x, 0), (x, 22 if k % 10 == 0 else 14 if k % 5 == 0 else 8)], fill=(20, 20, 20), width=1)
        if k % 10 == 0:
            d.text((x - 3, 24), str(k // 10), fill=(20, 20, 20), font=_font(12))
    d.text((length * 0.35, 38), "DermaScale  mm  REF 40-112", fill=(30, 30, 120), font=_font(11))
    for j, c in enumerate([(200, 40, 40), (40, 160, 40), (40, 60, 190), (128, 128, 128)]):
        d.rectangle((length - 70 + j * 15, 38, length - 58 + j * 15, 50), fill=c)
    return img


def colour_chart(cell: int = 30, gap: int = 6) -> Image.Image:
    """A colour chart as clinics photograph beside a lesion to calibrate colour: 24 patches (six rows of skin,
    sky, foliage, primaries and a grey ramp, as a ColorChecker lays them out) on black, and a product line."""
    patches = [
        (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
        (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
        (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
        (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
    ]  # fmt: skip
    img = Image.new("RGB", (6 * cell + 7 * gap, 4 * cell + 7 * gap + 18), (20, 20, 20))
    d = ImageDraw.Draw(img)
    for k, colour in enumerate(patches):
        x, y = gap + (k % 6) * (cell + gap), gap + (k // 6) * (cell + gap)
        d.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)
    d.text((gap, img.height - 16), "ColorCard 24  REF CC-2", fill=(230, 230, 230), font=_font(11))
    return img


def with_ruler(img: Image.Image, seed: int, size: tuple[int, int] = (640, 512), scale: float = 1.0) -> Image.Image:
    """`img` as a clinic photographs a lesion: at `size`, with `ruler` laid near the top or bottom edge,
    anywhere along it, turned up to 25 degrees and 0.7-1.2 times `scale` times its size (a hard negative:
    different patients' photos share the ruler's keypoints, dozens of them spread along it)."""
    return _laid_beside(img, ruler(), [seed, 11], size, scale)


def with_chart(img: Image.Image, seed: int, size: tuple[int, int] = (640, 512), scale: float = 1.0) -> Image.Image:
    """`img` with `colour_chart` laid beside it as `with_ruler` lays the ruler: a compact object rich in
    keypoints, the same on every photo (`curate.dedupe.verify.unlike_away`; bench/README.md, "Since 2026-12-07:
    the pixels away from a colour chart")."""
    return _laid_beside(img, colour_chart(), [seed, 13], size, scale)


def _laid_beside(img: Image.Image, r: Image.Image, seed: list[int], size: tuple[int, int], scale: float) -> Image.Image:
    """`img` at `size` with the object `r` laid near its top or bottom edge (`with_ruler`)."""
    rng = np.random.default_rng(seed)
    base = img.convert("RGB").resize(size, Image.LANCZOS)
    s = rng.uniform(0.7, 1.2) * scale
    r = r.resize((round(r.width * s), round(r.height * s)), Image.LANCZOS).convert("RGBA")
    r = r.rotate(rng.uniform(-25, 25), Image.BICUBIC, expand=True)
    x = int(rng.uniform(0, max(1, size[0] - r.width)))
    y = int(_pick(rng, [rng.uniform(0, 0.15), rng.uniform(0.7, 0.85)]) * size[1])
    base.paste(r, (x, min(y, size[1] - r.height // 2)), r)
    return base


def through_scope(img: Image.Image, side: int = 512, clipped: bool = False) -> Image.Image:
    """`img` as a dermatoscope (or a microscope) shows it: a round field of view, black outside, in a
    `side` px square, or with `clipped` a 4:3 frame whose top and bottom cut the circle. Every photo taken
    through one has the same field stop at the same place."""
    w, h = (side, side * 3 // 4) if clipped else (side, side)
    base = img.convert("RGB").resize((w, h), Image.LANCZOS)
    field = Image.new("L", (w, h), 0)
    margin = side // 25
    ImageDraw.Draw(field).ellipse((margin, h / 2 - side / 2 + margin, w - margin, h / 2 + side / 2 - margin), fill=255)
    out = Image.new("RGB", (w, h), (0, 0, 0))
    out.paste(base, (0, 0), field)
    return out


def collage(imgs: list[Image.Image], seed: int) -> Image.Image:
    """Several different photos in one figure, as a web page or an atlas shows them: one row of two or
    three, or two rows of two, each photo scaled to its row's height (160-320 px), split by gutters of 2-14
    px of white, black or grey, and on every other figure a letter in each panel's corner."""
    rng = np.random.default_rng([seed, 17])
    height, gutter = int(rng.integers(160, 320)), int(rng.integers(2, 14))
    bg = [(255, 255, 255), (0, 0, 0), (128, 128, 128)][seed % 3]
    per_row = 2 if len(imgs) == 4 else len(imgs)
    rows = [imgs[k : k + per_row] for k in range(0, len(imgs), per_row)]
    rows = [
        [im.convert("RGB").resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in r]
        for r in rows
    ]
    out = Image.new(
        "RGB",
        (max(sum(im.width + gutter for im in r) + gutter for r in rows), len(rows) * (height + gutter) + gutter),
        bg,
    )
    draw = ImageDraw.Draw(out)
    for k, im in enumerate(im for r in rows for im in r):
        r, c = divmod(k, per_row)
        x, y = gutter + sum(o.width + gutter for o in rows[r][:c]), gutter + r * (height + gutter)
        out.paste(im, (x, y))
        if seed % 2:
            draw.rectangle((x + 4, y + 4, x + 20, y + 22), fill=(255, 255, 255))
            draw.text((x + 8, y + 6), "abcd"[k], fill=(0, 0, 0))
    return out


def blur_fill(img: Image.Image, aspect: float) -> Image.Image:
    """`img` as social media re-post it in another shape (`aspect`, width / height: 9/16 for a story, 16/9 for a
    video): centred, whole, on a blurred enlargement of itself that fills the frame."""
    img = img.convert("RGB")
    w, h = img.size
    width, height = (max(w, round(h * aspect)), h) if w / h < aspect else (w, max(h, round(w / aspect)))
    f = max(width / w, height / h)
    back = img.resize((round(w * f), round(h * f)), Image.BICUBIC)
    x, y = (back.width - width) // 2, (back.height - height) // 2
    back = back.crop((x, y, x + width, y + height)).filter(ImageFilter.GaussianBlur(max(width, height) / 30))
    back.paste(img, ((width - w) // 2, (height - h) // 2))
    return back


def avatar(img: Image.Image) -> Image.Image:
    """`img` as a profile picture or a forum's round crop shows it: the centred square, inside a circle, white
    around it (a round field of view no band can cut, the same on every such picture)."""
    w, h = img.size
    s = min(w, h)
    square = img.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    inside = Image.new("L", (s, s), 0)
    ImageDraw.Draw(inside).ellipse((0, 0, s - 1, s - 1), fill=255)
    out = Image.new("RGB", (s, s), (255, 255, 255))
    out.paste(square, (0, 0), inside)
    return out


BANNERS = ("flat", "logo")  # `banner`'s styles


@cache
def _banner(style: str, width: int) -> Image.Image:
    if style == "flat":
        out = Image.new("RGB", (width, 90), (200, 20, 30))
    else:  # a gradient and an emblem: no band rule can cut it
        ramp = np.linspace(40, 200, width)[None, :, None] * np.array([0.3, 0.5, 1.0])[None, None]
        out = Image.fromarray(np.repeat(ramp, 90, 0).astype(np.uint8))
    d = ImageDraw.Draw(out)
    if style == "logo":  # an emblem: a ring, a cross, a star
        x = width - 85
        d.ellipse((x, 8, x + 74, 82), fill=(250, 250, 250), outline=(20, 60, 160), width=6)
        d.rectangle((x + 30, 18, x + 44, 72), fill=(200, 20, 30))
        d.rectangle((x + 12, 38, x + 62, 52), fill=(200, 20, 30))
        d.polygon(
            [(x + 37, 22), (x + 41, 32), (x + 52, 32), (x + 43, 38), (x + 46, 48), (x + 37, 42)], fill=(255, 200, 0)
        )
    d.text((10, 10), "HEALTH NEWS DAILY", fill=(255, 255, 255), font=_font(30))
    d.text((10, 52), "Outbreak update: what to know", fill=(255, 230, 0), font=_font(20))
    return out


def banner(img: Image.Image, style: str, width: int = 400) -> Image.Image:
    """`img` as one news site serves every photo: `width` px wide, its banner across the foot, the same on
    every picture (a hard negative: different photos share it). `flat`: white and yellow lettering on red;
    `logo`: the lettering on a blue gradient beside an emblem."""
    img = img.convert("RGB").resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    foot = _banner(style, width)
    out = Image.new("RGB", (width, img.height + foot.height))
    out.paste(img, (0, 0))
    out.paste(foot, (0, img.height))
    return out


def vignette(img: Image.Image, strength: float = 0.55) -> Image.Image:
    """`img` under a site's or a camera app's vignette: darkened towards the corners, to `1 - strength` of
    the light there, the same on every picture (a hard negative no quarter of the picture is free of)."""
    rgb = np.asarray(img.convert("RGB"), np.float32)
    h, w = rgb.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    falloff = 1 - strength * (((x / w - 0.5) ** 2 + (y / h - 0.5) ** 2) / 0.5) ** 1.2
    return Image.fromarray(np.clip(rgb * falloff[..., None], 0, 255).astype(np.uint8))


STAMPS = ("tiled", "logo", "band")  # `stamp`'s styles


def stamp(img: Image.Image, style: str, size: tuple[int, int] = (400, 300)) -> Image.Image:
    """`img` as a stock-photo site previews it: resized to one preview size and stamped with the site's
    watermark, the same for every photo (a hard negative: different photos share dozens of keypoints).
    `tiled`: the name repeated over the whole picture, turned 30 degrees, semi-transparent; `logo`: a
    large name and an ID line across the middle; `band`: a dark strip along the bottom with the site's
    name, an ID and its address."""
    w, h = size
    base = img.convert("RGB").resize(size, Image.LANCZOS).convert("RGBA")
    if style == "tiled":
        layer = Image.new("RGBA", (2 * w, 2 * h), (0, 0, 0, 0))
        d, font, step = ImageDraw.Draw(layer), _font(max(12, h // 14)), h // 5
        for row, y in enumerate(range(0, 2 * h, step)):
            for x in range(0, 2 * w, w // 3):
                d.text((x + row % 2 * w // 6, y), "stockimg", fill=(255, 255, 255, 110), font=font)
        layer = layer.rotate(30, Image.BICUBIC).crop((w // 2, h // 2, w // 2 + w, h // 2 + h))
    else:
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        if style == "logo":
            ink, edge = (255, 255, 255, 110), (0, 0, 0, 110)
            d.text((w * 0.12, h * 0.38), "stockimg", fill=ink, font=_font(h // 6), stroke_width=2, stroke_fill=edge)
            d.text((w * 0.18, h * 0.62), "Image ID: 2AB3CDE  www.stockimg.example", fill=ink, font=_font(h // 18))
        else:
            d.rectangle((0, int(h * 0.8), w, h), fill=(0, 0, 0, 160))
            line = "stockimg  |  Image ID: 2AB3CDE  |  www.stockimg.example"
            d.text((w * 0.03, h * 0.84), line, fill=(255, 255, 255, 230), font=_font(h // 16))
    base.alpha_composite(layer)
    return base.convert("RGB")


# --- edits the main corpus does not plant (`bench/dedupe.py --edits`) -----------------------


def _tone_curve(img: Image.Image, gamma: float, gain: float = 1.0) -> Image.Image:
    a = np.asarray(img.convert("RGB"), np.float32) / 255
    return Image.fromarray(np.clip(255 * gain * a**gamma, 0, 255).astype(np.uint8))


def _noisy(img: Image.Image, rng: np.random.Generator, sigma: float, grey: bool) -> Image.Image:
    a = np.asarray(img.convert("L" if grey else "RGB"), np.float32)
    a = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


def _stretch_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Squeezed along one side to 72-85 % (a re-post forced into another aspect ratio), then cropped."""
    w, h = img.size
    f = rng.uniform(0.72, 0.85)
    size = (round(w * f), h) if rng.integers(2) else (w, round(h * f))
    return crop(img.resize(size, Image.BICUBIC), rng, 0.08)


def _blur_small(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.convert("RGB").filter(ImageFilter.GaussianBlur(2.0))
    out.thumbnail((200, 200))
    return reencode(out, 60)


def _turn_crop_frame(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return frame(crop(img.transpose(Image.ROTATE_90), rng, 0.12), "black", 0.06)


def _crop_heavy(img: Image.Image, rng: np.random.Generator, least: float = 0.72, most: float = 0.8) -> Image.Image:
    """`least` to `most` of each side kept (by default 72-80 %)."""
    w, h = img.size
    f = rng.uniform(least, most)
    x0, y0 = round(w * (1 - f) * rng.uniform()), round(h * (1 - f) * rng.uniform())
    return img.crop((x0, y0, x0 + round(w * f), y0 + round(h * f)))


def _stickers(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.convert("RGB")
    w, h = out.size
    d = ImageDraw.Draw(out)
    for _ in range(3):
        x, y = rng.uniform(0.1, 0.8) * w, rng.uniform(0.1, 0.8) * h
        d.ellipse((x, y, x + w / 8, y + h / 8), fill=(250, 200, 0))
    return out


def _turn_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Turned 5-9 degrees in place and cropped to 76 % of each side (no corners left)."""
    w, h = img.size
    out = img.convert("RGB").rotate(rng.uniform(5, 9) * _pick(rng, [-1, 1]), Image.BICUBIC)
    return out.crop((round(w * 0.12), round(h * 0.12), round(w * 0.88), round(h * 0.88)))


EDITS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "dark": lambda im, r: _tone_curve(im, 2.2, 0.8),
    "bright": lambda im, r: _tone_curve(im, 0.5),
    "low_contrast": lambda im, r: ImageEnhance.Contrast(im.convert("RGB")).enhance(float(r.uniform(0.4, 0.6))),
    "grey_noise": lambda im, r: reencode(_noisy(im, r, 12, grey=True), 70),
    "colour_noise": lambda im, r: _noisy(im, r, 15, grey=False),
    "blur_small": _blur_small,
    "stretch_crop": _stretch_crop,
    "crop_heavy": _crop_heavy,
    "turn_crop": _turn_crop,
    "turn_crop_frame": _turn_crop_frame,
    "stickers": _stickers,
}


# --- what a journal, an app or a forum does to a photo (`bench/dedupe.py --retouched`) ---------------


def _sepia(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An old atlas's brown print: grey levels tinted."""
    g = np.asarray(img.convert("L"), np.float32)
    a = np.stack([g * 1.07 + 20, g * 0.74 + 10, g * 0.43], axis=-1)
    return reencode(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), 85)


def _colour_cast(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A camera's white balance gone warm: red raised, blue lowered by a quarter."""
    a = np.asarray(img.convert("RGB"), np.float32) * np.array([1.25, 1.0, 0.75], np.float32)
    return reencode(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), 85)


def _app_filter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone app's filter: more contrast and colour, warmer, corners darkened."""
    out = ImageEnhance.Color(ImageEnhance.Contrast(img.convert("RGB")).enhance(1.4)).enhance(1.5)
    a = np.asarray(out, np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    a = a * np.clip(1 - 0.35 * d2, 0, 1)[..., None] * np.array([1.08, 1.0, 0.9], np.float32)
    return reencode(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), 85)


def _annotated(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A teaching figure's marks: a red ring round the middle, a yellow arrow pointing at it, a letter."""
    out = img.convert("RGB").copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    cx, cy, r = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65), min(w, h) * 0.18
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 0, 0), width=max(2, w // 100))
    x0, y0 = cx + 1.8 * r, cy - 1.8 * r
    d.line((x0, y0, cx + 0.8 * r, cy - 0.8 * r), fill=(255, 255, 0), width=max(3, w // 80))
    d.text((x0 + 4, y0 - 4), "A", fill=(255, 255, 255), font=_font(max(12, h // 10)))
    return reencode(out, 85)


def _upscaled_crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Enlarged twice (bicubic), then cropped: a site serving a bigger picture than it had."""
    big = img.convert("RGB").resize((img.width * 2, img.height * 2), Image.BICUBIC)
    return reencode(crop(big, rng, 0.12), 80)


RETOUCHES: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "grey": lambda im, r: reencode(im.convert("L").convert("RGB"), 80),
    "sepia": _sepia,
    "colour_cast": _colour_cast,
    "app_filter": _app_filter,
    "sharpened": lambda im, r: reencode(im.convert("RGB").filter(ImageFilter.UnsharpMask(3, 250, 2)), 70),
    "denoised": lambda im, r: reencode(im.convert("RGB").filter(ImageFilter.MedianFilter(5)), 85),
    "heavy_jpeg": lambda im, r: reencode(im, 12),
    "upscaled_crop": _upscaled_crop,
    "annotated": _annotated,
    "annotated_crop": lambda im, r: reencode(crop(_annotated(im, r), r, 0.15), 75),
    "grey_mirror_caption": lambda im, r: reencode(
        caption(im.convert("L").convert("RGB").transpose(Image.FLIP_LEFT_RIGHT), r), 80
    ),
    # 60-68 % of each side kept (36-46 % of the picture): a re-post zoomed in on the lesion
    "tight_crop": lambda im, r: reencode(_crop_heavy(im, r, 0.6, 0.68), 85),
}
