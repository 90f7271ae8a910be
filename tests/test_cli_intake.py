"""`curate init / ingest / status` through the real CLI on a real SQLite file."""

import json

import images as I
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from curate.cli import app
from curate.workspace import Workspace
from db.models import CommandRun, Image, Provenance, Source

runner = CliRunner()


def make_folder(root):
    (root / "Mpox").mkdir(parents=True)
    (root / "Healthy skin").mkdir()
    for i in range(3):
        (root / "Mpox" / f"case{i}.jpg").write_bytes(I.jpeg(i))
        (root / "Healthy skin" / f"h{i}.png").write_bytes(I.encode(I.photo(50 + i), "PNG"))
    (root / "Mpox" / "fake.jpg").write_bytes(I.html_as_image())
    return root


def test_init_says_where_the_workspace_is_in_json_for_a_script(tmp_path):
    r = runner.invoke(app, ["init", str(tmp_path / "ws"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == {
        "workspace": str((tmp_path / "ws").resolve()),
        "catalogue": f"sqlite:///{(tmp_path / 'ws').resolve()}/catalogue.db",
    }
    odd = (tmp_path / "ünï côde" / "ws").resolve()  # before: "%C3%BCn%C3%AF%20c%C3%B4de"
    r = runner.invoke(app, ["init", str(odd), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["catalogue"] == f"sqlite:///{odd}/catalogue.db"
    (tmp_path / "file").write_text("")
    r = runner.invoke(app, ["init", str(tmp_path / "file" / "ws"), "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["error"].startswith("cannot create workspace at")


def test_init_ingest_status_roundtrip(tmp_path):
    ws_dir = tmp_path / "ws"
    r = runner.invoke(app, ["init", str(ws_dir)])
    assert r.exit_code == 0, r.output
    folder = make_folder(tmp_path / "in")
    r = runner.invoke(app, ["ingest", str(folder), "--source", "clinic", "--label-from-folders", "-w", str(ws_dir)])
    assert r.exit_code == 0, r.output
    assert "ingest summary" in r.output and "images/s" in r.output
    assert "Mpox/fake.jpg" in r.output and "HTML page" in r.output

    r = runner.invoke(
        app, ["ingest", str(folder), "--source", "clinic", "--label-from-folders", "-w", str(ws_dir), "--json"]
    )
    data = json.loads(r.output)
    assert (data["added"], data["already_known"], data["rejected"]) == (0, 6, 1)
    assert data["per_class"]["mpox"] == {"known": 3, "rejected": 1}

    r = runner.invoke(app, ["status", "-w", str(ws_dir), "--json"])
    st = json.loads(r.output)
    assert st["images"] == 6
    assert st["by_prior_label"] == {"healthy_skin": 3, "mpox": 3}
    assert st["by_source"][0]["rejected_files"] == 1
    r = runner.invoke(app, ["status", "-w", str(ws_dir)])
    assert "clinic" in r.output and "ingested" in r.output
    # before: counted as 6 clusters and 6 to label, with nothing said of dedupe never having run
    assert st["dedupe_not_compared"] == 6 and "6 image(s) in no dedupe cluster" in " ".join(r.output.split())
    # before: a file rejected once (half-copied) and ingested whole since still counted as rejected for good
    (folder / "Mpox" / "fake.jpg").write_bytes(I.jpeg(9))
    runner.invoke(app, ["ingest", str(folder), "--source", "clinic", "--label-from-folders", "-w", str(ws_dir)])
    st = json.loads(runner.invoke(app, ["status", "-w", str(ws_dir), "--json"]).output)
    assert st["images"] == 7 and st["by_source"][0]["rejected_files"] == 0
    # and dedupe's "rejected at intake (never catalogued)" (before: every rejection ever recorded, this one too)
    r = runner.invoke(app, ["dedupe", "--json", "--workers", "1", "-w", str(ws_dir)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rejected_at_intake"] == {}
    r = runner.invoke(app, ["status", "-w", str(ws_dir)])
    assert "in no dedupe cluster" not in " ".join(r.output.split())
    assert json.loads(runner.invoke(app, ["status", "-w", str(ws_dir), "--json"]).output)["dedupe_not_compared"] == 0


def test_label_mapping_file(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    folder = make_folder(tmp_path / "in")
    mapping = tmp_path / "map.csv"
    mapping.write_text("folder,label\nMpox,Mpox\nHealthy skin,Healthy skin\n")
    r = runner.invoke(
        app,
        ["ingest", str(folder), "-s", "kaggle", "--kind", "public", "--label-map", str(mapping), "-w", str(ws.root)],
    )
    assert r.exit_code == 0, r.output
    with ws.session() as s:
        labels = sorted(set(s.exec(select(Provenance.prior_label)).all()))
    assert labels == ["healthy_skin", "mpox"]
    assert "does not declare" not in r.output  # both are the paper's diagnoses

    # a map to a diagnosis the study never declared (the paper's eight hold no chickenpox) is said, not kept quiet
    other = tmp_path / "other.csv"
    other.write_text("Mpox,mpox\nHealthy skin,Chickenpox\n")
    r = runner.invoke(app, ["ingest", str(folder), "-s", "k2", "--label-map", str(other), "-w", str(ws.root), "--json"])
    assert r.exit_code == 0, r.output
    (warning,) = [w for w in json.loads(r.stdout)["warnings"] if "--label-map" in w]
    assert warning.startswith("--label-map gives labels the workspace does not declare (chickenpox): no rater can")

    # before: a folder named in another case, or in the decomposed Unicode form macOS writes, matched no line of
    # the map, and its photos went in with no prior label and no word said
    import unicodedata

    varied = tmp_path / "varied"
    for i, name in enumerate(("monkeypox", unicodedata.normalize("NFD", "Varicéla"), "Other")):
        (varied / name).mkdir(parents=True)
        (varied / name / "x.jpg").write_bytes(I.jpeg(900 + i))
    (tmp_path / "nfc.csv").write_text("Monkeypox,mpox\n" + unicodedata.normalize("NFC", "Varicéla") + ",chickenpox\n")
    (varied / "loose.jpg").write_bytes(I.jpeg(905))  # beside the folders: in none, so not one the map misses
    args = ["ingest", str(varied), "-s", "k3", "--label-map", str(tmp_path / "nfc.csv"), "-w", str(ws.root), "--json"]
    data = json.loads(runner.invoke(app, args).stdout)
    assert set(data["per_class"]) == {"mpox", "chickenpox", "(none)"} and data["no_prior_label"] == 1
    assert data["per_class"]["(none)"] == {"added": 2}
    assert (
        "1 file lies in a folder --label-map does not name: no prior label; add those folders to the map"
        in (data["warnings"])
    )
    (tmp_path / "same.csv").write_text("Mpox,mpox\nMPOX,Mpox\n")  # one label twice: fine
    args[args.index(str(tmp_path / "nfc.csv"))] = str(tmp_path / "same.csv")
    assert runner.invoke(app, args).exit_code == 0
    # a JSON map naming one folder twice kept the last silently (mpox photos labelled herpes); a spreadsheet's
    # CSV begins with a byte-order mark, which made its first folder "\ufeffMonkeypox" and unmatched
    (tmp_path / "twice.json").write_text('{"Monkeypox": "mpox", "Monkeypox": "genital_herpes"}')
    r = runner.invoke(app, [*args[:5], str(tmp_path / "twice.json"), *args[6:]])
    assert r.exit_code == 1 and "folder 'Monkeypox' is mapped twice, to 'mpox' and 'genital_herpes'" in r.output
    (tmp_path / "bom.csv").write_bytes("\ufeffMonkeypox,mpox\n".encode())
    r = runner.invoke(app, [*args[:3], "k5", args[4], str(tmp_path / "bom.csv"), *args[6:]])
    assert json.loads(r.stdout)["per_class"]["mpox"] == {"provenance": 1}  # the monkeypox photo, labelled
    (tmp_path / "twice.csv").write_text("Mpox,mpox\nMPOX,herpes\n")
    r = runner.invoke(
        app, ["ingest", str(folder), "-s", "k4", "--label-map", str(tmp_path / "twice.csv"), "-w", str(ws.root)]
    )
    assert r.exit_code == 1 and "folder 'MPOX' is mapped twice, to 'mpox' and 'herpes'" in r.output

    bad = tmp_path / "bad.csv"
    bad.write_text("Mpox,mpox,extra\n")
    r = runner.invoke(app, ["ingest", str(folder), "-s", "kaggle", "--label-map", str(bad), "-w", str(ws.root)])
    assert r.exit_code == 1
    assert f"{bad}:1: expected 'folder,label'" in r.output


def test_errors_are_one_line_and_exit_1(tmp_path):
    r = runner.invoke(app, ["status", "-w", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "no workspace at" in r.output and "curate init" in r.output
    Workspace.init(tmp_path / "ws")
    r = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "-s", "x", "-w", str(tmp_path / "ws")])
    assert r.exit_code == 1
    assert r.output.strip().count("\n") == 0 and "folder not found" in r.output
    r = runner.invoke(
        app, ["ingest", str(tmp_path), "-s", "x", "--case-id-pattern", "P\\d+", "-w", str(tmp_path / "ws")]
    )
    assert r.exit_code == 1 and "capture group" in r.output
    with Workspace.open(tmp_path / "ws").session() as s:
        assert s.exec(select(Image)).all() == []


def test_ingest_does_not_log_clinic_paths_at_info(tmp_path, caplog):
    import logging

    ws = Workspace.init(tmp_path / "ws")
    root = tmp_path / "Smith_John_DOB1970"
    root.mkdir()
    (root / "Smith_John_lesion.jpg").write_bytes(I.jpeg(7))
    with caplog.at_level(logging.INFO, logger="curate"):
        r = runner.invoke(app, ["ingest", str(root), "-s", "clinic", "-w", str(ws.root), "--json"])
    assert r.exit_code == 0
    assert "Smith" not in caplog.text


def test_error_text_with_brackets_is_printed_verbatim(tmp_path):
    """Clinic folder names like '[2022] photos' must not be eaten as terminal markup."""
    Workspace.init(tmp_path / "ws")
    missing = tmp_path / "[clinic] photos [/]"
    r = runner.invoke(app, ["ingest", str(missing), "-s", "x", "-w", str(tmp_path / "ws")])
    assert r.exit_code == 1
    assert f"folder not found: {missing}" in " ".join(r.output.split())


def patient_folder(root, n=3):
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"P0000{i} Jane Roe {i}.jpg").write_bytes(I.jpeg(200 + i))
    return root


def test_a_case_id_pattern_that_matches_few_or_no_files_is_counted_and_warned_about(tmp_path):
    """A typo in the pattern must not silently lose the patient grouping that keeps a patient in one split."""
    ws = Workspace.init(tmp_path / "ws")
    folder = patient_folder(tmp_path / "in")
    ingest = ["ingest", str(folder), "-s", "clinic", "-w", str(ws.root)]
    r = runner.invoke(app, [*ingest, "--case-id-pattern", r"(?P<case>p\d{5})"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "case id pattern matched 0 of 3 files" in out
    assert "warning: the case id pattern matched none of the 3 ingested files" in out

    (folder / "misc.jpg").write_bytes(I.jpeg(299))
    r = runner.invoke(app, [*ingest, "--case-id-pattern", r"(?P<case>P\d{5})", "--json"])
    data = json.loads(r.output)
    assert data["case_ids"] == {"matched": 3, "of": 4}
    assert data["warnings"] == ["the case id pattern did not match 1 of the 4 files: those have no case id"]
    with ws.session() as s:  # the re-run with the corrected pattern filled in the case ids the typo missed
        assert sorted(c for c in s.exec(select(Provenance.case_id)).all() if c) == ["P00000", "P00001", "P00002"]

    r = runner.invoke(app, [*ingest, "--json"])
    assert json.loads(r.output)["case_ids"] is None and json.loads(r.output)["warnings"] == []


def test_a_case_id_pattern_that_cuts_a_longer_id_records_none_and_says_so(tmp_path):
    """The probe's case: `--help`'s example `P\\d{4}` on five-digit ids took "P0000" from P00000, P00001 and
    P00002: three patients shared one case id, "matched 3 of 3", no warning. Now such a cut id is not recorded,
    counted in a warning that names no file or id, and the README's `P\\d{5}` (or `\\b`) records each patient's."""
    ws = Workspace.init(tmp_path / "ws")
    folder = patient_folder(tmp_path / "in")
    ingest = ["ingest", str(folder), "-s", "clinic", "-w", str(ws.root), "--json"]
    data = json.loads(runner.invoke(app, [*ingest, "--case-id-pattern", r"(?P<case>P\d{4})"]).output)
    assert data["case_ids"] == {"matched": 0, "of": 3, "cut": 3}
    [warning] = data["warnings"]
    assert "cut 3 file(s)' case id out of a longer run of digits or letters" in warning
    assert "P0000" not in warning.replace("P00012", "") and "Jane" not in warning
    with ws.session() as s:
        assert [c for c in s.exec(select(Provenance.case_id)).all() if c] == []
    data = json.loads(runner.invoke(app, [*ingest, "--case-id-pattern", r"(?P<case>P\d{4,})\b"]).output)
    assert data["case_ids"] == {"matched": 3, "of": 3} and data["warnings"] == []
    with ws.session() as s:
        assert sorted(c for c in s.exec(select(Provenance.case_id)).all() if c) == ["P00000", "P00001", "P00002"]


@pytest.mark.parametrize(
    "option, value",
    [
        ("--source", "clinic\x1b[2J"),
        ("--source", "two\nlines"),
        ("--source", "rtl\u202eevil"),
        ("--source", '=HYPERLINK("http://x","y")'),
        ("--source", "+1"),
        ("--source", "-2"),
        ("--source", "@SUM(A1)"),
        ("--licence", "=1+1"),
    ],
)
def test_names_that_rewrite_a_terminal_or_run_in_a_spreadsheet_are_refused(tmp_path, option, value):
    ws = Workspace.init(tmp_path / "ws")
    folder = patient_folder(tmp_path / "in", 1)
    other = [] if option == "--source" else ["--source=x"]
    r = runner.invoke(app, ["ingest", str(folder), *other, f"{option}={value}", "-w", str(ws.root)])
    assert r.exit_code == 1, r.output
    assert r.output.strip().count("\n") == 0 and f"error: {option} must not" in r.output
    with ws.session() as s:
        assert s.exec(select(Source)).all() == [] and s.exec(select(CommandRun)).all() == []


def test_a_file_is_not_a_folder_and_an_empty_folder_registers_no_source(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    photo = patient_folder(tmp_path / "in", 1) / "P00000 Jane Roe 0.jpg"
    r = runner.invoke(app, ["ingest", str(photo), "-s", "x", "-w", str(ws.root)])
    assert r.exit_code == 1 and "is a file; ingest takes a folder" in " ".join(r.output.split())

    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "-s", "empty", "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert "warning: no images found: nothing ingested; source 'empty' not registered" in " ".join(r.output.split())
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no photos here\n")
    (tmp_path / "notes" / ".gitkeep").write_bytes(b"")  # before: "rejected: empty file", and the source registered
    (tmp_path / "notes" / "notes.txt").write_bytes(b"")
    r = runner.invoke(app, ["ingest", str(tmp_path / "notes"), "-s", "notes", "-w", str(ws.root), "--json"])
    assert json.loads(r.output)["warnings"] == ["no images found: nothing ingested; source 'notes' not registered"]
    assert json.loads(r.output)["rejects"] == [] and len(json.loads(r.output)["skipped"]) == 3
    with ws.session() as s:
        assert s.exec(select(Source)).all() == []
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    r = runner.invoke(app, ["ingest", str(tmp_path / "cut"), "-s", "cut", "-w", str(ws.root), "--json"])
    assert json.loads(r.output)["warnings"] == [
        "nothing ingested: every one of the 1 image file(s) was rejected (reasons above)"
    ]


# --- --label-from-folders: a prior label is only ever a declared diagnosis ----------------------

PATIENTS = ("P12345_John_Smith_DOB1990", "P12347_Bob_Roe", "P12348_Ann_Lee", "P12362_Eve_Patient2_folder")


def no_patient_named(text: str) -> None:
    """No patient folder's name, as written or as a label would spell it, anywhere in `text`."""
    low = text.lower()
    for name in PATIENTS:
        assert name.lower() not in low, name
    for part in ("john", "smith", "dob1990", "bob_roe", "ann_lee", "eve_patient"):
        assert part not in low, part


def clinic_by_patient(root):
    """A clinic export sorted by patient: diagnosis folders inside a patient's folder, a patient's folder
    with none below it, one inside a diagnosis folder, and a folder named after no declared diagnosis."""
    from dedupe_corpus import photo, save, variant

    for j in range(3):
        save(photo(300 + j), root / PATIENTS[0] / "mpox" / f"img{j}.jpg")
        save(photo(310 + j), root / PATIENTS[0] / "Healthy skin" / f"img{j}.jpg")
    save(variant(photo(300), "reencode", 0), root / PATIENTS[1] / "visit1" / "a0.jpg")  # a copy: a dedupe cluster
    save(photo(320), root / PATIENTS[1] / "visit1" / "a1.jpg")
    for j in range(2):
        save(photo(330 + j), root / "Mpox" / PATIENTS[2] / f"b{j}.jpg")
    save(photo(340), root / "Herpes" / "P12349.jpg")  # not a declared diagnosis (genital_herpes is)
    return root


def test_label_from_folders_takes_the_nearest_declared_diagnosis_and_never_a_patient_folder(tmp_path):
    ws_dir = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws_dir)]).exit_code == 0
    clinic = clinic_by_patient(tmp_path / "clinic")
    ingest = ["ingest", str(clinic), "--source", "msh", "--label-from-folders", "-w", str(ws_dir), "--workers", "1"]
    r = runner.invoke(app, [*ingest, "--case-id-pattern", r"(?P<case>P\d{5})"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    warning = (
        "warning: 3 files lie under no folder named after a declared diagnosis (mpox, genital_herpes, genital_warts, "
        "primary_syphilis, secondary_syphilis, molluscum_contagiosum, dermatosis, healthy_skin): no prior label; "
        "name other folders' labels with --label-map (folder,label)"
    )
    assert warning in out and out.count("warning:") == 1
    texts = [r.output]

    (clinic / "Herpes" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")  # rejected, under no diagnosis
    r = runner.invoke(app, [*ingest, "--json"])  # a re-run: the same labels, the same count
    data = json.loads(r.stdout)
    assert data["no_prior_label"] == 3 and data["already_known"] == 11 and data["rejected"] == 1
    assert data["per_class"] == {
        "(none)": {"known": 3, "rejected": 1},
        "healthy_skin": {"known": 3},
        "mpox": {"known": 5},
    }
    assert data["warnings"] == [warning.removeprefix("warning: ")]
    texts.append(r.output)

    with Workspace.open(ws_dir).session() as s:
        stored = dict(s.exec(select(Provenance.locator, Provenance.prior_label)).all())
    by_folder = {loc.rsplit("/", 1)[0]: label for loc, label in stored.items()}
    assert by_folder == {
        f"{PATIENTS[0]}/mpox": "mpox",
        f"{PATIENTS[0]}/Healthy skin": "healthy_skin",
        f"{PATIENTS[1]}/visit1": None,
        f"Mpox/{PATIENTS[2]}": "mpox",
        "Herpes": None,
    }
    assert set(stored.values()) == {"mpox", "healthy_skin", None}  # the labels themselves: no patient folder

    r = runner.invoke(app, ["dedupe", "-w", str(ws_dir), "--workers", "1", "--min-side", "64"])
    assert r.exit_code == 0, r.output
    texts.append(r.output)
    sheet = (ws_dir / "reports" / "dedupe-review.html").read_text()
    assert "prior label: mpox" in sheet and "prior label: none" in sheet  # the copy in the patient's folder
    texts.append(sheet)
    for args in (["status", "-w", str(ws_dir)], ["status", "-w", str(ws_dir), "--json"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        texts.append(r.output)
    assert json.loads(r.stdout)["by_prior_label"] == {"(none)": 3, "healthy_skin": 3, "mpox": 5}
    for text in texts:
        no_patient_named(text)


def test_the_folders_that_label_are_the_workspaces_declared_diagnoses(tmp_path):
    """A study that declares its own list: its diagnoses label, the paper's others no longer do."""
    ws = Workspace.init(tmp_path / "ws")
    with open(ws.root / "curate.toml", "a") as f:
        f.write(
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }, { slug = "chickenpox", name = "Chickenpox" }]\n'
        )
    folder = tmp_path / "in"
    for j, name in enumerate(("Chickenpox", "MPOX", "healthy_skin")):
        (folder / name).mkdir(parents=True)
        (folder / name / f"x{j}.jpg").write_bytes(I.jpeg(500 + j))
    r = runner.invoke(app, ["ingest", str(folder), "-s", "c", "--label-from-folders", "-w", str(ws.root), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data["per_class"]) == {"chickenpox", "mpox", "(none)"} and data["no_prior_label"] == 1
    assert data["warnings"] == [
        "1 file lies under no folder named after a declared diagnosis (mpox, chickenpox): no prior label; "
        "name other folders' labels with --label-map (folder,label)"
    ]
    r = runner.invoke(app, ["ingest", str(folder), "-s", "c", "-w", str(ws.root), "--json"])
    assert json.loads(r.stdout)["no_prior_label"] is None  # no --label-from-folders: no labels, no warning


def test_pipeline_sources_label_from_diagnosis_folders_only(tmp_path, monkeypatch):
    """incoming/<source>/ takes labels from folders by default: a patient's folder inside one is no label."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "incoming" / "msh-clinic"
    for j in range(2):
        (src / "healthy_skin" / PATIENTS[3]).mkdir(parents=True, exist_ok=True)
        (src / "healthy_skin" / PATIENTS[3] / f"h{j}.jpg").write_bytes(I.jpeg(600 + j))
        (src / PATIENTS[0]).mkdir(exist_ok=True)
        (src / PATIENTS[0] / f"u{j}.jpg").write_bytes(I.jpeg(610 + j))
    r = runner.invoke(app, ["pipeline"])
    assert r.exit_code == 0, r.output
    assert "warning: 2 files lie under no folder named after a declared diagnosis" in " ".join(r.output.split())
    no_patient_named(r.output)
    st = runner.invoke(app, ["status", "--json"])
    assert json.loads(st.stdout)["by_prior_label"] == {"(none)": 2, "healthy_skin": 2}
    no_patient_named(st.output)


def test_a_re_run_fills_in_labels_and_licence_the_first_run_forgot_and_says_what_it_kept(tmp_path):
    """Before: a second ingest with --label-from-folders and --licence printed 'mpox … already known 3' and stored
    neither: status showed every image unlabelled, and the review sheet never flagged mixed-label clusters."""
    ws_dir, folder = tmp_path / "ws", make_folder(tmp_path / "in")
    runner.invoke(app, ["init", str(ws_dir)])
    first = runner.invoke(app, ["ingest", str(folder), "-s", "clinic", "-w", str(ws_dir)])
    assert first.exit_code == 0, first.output
    again = ["ingest", str(folder), "-s", "clinic", "-w", str(ws_dir), "--json"]
    data = json.loads(runner.invoke(app, [*again, "--label-from-folders", "--licence", "CC-BY-4.0"]).output)
    assert data["already_known"] == 6 and data["kept_recorded"] == {} and data["warnings"] == []
    st = json.loads(runner.invoke(app, ["status", "-w", str(ws_dir), "--json"]).output)
    assert st["by_prior_label"] == {"healthy_skin": 3, "mpox": 3}
    ws = Workspace.open(ws_dir)
    with ws.session() as s:
        assert set(s.exec(select(Provenance.licence)).all()) == {"CC-BY-4.0"}
        assert s.exec(select(Source.licence)).one() == "CC-BY-4.0"
    mapping = tmp_path / "map.csv"
    mapping.write_text("folder,label\nMpox,herpes\nHealthy skin,healthy_skin\n")
    data = json.loads(runner.invoke(app, [*again, "--label-map", str(mapping)]).output)
    assert data["kept_recorded"] == {"prior_label": 3}
    assert any("keep what was recorded then" in w and "3 prior label(s)" in w for w in data["warnings"])
    st = json.loads(runner.invoke(app, ["status", "-w", str(ws_dir), "--json"]).output)
    assert st["by_prior_label"] == {"healthy_skin": 3, "mpox": 3}  # a re-run never relabels


def test_init_shows_a_folder_name_with_control_characters_escaped(tmp_path):
    """Before: `curate init` printed the folder's name as it was: a newline split its line and an escape
    sequence retitled the terminal (ingest showed the same names escaped)."""
    name = "f11\n\x1b]0;OWNED\x07x"
    r = runner.invoke(app, ["init", str(tmp_path / name)])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\x07" not in r.output and r.output.strip().count("\n") == 0
    assert "\\x1b]0;OWNED" in r.output


def test_a_cut_case_id_and_a_photo_under_three_labels_are_counted_as_files(tmp_path):
    """Before: "the case id pattern matched 2 of 3 files; the rest have no case id" after "cut 1 file(s)' case id"
    (the cut one has none either: 1 matched), and one file meeting two other labels was "2 file(s)"."""
    ws = Workspace.init(tmp_path / "ws")
    folder = tmp_path / "in"
    for diagnosis, name in (("Mpox", "P12345 a.jpg"), ("Healthy skin", "P123456 b.jpg"), ("Dermatosis", "c.jpg")):
        (folder / diagnosis).mkdir(parents=True, exist_ok=True)
        (folder / diagnosis / name).write_bytes(I.jpeg(41))  # one photo, three labels
    (folder / "Mpox" / "d.jpg").write_bytes(I.jpeg(42))
    args = ["ingest", str(folder), "-s", "web", "--label-from-folders", "-w", str(ws.root), "--json"]
    data = json.loads(runner.invoke(app, [*args, "--case-id-pattern", r"(?P<case>P\d{5})"]).stdout)
    assert data["case_ids"] == {"matched": 1, "of": 4, "cut": 1}
    said = " ".join(data["warnings"])
    assert "cut 1 file(s)' case id" in said and "did not match 2 of the 4 files: those have no case id" in said
    assert sum(data["conflicting_prior_labels"].values()) == 3  # (mpox, healthy skin), (dermatosis, each)
    assert "2 file(s) are the same bytes as a photo recorded with another prior label" in said
    # the same photo once more, with no label: before, status counted it under "(none)" as well as its labels
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "e.jpg").write_bytes(I.jpeg(41))
    runner.invoke(app, ["ingest", str(tmp_path / "plain"), "-s", "web2", "-w", str(ws.root)])
    st = json.loads(runner.invoke(app, ["status", "-w", str(ws.root), "--json"]).stdout)
    assert "(none)" not in st["by_prior_label"] and st["by_prior_label"]["mpox"] == 2


def test_one_photo_under_two_diagnoses_is_said_at_ingest_and_in_status(tmp_path):
    """Before: the same bytes in `Mpox/` and `Healthy skin/` went in with no warning, and `curate status` counted
    one image as one mpox and one healthy skin photo."""
    ws = Workspace.init(tmp_path / "ws")
    folder = tmp_path / "in"
    for diagnosis, name in (("Mpox", "a.jpg"), ("Healthy skin", "b.jpg"), ("Mpox", "c.jpg")):
        (folder / diagnosis).mkdir(parents=True, exist_ok=True)
        (folder / diagnosis / name).write_bytes(I.jpeg(31 if name != "c.jpg" else 32))
    args = ["ingest", str(folder), "-s", "web", "--label-from-folders", "-w", str(ws.root), "--json"]
    data = json.loads(runner.invoke(app, args).stdout)
    assert data["conflicting_prior_labels"] == {"healthy_skin|mpox": 1}
    assert any(
        w.startswith("1 file(s) are the same bytes as a photo recorded with another prior label")
        for w in data["warnings"]
    )
    st = runner.invoke(app, ["status", "-w", str(ws.root)])
    assert "1 image(s) were ingested under two prior labels" in " ".join(st.output.split())
    assert (
        json.loads(runner.invoke(app, ["status", "-w", str(ws.root), "--json"]).stdout)["conflicting_prior_labels"] == 1
    )
    again = json.loads(runner.invoke(app, args).stdout)  # a re-run: nothing new arrives, nothing said again
    assert again["conflicting_prior_labels"] == {}


def test_a_case_id_pattern_that_takes_in_what_follows_on_purpose_cuts_nothing():
    """The review's false positives: an id followed by a photo number the pattern consumes, a later match that
    is whole, an id glued to a word in another script."""
    import regex

    from curate.intake.ingest import CutCaseId, case_id

    assert case_id(regex.compile(r"^(?P<case>\d{4})\d{2}"), "123401.jpg") == "1234"
    assert case_id(regex.compile(r"(?P<case>\d{5})"), "IMG_20220105_12345.jpg") == "12345"
    assert case_id(regex.compile(r"(?P<case>P\d{4})"), "患者P0001/1.jpg") == "P0001"
    with pytest.raises(CutCaseId):
        case_id(regex.compile(r"(?P<case>P\d{4})"), "P00012 Jane/1.jpg")


def test_train_runs_inside_the_workspace_are_never_ingested(tmp_path):
    """`train run` writes to runs/ by default, inside the workspace where README runs it: copies of photos
    (`*-original.png`) and Grad-CAM overlays. `curate ingest .` took them in as new photos of a new source."""
    ws = Workspace.init(tmp_path / "ws")
    gradcam = ws.root / "runs" / "mpox-1.0.0" / "resnet18-s0" / "gradcam"
    gradcam.mkdir(parents=True)
    (gradcam / "true_positive-7-original.png").write_bytes(I.png16(51))
    (ws.root / "incoming").mkdir()
    (ws.root / "incoming" / "new.jpg").write_bytes(I.jpeg(52))
    r = runner.invoke(app, ["ingest", str(ws.root), "-s", "self", "-w", str(ws.root), "--json"])
    data = json.loads(r.stdout)
    assert data["added"] == 1, data
    assert {"file": "runs/", "reason": "the workspace's own folder (copies of stored photos; not read)"} in data[
        "skipped"
    ]
