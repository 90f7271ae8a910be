"""What changed between two dataset versions: images added, removed, relabeled, moved; settings changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from curate.numbers import whole_number


@dataclass
class VersionDiff:
    added: list[str] = field(default_factory=list)  # image ids
    removed: list[str] = field(default_factory=list)
    relabeled: list[tuple[str, str, str]] = field(default_factory=list)  # (image id, old label/diagnosis, new)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (image id, old split[/fold], new)
    # (image id, old lesion box, new): the ROI set changed. Counted apart: such an image is also moved, relabeled or
    # unchanged, as before (the dataset card's history line counts those, and a rebuilt version keeps its bytes)
    recropped: list[tuple[str, str, str]] = field(default_factory=list)
    unchanged: int = 0
    # (split[/fold], label/diagnosis) of each added image in the new version and each removed one in the old:
    # before, the steward saw only their ids, and opened both manifests to learn where a new image went
    where: dict[str, tuple[str, str]] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "relabeled": len(self.relabeled),
            "moved": len(self.moved),
            "recropped": len(self.recropped),
            "unchanged": self.unchanged,
        }

    def as_dict(self) -> dict:
        """For --json: image ids as numbers, as every other command gives them (the manifest holds them as text)."""
        return {
            **self.summary(),
            "added_ids": [_number(i) for i in self.added],
            "removed_ids": [_number(i) for i in self.removed],
            "added_to": [[_number(i), *self.where[i]] for i in self.added],
            "removed_from": [[_number(i), *self.where[i]] for i in self.removed],
            "relabeled_ids": [[_number(i), *rest] for i, *rest in self.relabeled],
            "moved_ids": [[_number(i), *rest] for i, *rest in self.moved],
            "recropped_ids": [[_number(i), *rest] for i, *rest in self.recropped],
        }


def _number(image_id: str) -> int | str:
    number = whole_number(image_id)
    return image_id if number is None else number


def _place(row: dict[str, str]) -> str:
    return f"{row['split']}/fold{row['fold']}" if row.get("fold") else row["split"]


def _label(row: dict[str, str]) -> str:
    return f"{row['label']}/{row['diagnosis']}"


def diff_manifests(old: list[dict[str, str]], new: list[dict[str, str]]) -> VersionDiff:
    """Compare two manifests by image id (pure)."""
    a = {r["image_id"]: r for r in old}
    b = {r["image_id"]: r for r in new}
    key = lambda i: (len(i), i)  # numeric order for numeric ids  # noqa: E731
    d = VersionDiff(added=sorted(set(b) - set(a), key=key), removed=sorted(set(a) - set(b), key=key))
    d.where = {i: (_place(b[i]), _label(b[i])) for i in d.added} | {i: (_place(a[i]), _label(a[i])) for i in d.removed}
    for i in sorted(set(a) & set(b), key=key):
        changed = False
        if _label(a[i]) != _label(b[i]):
            d.relabeled.append((i, _label(a[i]), _label(b[i])))
            changed = True
        if _place(a[i]) != _place(b[i]):
            d.moved.append((i, _place(a[i]), _place(b[i])))
            changed = True
        if a[i].get("roi_box", "") != b[i].get("roi_box", ""):  # the lesion crop the ROI evaluation sees
            d.recropped.append((i, a[i].get("roi_box") or "none", b[i].get("roi_box") or "none"))
        d.unchanged += not changed
    return d


# dataset.json's keys that are the steward's choices (or the code's output format), in the order they are named
SETTINGS = (
    "task",
    "classes",
    "diagnoses",
    "image_size",
    "resize_policy",
    "preprocessing",
    "seed",
    "folds",
    "test_fraction",
    "external_sources",
    "parent",
    "reshuffle",
    "format_version",
)


def changed_settings(old_meta: dict, new_meta: dict) -> list[str]:
    """dataset.json keys of `SETTINGS` whose values differ (pure; both as JSON reads them back)."""
    return [k for k in SETTINGS if old_meta.get(k) != new_meta.get(k)]


def describe_changes(d: VersionDiff, settings: list[str]) -> str:
    """What a new build would change, in words: 'a build now: 3 images added, 1 image relabeled; settings
    changed: seed'. Empty when neither the images nor the settings differ."""
    counts = d.summary()
    parts = [
        f"{counts[k]} {'image' if counts[k] == 1 else 'images'} {k}"
        for k in ("added", "removed", "relabeled", "moved", "recropped")
        if counts[k]
    ]
    said = [f"a build now: {', '.join(parts)}"] if parts else []
    if settings:
        said.append(f"settings changed: {', '.join(settings)}")
    return "; ".join(said)
