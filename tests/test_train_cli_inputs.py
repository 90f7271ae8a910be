"""Hostile inputs to `train run / predict / export-model`: options out of range, special files, bad and tiny
photos, patient names in file names, and the exported model's file mode."""

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from train_fixtures import new_jpeg, write_export

ROOT = str(Path(__file__).resolve().parents[1])
PATIENT = "P12345_John Smith"


def train_cli(*args, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """The real entry point (`train.cli:main`: umask, SafeGroup), in a child so a hang fails instead of blocking."""
    cmd = [sys.executable, "-c", "from train.cli import main; main()", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


# ------------------------------------------------------------------ train run: options checked up front
@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_export(tmp_path_factory.mktemp("ws"))


@pytest.mark.parametrize(
    "option, code, text",
    [
        (["--lr", "-1"], 2, "Invalid value for '--lr': a number above 0 and at most 1, not -1.0"),
        (["--lr", "0"], 2, "Invalid value for '--lr': a number above 0 and at most 1, not 0.0"),
        (["--lr", "nan"], 2, "Invalid value for '--lr': a number above 0 and at most 1, not nan"),
        (["--dropout", "5"], 2, "Invalid value for '--dropout': a number at least 0 and below 1, not 5.0"),
        (["--dropout", "1"], 2, "Invalid value for '--dropout': a number at least 0 and below 1, not 1.0"),
        (["--weights", "random"], 1, "error: --weights random: no such file (use imagenet, none, or a state-dict"),
        (["--threshold", "7"], 2, "Invalid value for '--threshold'"),
        (["--threshold", "nan"], 2, "Invalid value for '--threshold'"),
        (["--image-size", "0"], 2, "Invalid value for '--image-size'"),
        (["--seed", "-1"], 2, "Invalid value for '--seed'"),
        (["--folds", "1"], 2, "Invalid value for '--folds'"),
        (["--bootstrap", "10000000"], 2, "Invalid value for '--bootstrap'"),
        (["--epochs", "150000"], 2, "Invalid value for '--epochs'"),
        (["--target-sensitivity", "nan"], 2, "Invalid value for '--target-sensitivity'"),
    ],
)
def test_run_refuses_an_option_out_of_range_before_any_folder(export, tmp_path, option, code, text):
    """Refused in the CLI or by TrainConfig.validate, before torch loads: no run folder (default or --out) is left."""
    res = train_cli("run", "--dataset", export, "--arch", "resnet18", "--weights", "none", *option, cwd=tmp_path)
    assert res.returncode == code, res.stderr[-800:]
    assert text in " ".join(res.stderr.split()), res.stderr[-800:]
    if code == 1:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr  # one line, no traceback
    assert res.stdout == "" and not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["out", "cwd"])
def test_a_run_folder_inside_the_dataset_version_is_refused(tmp_path, where):
    """Before: `--out` inside the version (or `-d .` from inside it, whose default run folder is under it) wrote
    the run and its feature cache into the sealed version, which then failed its checksums for every later run."""
    import shutil

    version = tmp_path / "v"
    shutil.copytree(write_export(tmp_path / "ws"), version)
    args = ["run", "--arch", "resnet18", "--weights", "none", "--epochs", "1", "--image-size", "32"]
    if where == "out":
        res = train_cli(*args, "--dataset", version, "--out", version / "myrun", cwd=tmp_path)
    else:
        res = train_cli(*args, "--dataset", ".", cwd=version)
    assert res.returncode == 1 and "is inside the dataset version" in res.stderr, res.stderr[-800:]
    assert len(res.stderr.strip().splitlines()) == 1
    from curate.dataset import DatasetVersion

    DatasetVersion.open(version).verify()  # still whole: nothing was written into it


@pytest.mark.parametrize("command", ["predict", "compare", "export-model"])
def test_outputs_inside_a_dataset_version_are_refused(triage_run, tmp_path, command):
    """Before: `train predict --out <version>/train` wrote 000-gradcam.png into the sealed version (so did compare
    and export-model), and every later `train run` and leakage audit of it failed: "1 extra"."""
    from curate.dataset import DatasetVersion

    version = Path(json.loads((triage_run / "run.json").read_text())["dataset"]["path"])
    photo = next(version.rglob("*.jpg"))
    inside = {"predict": version / "train", "compare": version / "cmp", "export-model": version / "m.onnx"}[command]
    args = {
        "predict": ["predict", photo, "--run", triage_run, "--out", inside],
        "compare": ["compare", triage_run, "--out", inside],
        "export-model": ["export-model", triage_run, "--out", inside],
    }[command]
    res = train_cli(*args, cwd=tmp_path)
    assert res.returncode == 1 and "is inside the dataset version" in res.stderr, res.stderr[-800:]
    assert len(res.stderr.strip().splitlines()) == 1
    DatasetVersion.open(version).verify()  # still whole: nothing was written into it


def test_export_model_out_under_a_file_or_in_an_unwritable_place_names_what_is_wrong(triage_run, tmp_path):
    """Before: `--out afile/x.onnx` said "cannot write or read afile (File exists): check that folder's permissions
    and free space", and `--out /proc/x.onnx` named its temporary file, `/proc/x.onnx.card.md.rvp3davk.part`."""
    (tmp_path / "afile").write_text("notes")
    res = train_cli("export-model", triage_run, "--out", tmp_path / "afile" / "x.onnx", cwd=tmp_path)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-800:]
    assert f"{tmp_path / 'afile'} is a file, not a folder" in res.stderr
    res = train_cli("export-model", triage_run, "--out", "/proc/x.onnx", cwd=tmp_path)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-800:]
    assert "/proc/x.onnx" in res.stderr and ".part" not in res.stderr


def test_a_damaged_image_of_a_sealed_version_is_named(tmp_path):
    """Before: a JPEG cut short before the version was sealed (its checksums match) stopped `train run` with
    "unexpected OSError: image file is truncated", naming no file."""
    from train_fixtures import replace_file

    version = write_export(tmp_path / "ws")
    rel = next(
        p.relative_to(version) for p in sorted(version.rglob("*.jpg")) if p.relative_to(version).parts[0] == "train"
    )
    replace_file(version, str(rel), (version / rel).read_bytes()[:300])
    res = train_cli(
        "run", "--dataset", version, "--arch", "resnet18", "--weights", "none", "--epochs", "1", "--image-size", "32",
        "--out", tmp_path / "run", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-800:]
    line = res.stderr.strip().splitlines()[-1]
    assert f"cannot read image {version / rel}: damaged or not an image" in line and "unexpected" not in line


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_folder_stopped_before_its_run_began_is_taken_over(export, tmp_path, resume):
    """Before: a folder holding only config.json (a run stopped in its first milliseconds) or nothing was refused
    by a plain re-run ("pass --resume") and by --resume ("not a run folder") alike."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"dataset": str(export), "arch": "resnet18", "out": str(out)}))
    args = ["run", "--dataset", export, "--arch", "resnet18", "--weights", "none", "--epochs", "1"]
    res = train_cli(*args, "--image-size", "32", "--out", out, *(["--resume"] if resume else []), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-800:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    other = tmp_path / "other-tool"  # another tool's config.json is not a run's: refused, never overwritten
    other.mkdir()
    (other / "config.json").write_text('{"my": "settings"}')
    res = train_cli(*args, "--image-size", "32", "--out", other, cwd=tmp_path)
    assert res.returncode == 1 and "already exists" in res.stderr
    assert (other / "config.json").read_text() == '{"my": "settings"}'


def test_config_validates_every_numeric_field():
    from train.config import TrainConfig
    from train.errors import TrainError

    base = {"dataset": "x", "arch": "resnet18", "out": "o", "weights": "none"}
    TrainConfig(**base).validate()
    for field, bad in [
        ("epochs", 0),
        ("batch_size", 0),
        ("lr", float("inf")),
        ("folds", 0),
        ("seed", 2**32),
        ("image_size", 0),
        ("image_size", 4096),
        ("dropout", -0.1),
        ("threshold", 1.5),
        ("target_sensitivity", 0),
        ("bootstrap", 5),
        ("bootstrap", 10**7),  # a typo's extra zeros: hours of resampling after the training
        ("epochs", 150_000),
        ("batch_size", 10**6),
        ("pointing_max", 0),
        ("epochs", 2.5),
        ("lr", "3e-4"),
    ]:
        with pytest.raises(TrainError, match=f"^--{field.replace('_', '-')} must be .*, not "):
            TrainConfig(**base, **{field: bad}).validate()


@pytest.mark.torch
@pytest.mark.parametrize("held", ["bytes", "a list"])
def test_run_with_an_unloadable_weights_file_leaves_no_folder(export, tmp_path, held):
    """`--weights FILE` that is not a state dict fails while loading it, before the run folder is made. A file
    torch loads that holds no dict (a list of tensors) said "unexpected TypeError: Expected state_dict to be
    dict-like"."""
    torch = pytest.importorskip("torch")
    if held == "bytes":
        (tmp_path / "w.pth").write_bytes(b"not a state dict")
    else:
        torch.save([torch.zeros(2)], tmp_path / "w.pth")
    res = train_cli(
        "run", "--dataset", export, "--arch", "resnet18", "--weights", "w.pth", "--out", "runs/r", cwd=tmp_path
    )
    assert res.returncode == 1 and "--weights w.pth is not a loadable state dict" in res.stderr, res.stderr[-800:]
    assert "unexpected" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ predict: special files, bad and tiny photos
def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 110)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.torch
@pytest.mark.slow
def test_predict_reports_bad_inputs_and_triages_the_rest(triage_run):
    """A FIFO, a folder, a socket, a text file, a truncated JPEG, a 150 MB file and an empty one: one error line
    each, never opened for reading when not regular files (nor read past the bound); every good photo is still
    triaged, in --json too; exit 1."""
    good = new_jpeg(size=48)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # short: a socket's path has ~100 characters at most
        d = Path(d)
        (d / "a.jpg").write_bytes(good)
        os.mkfifo(d / "pipe.jpg")
        (d / "folder.jpg").mkdir()
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(d / "sock.jpg"))
        (d / "text.jpg").write_text("not a photo\n")
        (d / "cut.jpg").write_bytes(good[: len(good) // 2])
        (d / "b.jpg").write_bytes(new_jpeg(size=48, seed=5))
        with open(d / "huge.jpg", "wb") as fh:  # sparse: 150 MB that take no disk, refused by size unread
            fh.truncate(150_000_000)
        names = ["a.jpg", "pipe.jpg", "folder.jpg", "sock.jpg", "text.jpg", "cut.jpg", "b.jpg", "missing.jpg"]
        (d / "empty.jpg").write_bytes(b"")
        names += ["huge.jpg", "empty.jpg"]
        try:
            res = train_cli(
                "predict", *[d / n for n in names], "--run", triage_run, "--out", d / "out", "--json", cwd=d
            )
        finally:
            sock.close()
        assert res.returncode == 1, res.stderr[-800:]
        out = json.loads(res.stdout)
        assert [Path(r["image"]).name for r in out] == names
        for r in out:
            if r["image"].endswith(("/a.jpg", "/b.jpg")):
                assert "error" not in r and abs(sum(r["probabilities"].values()) - 1) < 1e-5
            else:
                assert set(r) == {"image", "error"} and Path(r["image"]).name in r["error"]
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 8 and len(res.stderr.strip().splitlines()) == 8, res.stderr
        text = " ".join(res.stderr.split())
        for name, why in [
            ("pipe.jpg", "a named pipe"),
            ("folder.jpg", "a folder"),
            ("sock.jpg", "a socket"),
            ("text.jpg", "not a photo format train reads"),
            ("cut.jpg", "damaged or truncated"),
            ("missing.jpg", "No such file"),
            ("huge.jpg", "150 MB is over the 100 MB a photo may have"),
            ("empty.jpg", "the file is empty"),  # as serve says of an empty upload
        ]:
            assert f"cannot read image {d / name}" in text and why in text, (name, text)  # as given: the folder too
        assert sorted(p.name for p in (d / "out").iterdir()) == ["000-gradcam.png", "006-gradcam.png"]


@pytest.mark.torch
@pytest.mark.slow
def test_predict_table_lists_the_good_photos_and_names_the_bad_one(triage_run, tmp_path):
    (tmp_path / "a.jpg").write_bytes(new_jpeg(size=48))
    (tmp_path / "notes.jpg").write_text("clinic notes")
    res = train_cli("predict", "a.jpg", "notes.jpg", "--run", triage_run, "--out", "out", cwd=tmp_path)
    assert res.returncode == 1 and "Triage with" in res.stdout and "a.jpg" in res.stdout
    assert "notes.jpg" not in res.stdout and res.stderr.strip().splitlines() == [
        "error: cannot read image notes.jpg: not a photo format train reads (JPEG, PNG, WebP, HEIC, TIFF, BMP, GIF)"
    ]


@pytest.mark.torch
@pytest.mark.slow
def test_predict_tells_two_photos_of_one_name_apart(triage_run, tmp_path):
    """Before: a/photo.jpg and b/photo.jpg were two table rows "photo.jpg" with different decisions."""
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "photo.jpg").write_bytes(new_jpeg(size=48, seed=seed))
    res = train_cli("predict", "a/photo.jpg", "b/photo.jpg", "--run", triage_run, "--out", "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-800:]
    assert "a/photo.jpg" in res.stdout and "b/photo.jpg" in res.stdout


@pytest.mark.torch
@pytest.mark.slow
def test_predict_flags_a_tiny_picture(triage_run, tmp_path):
    """A 1×1 or 20×300 picture is decided, with a warning line and `low_resolution` (the model's input is 32 px)."""
    (tmp_path / "dot.png").write_bytes(_png((1, 1)))
    (tmp_path / "strip.png").write_bytes(_png((300, 20)))
    (tmp_path / "ok.jpg").write_bytes(new_jpeg(size=48))
    res = train_cli("predict", "dot.png", "strip.png", "ok.jpg", "--run", triage_run, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-800:]
    out = json.loads(res.stdout)
    assert [r["low_resolution"] for r in out] == [True, True, False]
    assert [r["size"] for r in out] == [[1, 1], [300, 20], [48, 48]]
    assert all(r["decision"] for r in out) and out[2]["warning"] is None
    warnings = res.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning:") for w in warnings), res.stderr
    assert "dot.png is 1×1 px, below 32 px on its shorter side" in warnings[0] and "strip.png" in warnings[1]
    res = train_cli("predict", "dot.png", "--run", triage_run, "--out", "o", cwd=tmp_path)
    assert res.returncode == 0 and "(low res.)" in res.stdout and "warning: image dot.png" in res.stderr


@pytest.mark.torch
@pytest.mark.slow
def test_predict_overlay_names_hold_no_part_of_the_input_name(triage_run, tmp_path):
    """Grad-CAM overlays go into a folder people share: named by position, the JSON maps input to picture."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for n in ("a", "b"):
        (tmp_path / n).mkdir()
        photo = Image.open(io.BytesIO(new_jpeg(size=48, seed=ord(n))))
        photo.save(tmp_path / n / f"{PATIENT}.jpg", quality=95, comment=PATIENT.encode(), icc_profile=icc)
    res = train_cli(
        "predict", f"a/{PATIENT}.jpg", f"b/{PATIENT}.jpg", "--run", triage_run, "--out", "o", "--json", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr[-800:]
    out = json.loads(res.stdout)
    assert [Path(r["gradcam"]).name for r in out] == ["000-gradcam.png", "001-gradcam.png"]
    assert [r["image"] for r in out] == [f"a/{PATIENT}.jpg", f"b/{PATIENT}.jpg"]
    written = [p.name for p in (tmp_path / "o").iterdir()]
    assert sorted(written) == ["000-gradcam.png", "001-gradcam.png"]
    for part in ("P12345", "John", "Smith"):
        assert not any(part in name for name in written)
    for name in written:  # nor in the pictures: Pillow would carry the photo's comment and ICC profile over
        assert b"Smith" not in (tmp_path / "o" / name).read_bytes() and not Image.open(tmp_path / "o" / name).info


@pytest.mark.torch
def test_predict_refuses_a_threshold_out_of_range(triage_run):
    from train.errors import TrainError
    from train.predict import predict

    with pytest.raises(TrainError, match=r"^--threshold must be a number from 0 to 1, not 7"):
        predict(triage_run, [], threshold=7)


# ------------------------------------------------------------------ export-model: owner-only file
@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_is_owner_only_whatever_the_umask(triage_run, tmp_path, fmt):
    """0600 like its card, under umask 022; an --out without the format's suffix is still read back."""
    from typer.testing import CliRunner

    from train.cli import app

    old = os.umask(0o022)  # CliRunner skips main()'s umask: the mode must not depend on it
    try:
        res = CliRunner().invoke(app, ["export-model", str(triage_run), "-f", fmt, "--out", str(tmp_path / "m")])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "m.card.md").stat().st_mode & 0o777 == 0o600


def test_predict_numbers_its_folder_past_a_folder_named_in_other_digits(tmp_path):
    """`train predict` without --out numbers a new folder under <run>/predict; a folder "²" there passed
    str.isdigit and int() refused it, so every later predict into that run stopped with a ValueError."""
    from train.predict import _next_batch

    for name in ("²", "٣", "002", "notes"):
        (tmp_path / name).mkdir()
    assert _next_batch(tmp_path) == tmp_path / "003"
    assert _next_batch(tmp_path) == tmp_path / "004"
