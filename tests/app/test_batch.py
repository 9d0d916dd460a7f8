"""Many inputs in one command: output names, resume, failures, summaries, workers, Ray."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import photo_like

from lrcodec import encoder
from lrcodec.app import batch
from lrcodec import codec
from lrcodec.app.cli import main
from lrcodec.errors import LrcodecError
from lrcodec.metrics import bits_per_pixel, rd_loss
from lrcodec.models import load_model
from lrcodec.settings import EFFORTS, EncodeSettings


@pytest.fixture
def photos(tmp_path):
    """photos/a.png, photos/sub/b.png, photos/sub/c.jpg and a broken photos/sub/bad.png."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    photo_like(64, 48, seed=1).save(root / "a.png")
    photo_like(50, 70, seed=2).save(root / "sub" / "b.png")
    photo_like(40, 40, seed=3).convert("RGB").save(root / "sub" / "c.jpg", quality=95)
    (root / "sub" / "bad.png").write_bytes(b"not an image")
    (root / "notes.txt").write_text("not an image either, and not picked up")
    return root


def test_plan_keeps_subfolders_and_refuses_two_inputs_for_one_output(photos, tmp_path):
    jobs = batch.plan([str(photos)], "out")
    assert [(Path(j.source).relative_to(photos).as_posix(), j.target) for j in jobs] == [
        ("a.png", "out/a.lrc"), ("sub/b.png", "out/sub/b.lrc"), ("sub/bad.png", "out/sub/bad.lrc"),
        ("sub/c.jpg", "out/sub/c.lrc")]
    (tmp_path / "other").mkdir()
    photo_like(8, 8).save(tmp_path / "other" / "a.png")
    with pytest.raises(LrcodecError, match="would both be written to out/a.lrc"):
        batch.plan([str(photos), str(tmp_path / "other" / "a.png")], "out")
    with pytest.raises(LrcodecError, match="no such file or folder"):
        batch.plan([str(tmp_path / "missing")], "out")


def test_folder_encode_goes_on_after_a_bad_file_and_resumes(models_dir, photos, tmp_path):
    out, summary = tmp_path / "out", tmp_path / "run.csv"
    r = CliRunner().invoke(main, ["encode", str(photos), "-o", str(out), "-e", "0", "--summary", str(summary)])
    assert r.exit_code == 1
    assert "Error: " in r.output and "bad.png is not a readable image" in r.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a.lrc", "sub/b.lrc", "sub/c.lrc"]  # nothing for the bad file, no temporary files
    rows = list(csv.DictReader(summary.open()))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"]
    for row in rows:
        if row["status"] == "ok":
            data = Path(row["output"]).read_bytes()
            assert int(row["bytes"]) == len(data)
            assert codec.decode_image(data).size == tuple(int(row[k]) for k in ("width", "height"))

    # A rerun skips what exists (and still reports the bad file); --force redoes it.
    before = (out / "a.lrc").stat().st_mtime_ns
    r = CliRunner().invoke(main, ["encode", str(photos), "-o", str(out), "-e", "0", "--summary", str(summary)])
    assert r.exit_code == 1 and "3 skipped" in r.output
    assert (out / "a.lrc").stat().st_mtime_ns == before
    (photos / "sub" / "bad.png").unlink()
    r = CliRunner().invoke(main, ["encode", str(photos), "-o", str(out), "-e", "0", "--force",
                                  "--summary", str(tmp_path / "run.json")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "run.json").read_text())
    assert [r["status"] for r in report["images"]] == ["ok", "ok", "ok"]
    assert report["settings"]["effort"] == 0


def test_many_inputs_need_an_output_folder(models_dir, photos):
    r = CliRunner().invoke(main, ["encode", str(photos / "a.png"), str(photos / "sub" / "b.png")])
    assert r.exit_code == 1 and "-o DIR" in r.output


def test_effort_0_is_the_plain_encode_byte_for_byte(models_dir, photos, tmp_path):
    image = photo_like(64, 48, seed=1)
    plain = codec.encode_image(image, load_model()).data
    r = CliRunner().invoke(main, ["encode", str(photos / "a.png"), "-o", str(tmp_path / "a.lrc"), "--effort", "0",
                                  "--summary", str(tmp_path / "one.json")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a.lrc").read_bytes() == plain
    (row,) = json.loads((tmp_path / "one.json").read_text())["images"]
    assert (row["status"], row["bytes"], row["iterations"]) == ("ok", len(plain), 0)


def _rd_loss(data: bytes, image, lmbda: float) -> float:
    """The R-D loss a user sees: real bytes, real decoded 8-bit pixels."""
    import numpy as np

    decoded = np.asarray(codec.decode_image(data), np.float64)
    mse = np.mean((decoded - np.asarray(image, np.float64)) ** 2) / 255**2
    return rd_loss(lmbda, mse, bits_per_pixel(8 * len(data), image.width * image.height))


def test_effort_levels_refine_and_are_never_worse(models_dir, photos):
    data = (photos / "a.png").read_bytes()
    image = photo_like(64, 48, seed=1)
    plain = encoder.encode_bytes(data, "a.png", EncodeSettings(effort=0))
    for effort in (1, 2):
        outcome = encoder.encode_bytes(data, "a.png", EncodeSettings(effort=effort))
        assert 0 < outcome.row["iterations"] <= EFFORTS[effort].iterations
        assert outcome.row["base_bytes"] == len(plain.data)
        assert codec.decode_latents(outcome.data).header.refined or outcome.data == plain.data
        assert _rd_loss(outcome.data, image, 0.01) <= _rd_loss(plain.data, image, 0.01)


def test_jobs_run_in_worker_processes(models_dir, photos, tmp_path):
    (photos / "sub" / "bad.png").unlink()
    jobs = batch.plan([str(photos)], str(tmp_path / "out"))
    rows = batch.run(jobs, EncodeSettings(effort=0), workers=2)
    assert [r["status"] for r in rows] == ["ok"] * 3
    for job in jobs:
        assert codec.decode_image(Path(job.target).read_bytes()).size


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_one_is_a_clear_error(models_dir, photos, tmp_path):
    r = CliRunner().invoke(main, ["encode", str(photos / "a.png"), "-o", str(tmp_path / "a.lrc"), "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA device" in r.output
    assert not (tmp_path / "a.lrc").exists()


# ------------------------------------------------------------------ Ray, on a local instance


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def crash_once(markers: Path):
    """A Ray task that kills its worker process the first time it sees an image."""

    def task(source, data, settings, inner):
        marker = markers / (Path(source).name + ".seen")
        if not marker.exists():
            marker.write_text("")
            os._exit(1)
        return batch._ray_task(source, data, settings, inner)

    return task


def test_ray_executor_encodes_a_folder_and_retries_a_dead_worker(models_dir, photos, tmp_path, local_ray):
    model = str(models_dir / "tiny.safetensors")  # a path: Ray's workers do not see monkeypatched env
    settings = EncodeSettings(model=model, effort=1)
    out = tmp_path / "out"
    rows = batch.run(batch.plan([str(photos)], str(out)), settings, executor="ray", workers=2)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"]
    assert "not a readable image" in rows[2]["error"]
    for row in rows:
        if row["status"] == "ok":
            assert codec.decode_image(Path(row["output"]).read_bytes(), load_model(model)).size

    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = batch.plan([str(photos / "a.png")], str(tmp_path / "retried"))
    results = list(batch._run_ray(jobs, EncodeSettings(model=model, effort=0), None, 2,
                                  task_function=crash_once(markers)))
    assert (markers / "a.png.seen").exists()
    (job, outcome), = results
    assert outcome.data is not None and outcome.row["bytes"] == len(outcome.data)


def test_images_of_one_size_are_grouped_and_refined_as_one_batch(models_dir, photos, tmp_path):
    photo_like(64, 48, seed=9).save(photos / "sub" / "d.png")
    jobs = batch.plan([str(photos)], str(tmp_path / "out"))
    groups = [[Path(j.source).name for j in g] for g in batch._gpu_batches(jobs)]
    assert sorted(groups) == [["a.png", "d.png"], ["b.png"], ["bad.png"], ["c.jpg"]]

    items = [(str(photos / n), (photos / n).read_bytes()) for n in ("a.png", "sub/d.png", "sub/bad.png")]
    a, d, bad = encoder.encode_group(items, EncodeSettings(effort=1))
    assert bad.data is None and "not a readable image" in bad.row["error"]
    for outcome in (a, d):
        assert outcome.row["batch"] == 2 and outcome.row["bytes"] == len(outcome.data)
        assert codec.decode_image(outcome.data).size == (64, 48)
