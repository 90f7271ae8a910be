"""README.md, the dataset card: what is in the version, how it was labelled, split and prepared."""

from __future__ import annotations

from collections import Counter
from typing import Any

from curate.dataset import SPLITS, split_counts
from curate.export.diff import VersionDiff
from curate.export.exclusions import REASONS
from curate.export.leakage import LeakageAudit
from curate.label.rules import explain

UNKNOWN_LICENCE = "unknown"  # what the export plan records for images without a licence


class Markdown(str):
    """A table cell's Markdown that the card writes itself (a diagnosis code in backticks): `cell` keeps it."""


def inline(value: Any) -> str:
    """Text on one Markdown line, inert: newlines and runs of spaces collapse to one space, HTML is escaped and so
    are backslashes, brackets and backticks (a source name, a licence, a diagnosis name are free text: before,
    a licence `![x](http://host/beacon.png)` was an image every viewer of the card fetched from that host, and
    `[Download](http://…)` a link)."""
    text = " ".join(("" if value is None else str(value)).split()).replace("\\", "\\\\")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in "[]`":
        text = text.replace(mark, "\\" + mark)
    return text


def cell(value: Any) -> str:
    """Text safe in a Markdown table cell: `inline`, and pipes escaped (the card's own `Markdown` as it is)."""
    return value if isinstance(value, Markdown) else inline(value).replace("|", "\\|")


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in body]
    return lines


def _count_table(
    rows: list[dict[str, str]], title: str, key: str = "label", names: dict[str, str] | None = None
) -> list[str]:
    """One line per value of `key` (shown by its name from `names`), one column per split, and a total."""
    by_split = split_counts(rows, key)
    body, totals = [], Counter()
    for value in sorted({v for per in by_split.values() for v in per}):
        per = {s: by_split.get(s, {}).get(value, 0) for s in SPLITS}
        body.append([(names or {}).get(value, value), *per.values(), sum(per.values())])
        totals.update(per)
    body.append(["**total**", *(totals[s] for s in SPLITS), sum(totals.values())])
    return _table([title, *SPLITS, "total"], body)


def _names(meta: dict[str, Any]) -> dict[str, str]:
    """diagnosis code -> display name, from dataset.json (clinicians read names, not slugs)."""
    return {d["slug"]: d["name"] for d in meta.get("diagnoses", [])}


def _diagnosis_list(meta: dict[str, Any], rows: list[dict[str, str]]) -> list[str]:
    """The study's declared list: name, code (manifest `diagnosis` and diagnosis-task folder), binary class, images."""
    if not meta.get("diagnoses"):
        return []
    n = Counter(r["diagnosis"] for r in rows)
    out = ["", "The study's diagnosis list (declared in the workspace settings), with the binary task's class:", ""]
    return out + _table(
        ["diagnosis", "code", "binary class", "images exported"],
        [
            [d["name"], Markdown(f"`{d['slug']}`"), d["binary"] or "not exported", n.get(d["slug"], 0)]
            for d in meta["diagnoses"]
        ],
    )


def uncompared_note(n: int) -> str:
    """The line for a version holding images no dedupe run compared (card and terminal)."""
    return (
        f"{n} exported image(s) were never compared by `curate dedupe`: a copy of one of them may sit in another "
        "split, under another label, or have been labelled twice; run `curate dedupe`, then export a new version"
    )


def undecided_note(n: int) -> str:
    """The line for a version whose images include pairs dedupe left to the steward (card and terminal)."""
    return (
        f"{n} pair(s) of exported images that dedupe left to review were kept in one split, since either could "
        "be a copy of the other: decide them (`curate dedupe split/merge`, see the review sheet), then export "
        "a new version"
    )


def conflicting_note(n: int) -> str:
    """The line for a version that left out copies of one photo (labelled before dedupe joined them, or before a
    merge or a keep) carrying different diagnoses (card and terminal)."""
    return (
        f"{n} dedupe cluster(s) left out: copies of one photo, each labelled (before dedupe joined them, or before "
        "a `curate dedupe merge` or `keep`), carry different diagnoses, so the photo has no consensus "
        "(reason `conflicting_copies`)"
    )


def conflicting_advice(groups: list[dict[int, str]], shown: int = 5) -> str:
    """What the steward does about those clusters (terminal): their image ids, and the two ways out. The splits
    given take each image of the first cluster's other diagnoses away from the copies of its commonest one (a
    `split` of the first id from all the rest left two diagnoses together in a cluster of three)."""
    listed = "; ".join(" = ".join(map(str, sorted(group))) for group in groups[:shown])
    more = f"; and {len(groups) - shown} more (`--json`: conflicting_images)" if len(groups) > shown else ""
    by_diagnosis: dict[str, list[int]] = {}
    for image_id, diagnosis in sorted(groups[0].items()):
        by_diagnosis.setdefault(diagnosis, []).append(image_id)
    kept, *others = sorted(by_diagnosis.values(), key=lambda ids: (-len(ids), ids[0]))
    splits = " ".join(f"`curate dedupe split {i} {' '.join(map(str, kept))}`" for ids in others for i in ids)
    each = " (the first cluster's; each likewise)" if len(groups) > 1 else ""
    return (
        f"images {listed}{more}: different photos? {splits}{each}; one photo? have it relabelled in Label Studio "
        "and `curate label pull`; then export a new version"
    )


def _exclusions(labels: dict[str, Any]) -> list[str]:
    excluded = labels.get("excluded") or {}
    out = [""]
    if labels.get("uncompared"):
        out += [f"**Warning:** {uncompared_note(labels['uncompared'])}.", ""]
    if labels.get("undecided_pairs"):
        out += [f"**Note:** {undecided_note(labels['undecided_pairs'])}.", ""]
    if labels.get("conflicting_copies"):
        out += [f"**Warning:** {conflicting_note(labels['conflicting_copies'])}.", ""]
    if labels.get("rules"):
        out.append(f"Consensus rules: {explain(labels['rules'])}.")
    if not excluded:
        return out + ["", "Every labelled image with a consensus diagnosis is exported."]
    out += ["", "Labelled images not exported, by reason:", ""]
    return out + _table(["reason", "images", "meaning"], [[k, v, REASONS.get(k, "")] for k, v in excluded.items()])


def _split_history(sc: dict[str, Any] | None) -> list[str]:
    if sc is None:
        return []
    if sc["reshuffle"]:
        return [
            "",
            "Splits were dealt afresh (`--reshuffle`), ignoring the parent's: moves between splits and folds are "
            "the reshuffle's, not listed here one by one.",
        ]
    out = [
        "",
        f"Splits: {sc['kept']} of the parent's images kept their split and fold; {sc['dealt_groups']} group(s) with no "
        f"image in the parent were dealt.",
    ]
    if not sc["folds_kept"]:
        out.append(
            "The number of folds differs from the parent's, so the train images' folds were dealt afresh (train/test "
            "kept)."
        )
    if not sc["moved"]:
        out.append("No image of the parent moved between splits or folds.")
        return out
    out += ["", f"{len(sc['moved'])} image(s) of the parent moved:", ""]
    out += _table(
        ["image id", "from", "to", "why"], [[m["image_id"], m["from"], m["to"], m["reason"]] for m in sc["moved"]]
    )
    return out


def licence_warning(sources: list[dict[str, Any]]) -> list[str]:
    """A visible warning naming every source with images of unknown licence; empty when all are known."""
    unknown = [inline(s["name"]) for s in sources if UNKNOWN_LICENCE in s["licences"]]
    if not unknown:
        return []
    return [
        "",
        f"> **Warning: unknown licence.** {len(unknown)} source(s) have images with no recorded licence: "
        + ", ".join(unknown)
        + ". Check each source's terms before sharing or publishing this "
        "version; a licence is recorded when images are ingested (`curate ingest --licence`).",
    ]


CARD_PAIRS = 50


def _leakage_section(meta: dict[str, Any], audit: LeakageAudit | None) -> list[str]:
    if audit is None:
        return []
    ref = f"{meta['name']}@{meta['version']}"
    out = [
        "",
        "## Leakage audit",
        "",
        audit.summary() + ".",
        "",
        f"Method: {audit.method}. Every test and external image was compared with every train image, and every "
        f"train image with those of the other folds. `curate audit leakage {ref}` shows both thumbnails of each pair; "
        "`audit.json` lists them.",
    ]
    if audit.pairs:
        shown = audit.pairs[:CARD_PAIRS]
        out += ["", f"Suspect pairs{f' (the {len(shown)} strongest)' if audit.suspects > len(shown) else ''}:", ""]
        out += _table(
            ["first", "file", "second", "file", "matching keypoints", "seen as"],
            [[p.a.part, p.a.file, p.b.part, p.b.file, p.inliers, p.seen_as()] for p in shown],
        )
    return out


def render(
    meta: dict[str, Any],
    rows: list[dict[str, str]],
    labels: dict[str, Any],
    sources: list[dict[str, Any]],
    bins: list[dict[str, Any]],
    pulled_external: int,
    change: VersionDiff | None,
    split_change: dict[str, Any] | None = None,
    leakage: LeakageAudit | None = None,
) -> bytes:
    """The card as bytes. `split_change` (versions with a parent): reshuffle, kept, dealt_groups, folds_kept, moved;
    `leakage`: the audit run on the rendered files."""
    size = f"{meta['image_size'][0]}×{meta['image_size'][1]}"
    names = _names(meta)
    shown = [
        inline(c) for c in (meta["classes"] if meta["task"] == "binary" else [names.get(c, c) for c in meta["classes"]])
    ]
    n_roi = sum(1 for r in rows if r["roi_file"])
    pre = meta["preprocessing"]
    out = [
        f"# {meta['name']} {meta['version']}",
        "",
        f"Skin-lesion photographs for the **{meta['task']}** task ({', '.join(shown)}), "
        f"{len(rows)} images ({n_roi} with a lesion crop), prepared by `curate export` from clinician consensus "
        f"labels. Catalogue state as of {meta['created_at']}.",
        "",
        'Load a split with `torchvision.datasets.ImageFolder("<version>/train")` (or `roi/train`), or with '
        "`curate.dataset.DatasetVersion.open(path)`, which also verifies `SHA256SUMS` and selects folds. A split with "
        "no image of a class has no folder for it, so ImageFolder's class indices can differ between splits: map "
        "targets through the `classes` of `dataset.json` (as `DatasetVersion` does).",
        *licence_warning(sources),
        "",
        "## Images per class and split",
        "",
        *_count_table(rows, "class (folder)"),
        "",
        "By diagnosis:",
        "",
        *_count_table(rows, "diagnosis", "diagnosis", names),
        "",
        "Lesion crops (`roi/`) per class and split:",
        "",
        *_count_table([r for r in rows if r["roi_file"]], "class"),
        "",
        "## How the labels were obtained",
        "",
        "Each image was labelled independently by clinicians in Label Studio; disagreements went to an adjudicator, "
        "and images without consensus were discarded (the paper's protocol). Only *agreed* and *adjudicated* images "
        "are exported.",
        *_diagnosis_list(meta, rows),
        "",
    ]
    st = labels["statuses"]
    out += _table(["consensus outcome", "images"], [[k, v] for k, v in st.items()])
    out += _exclusions(labels)
    out += [""]
    out.append(
        "- Consensus method of the exported images: "
        + ", ".join(f"{k} {v}" for k, v in labels["methods"].items())
        + "."
    )
    out.append(
        "- Raters per exported image: " + ", ".join(f"{k} raters: {v}" for k, v in labels["raters"].items()) + "."
    )
    if labels["mean_agreement"] is not None:
        out.append(f"- Mean agreement with the consensus (exported images): {labels['mean_agreement']:.3f}.")
    kappa = labels.get("kappa")
    if kappa and kappa.get("kappa") is not None:
        observed = kappa.get("observed_agreement")
        out.append(
            f"- Cohen's kappa between the first two raters: {kappa['kappa']:.3f} over {kappa['pairs']} doubly-rated "
            "images" + (f" (observed agreement {observed:.3f})." if observed is not None else ".")
        )
    else:
        out.append("- Cohen's kappa: not available (the catalogue holds no per-rater annotations for these images).")
    out += ["", "## Sources and licences", ""]
    out += _table(
        ["source", "kind", "licence", "reserved for external", *SPLITS],
        [
            [
                s["name"],
                s["kind"],
                ", ".join(s["licences"]),
                "yes" if s["external"] else "no",
                *(s["images"][k] for k in SPLITS),
            ]
            for s in sources
        ],
    )
    out += [
        "",
        "## Preprocessing",
        "",
        f"- EXIF orientation applied, converted to RGB (transparency flattened onto white; colours from an embedded "
        f"ICC profile into sRGB), resized to {size} "
        f"by the *{meta['resize_policy']}* policy ({pre['resample']} resampling), saved as baseline JPEG "
        f"(quality {pre['jpeg_quality']}, {pre['jpeg_subsampling']}).",
        "- Every metadata block (EXIF, GPS, XMP, ICC profile, comments) is stripped: pixels are copied into a fresh "
        "image before encoding.",
        "- File names are `img<catalogue id>.jpg`: no source path, patient or case information.",
        f"- ROI crops: the union of the consensus lesion boxes grown by {pre['roi_margin']:.0%} of its width/height on "
        "each side, clipped to the image, then normalised the same way. `roi_box` in the manifest is that region in "
        "pixels of the oriented original.",
        "",
        "## Splits",
        "",
        f"- Seed {meta['seed']}; test fraction {meta['test_fraction']:.0%}; {meta['folds']} cross-validation folds "
        "inside train.",
        "- External validation sources (reserved whole): "
        + (", ".join(map(inline, meta["external_sources"])) or "none")
        + ".",
        "- Group rule: images that share a near-duplicate cluster or a case/patient id (connected components of both) "
        "are never split across train, test, external or folds. Within that rule, groups are dealt stratified by "
        "class.",
    ]
    if split_change is not None:
        if split_change["reshuffle"]:
            out.append(
                f"- Splits dealt afresh (`--reshuffle`): the parent version's ({meta['parent']}) split and fold of "
                "each image were ignored, so images may have changed split; a model trained on the parent must not be "
                "evaluated on this version's test split."
            )
        else:
            out.append(
                f"- Stable across versions: an image that was in the parent version ({meta['parent']}) keeps the split "
                "and fold it had there; only groups with no image in the parent are dealt, stratified, counting the "
                "kept images toward the targets. A new image that joins a group with parent images goes where they "
                "are. A group whose parent images were in different places goes where most of them were (ties: test), "
                "and a source newly reserved for external validation leaves train/test; each such move is listed "
                "under *Version history*."
            )
    if pulled_external:
        out.append(
            f"- {pulled_external} image(s) from non-reserved sources share a group with a reserved-source image and "
            "were therefore placed in external."
        )
    out += [
        "",
        "Achieved fractions (train/test: share of the train+test pool; folds: share of train), per class, and the "
        "largest deviation from the target:",
        "",
    ]
    out += _table(
        ["part", "target", "achieved", "per class", "max deviation (pp)"],
        [
            [
                b["name"],
                f"{b['target']:.1%}",
                f"{b['fraction']:.1%}",
                ", ".join(f"{c} {f:.1%}" for c, f in b["per_class"].items()),
                f"{b['deviation_pp']:.1f}",
            ]
            for b in bins
        ],
    )
    out += _leakage_section(meta, leakage)
    out += ["", "## Version history", ""]
    if meta["parent"] is None:
        out.append("First version of this dataset (no parent).")
    else:
        out.append(f"Parent version: {meta['parent']}.")
        if change is not None:
            sm = change.summary()
            out.append(
                f"Since the parent: {sm['added']} added, {sm['removed']} removed, {sm['relabeled']} relabeled, "
                f"{sm['moved']} moved between splits or folds, {sm['unchanged']} unchanged (`curate diff` lists them)."
            )
        out += _split_history(split_change)
    out += [
        "",
        "## Files",
        "",
        "`dataset.json` (settings), `manifest.csv` (one row per image), `croissant.json` (MLCommons Croissant 1.0), "
        "`audit.json` (the leakage audit), `SHA256SUMS` (every other file; `sha256sum -c SHA256SUMS`).",
    ]
    return ("\n".join(out) + "\n").encode("utf-8")
