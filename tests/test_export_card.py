"""The dataset card and the version diff, on plain manifest rows (no catalogue)."""

from curate.dataset import split_counts
from curate.export.card import render
from curate.export.diff import diff_manifests


def row(i, label="mpox", split="train", fold="0", diagnosis=None, roi=True):
    return {
        "image_id": str(i),
        "label": label,
        "diagnosis": diagnosis or label,
        "split": split,
        "fold": fold if split == "train" else "",
        "file": f"{split}/{label}/img{i:06d}.jpg",
        "roi_file": f"roi/{split}/{label}/img{i:06d}.jpg" if roi else "",
    }


META = {
    "name": "mpox",
    "version": "1.1.0",
    "task": "binary",
    "classes": ["mpox", "non_mpox"],
    "image_size": [320, 320],
    "resize_policy": "stretch",
    "seed": 3,
    "folds": 5,
    "test_fraction": 0.2,
    "external_sources": ["kaggle"],
    "parent": "1.0.0",
    "created_at": "2026-01-02T03:04:05Z",
    "preprocessing": {"roi_margin": 0.1, "resample": "bicubic", "jpeg_quality": 90, "jpeg_subsampling": "4:2:0"},
}
LABELS = {
    "statuses": {"pending": 0, "agreed": 3, "adjudicated": 1, "discarded": 2, "excluded": 1},
    "excluded": {"identifiable_features": 1, "discarded": 2},
    "rules": {"low_quality": "both", "third_opinion": "discard"},
    "methods": {"unanimous": 3, "adjudication": 1},
    "raters": {"2": 3, "3": 1},
    "mean_agreement": 0.9,
    "kappa": {"pairs": 4, "kappa": 0.71, "observed_agreement": None},
}


def test_card_tables_and_kappa():
    rows = [row(1), row(2, "non_mpox", "test"), row(3, "non_mpox", "external", roi=False), row(4, "non_mpox", fold="1")]
    assert split_counts(rows) == {
        "train": {"mpox": 1, "non_mpox": 1},
        "test": {"non_mpox": 1},
        "external": {"non_mpox": 1},
    }
    diff = diff_manifests([row(1, "non_mpox"), row(2, "non_mpox"), row(9)], rows)
    text = render(META, rows, LABELS, [], [], 0, diff).decode()
    assert (
        "| mpox | 1 | 0 | 0 | 1 |" in text
        and "| non_mpox | 1 | 1 | 1 | 3 |" in text
        and "| **total** | 2 | 1 | 1 | 4 |" in text
    )
    assert "Cohen's kappa between the first two raters: 0.710 over 4 doubly-rated images." in text
    assert "| discarded | 2 |" in text and "| identifiable_features | 1 | flagged: identifiable features" in text
    assert "an image is excluded when both raters flag low quality" in text
    assert "Parent version: 1.0.0." in text and "2 added, 1 removed, 1 relabeled" in text
    no_kappa = render({**META, "parent": None}, rows, {**LABELS, "kappa": None}, [], [], 0, None).decode()
    assert "Cohen's kappa: not available" in no_kappa and "First version" in no_kappa


def test_diff_added_removed_relabeled_moved():
    old = [row(1), row(2), row(3, split="test"), row(4, fold="2")]
    new = [
        row(1),
        row(2, "non_mpox", diagnosis="genital_herpes"),
        row(3, split="train", fold="1"),
        row(4, fold="3"),
        row(5),
    ]
    d = diff_manifests(old, new)
    assert d.added == ["5"] and d.removed == []
    assert d.relabeled == [("2", "mpox/mpox", "non_mpox/genital_herpes")]
    assert d.moved == [("3", "test", "train/fold1"), ("4", "train/fold2", "train/fold3")]
    assert d.summary() == {"added": 1, "removed": 0, "relabeled": 1, "moved": 2, "recropped": 0, "unchanged": 1}


def test_diff_names_images_whose_lesion_box_changed():
    """Before: a box moved or taken away was "unchanged", though the ROI set (and the checksum) changed."""
    old = [row(1) | {"roi_box": "[1, 2, 30, 40]"}, row(2) | {"roi_box": "[5, 5, 9, 9]"}, row(3)]
    new = [row(1) | {"roi_box": "[1, 2, 30, 44]"}, row(2, roi=False) | {"roi_box": ""}, row(3)]
    d = diff_manifests(old, new)
    assert d.recropped == [("1", "[1, 2, 30, 40]", "[1, 2, 30, 44]"), ("2", "[5, 5, 9, 9]", "none")]
    # still counted as unchanged (not moved or relabeled): the card's history line, and its bytes, stay as they were
    assert d.unchanged == 3 and d.as_dict()["recropped_ids"][1] == [2, "[5, 5, 9, 9]", "none"]


def source(name, licences, external=False):
    return {
        "name": name,
        "kind": "public",
        "licences": licences,
        "external": external,
        "images": {"train": 1, "test": 0, "external": 0},
    }


def _tables(text):
    """Each Markdown table as a list of rows, each row split on unescaped pipes."""
    import re

    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def test_unknown_licences_are_warned_about_by_source():
    rows = [row(1), row(2, "non_mpox")]
    sources = [
        source("clinic-a", ["CC-BY-4.0"]),
        source("web scrape", ["unknown"]),
        source("mixed", ["CC0-1.0", "unknown"]),
    ]
    text = render({**META, "parent": None}, rows, LABELS, sources, [], 0, None).decode()
    warning = next(line for line in text.splitlines() if "Warning: unknown licence" in line)
    assert text.index(warning) < text.index("## Images per class and split")  # seen before the tables
    assert text.count("Warning: unknown licence") == 1
    assert "2 source(s)" in warning and "web scrape, mixed" in warning and "clinic-a" not in warning
    known = render({**META, "parent": None}, rows, LABELS, [source("clinic-a", ["CC-BY-4.0"])], [], 0, None).decode()
    assert "Warning" not in known


def test_source_names_cannot_break_a_table():
    rows = [row(1)]
    nasty = "clinic | 2024\nphotos \\ batch"
    text = render(
        {**META, "parent": None, "external_sources": [nasty]},
        rows,
        LABELS,
        [source(nasty, ["unknown"], True)],
        [],
        0,
        None,
    ).decode()
    sources_table = next(t for t in _tables(text) if t[0][0] == "source")
    assert [len(r) for r in sources_table] == [7, 7, 7]
    assert sources_table[2][0] == "clinic \\| 2024 photos \\\\ batch"
    assert "- External validation sources (reserved whole): clinic | 2024 photos \\\\ batch." in text
    assert all(len(r) == len(t[0]) for t in _tables(text) for r in t)  # every table keeps its column count


def test_free_text_in_the_card_is_inert_markdown():
    """A hostile probe's case: a licence `![x](http://host/beacon.png)` became an image every viewer of the card
    (GitHub, an IDE's preview) fetched from that host; a source `[Download full data](http://…)` a link; a
    diagnosis name of raw HTML in a diagnosis-task card's first line a live <img onerror>. Now each is text."""
    beacon, link = "![x](http://127.0.0.1:9/beacon.png)", "[Download full data](http://127.0.0.1:9/s)"
    rows = [row(1), row(2, "non_mpox", "test")]
    text = render({**META, "parent": None}, rows, LABELS, [source(link, [beacon])], [], 0, None).decode()
    assert (
        "\\[Download full data\\](http://127.0.0.1:9/s)" in text and "!\\[x\\](http://127.0.0.1:9/beacon.png)" in text
    )
    assert "[Download full data](" not in text and "[x](" not in text
    html = "<img src=http://127.0.0.1:9/raw.png onerror=alert(1)>"
    diagnoses = [{"slug": "mpox", "name": "Mpox", "binary": "mpox"}, {"slug": "xss", "name": html, "binary": None}]
    meta = {**META, "parent": None, "task": "diagnosis", "classes": ["mpox", "xss"], "diagnoses": diagnoses}
    text = render(meta, [row(1), row(2, "xss", "test")], LABELS, [], [], 0, None).decode()
    assert "<img" not in text and "(Mpox, &lt;img src=http://127.0.0.1:9/raw.png onerror=alert(1)&gt;)" in text
    assert "| `xss` |" in text  # the card's own code span stays one
