"""croissant.json: MLCommons Croissant 1.0 metadata for one dataset version.

Describes the files (manifest.csv, the JPEG file set) and one record set over the manifest's
columns, so `mlcroissant.Dataset("croissant.json").records("manifest")` yields the samples.
"""

from __future__ import annotations

import json
from typing import Any

from curate.dataset import MANIFEST_COLUMNS

CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_INTEGER = {"image_id", "n_raters"}
_DESCRIPTIONS = {
    "file": "Path of the normalised image, relative to the version folder (<split>/<class>/<file>.jpg).",
    "roi_file": "Path of the lesion crop (roi/<split>/<class>/<file>.jpg), empty when the image has no lesion box.",
    "sha256": "SHA-256 of the exported image bytes.",
    "roi_sha256": "SHA-256 of the exported ROI crop, or empty.",
    "image_id": "Catalogue id of the original image.",
    "label": "Class (the folder name): the training target.",
    "diagnosis": "Fine diagnosis slug from the clinicians' consensus.",
    "split": "train, test or external.",
    "fold": "Cross-validation fold (train rows only).",
    "source": "Source the image came from.",
    "licence": "Licence of the image in its source.",
    "consensus_method": "How the consensus label was reached.",
    "n_raters": "Number of clinicians who labelled the image.",
    "agreement": "Fraction of raters agreeing with the consensus diagnosis.",
    "roi_box": "Region of the EXIF-oriented original the ROI crop shows: x0 y0 x1 y1 in pixels.",
    "cluster": "Near-duplicate cluster key; a cluster never spans splits or folds.",
    "has_case_id": "yes when the image carries a case/patient id (ids themselves are not exported).",
}


def croissant(meta: dict[str, Any], manifest_sha256: str, description: str, licences: list[str]) -> bytes:
    name = f"{meta['name']}"
    fields = []
    for col in MANIFEST_COLUMNS:
        fields.append(
            {
                "@type": "cr:Field",
                "@id": f"manifest/{col}",
                "name": col,
                "description": _DESCRIPTIONS[col],
                "dataType": "sc:Integer" if col in _INTEGER else "sc:Text",
                "source": {"fileObject": {"@id": "manifest.csv"}, "extract": {"column": col}},
            }
        )
    doc = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": name,
        "description": description,
        "version": meta["version"],
        "datePublished": meta["created_at"],
        "license": licences if len(licences) != 1 else licences[0],
        "url": f"file:./{meta['name']}/{meta['version']}",
        "citeAs": (
            "Soe NN, et al. Using AI to Differentiate Mpox From Common Skin Lesions in a Sexual Health Clinic. "
            "JMIR Dermatol 2024."
        ),
        "keywords": ["mpox", "skin lesion", "image classification", f"{meta['task']} task"],
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": "manifest.csv",
                "name": "manifest.csv",
                "description": "One row per exported image.",
                "contentUrl": "manifest.csv",
                "encodingFormat": "text/csv",
                "sha256": manifest_sha256,
            },
            {
                "@type": "cr:FileSet",
                "@id": "images",
                "name": "images",
                "description": (
                    f"{meta['image_size'][0]}x{meta['image_size'][1]} JPEGs, ImageFolder layout, "
                    "and their ROI crops under roi/."
                ),
                "encodingFormat": "image/jpeg",
                "includes": "**/*.jpg",
            },
        ],
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": "manifest",
                "name": "manifest",
                "description": "Samples with label, split, fold and provenance.",
                "key": {"@id": "manifest/file"},
                "field": fields,
            }
        ],
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
