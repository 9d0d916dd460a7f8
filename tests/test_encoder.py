"""The one encoder (lrcodec/encoder.py): every caller writes the same file for the same
settings; --tune and --roi steer refinement without changing what decodes it; their bad input
is a one-line error."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import photo_like
from PIL import Image

from lrcodec import codec, encoder
from lrcodec.app import batch
from lrcodec.app.cli import main
from lrcodec.app.evaluate import evaluate_bytes, psnr
from lrcodec.errors import LrcodecError
from lrcodec.learn.distortion import ROI_GAIN, roi_weights
from lrcodec.metrics import bits_per_pixel, ms_ssim, rd_loss
from lrcodec.settings import EncodeSettings

# No time limit: with one, how many iterations run depends on the machine's speed at the time
SETTINGS = dict(effort=1, tune="ms-ssim", seed=3, time_limit=0)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    photo_like(96, 64, seed=4).save(path)
    return path


@pytest.fixture
def mask(tmp_path):
    """A quarter-size mask, white over the image's left half."""
    m = Image.new("L", (24, 16), 0)
    m.paste(255, (0, 0, 12, 16))
    path = tmp_path / "mask.png"
    m.save(path)
    return path


def test_encode_eval_pillow_and_batch_write_the_same_file(models_dir, photo, mask, tmp_path):
    import lrcodec.pillow  # noqa: F401  (registers the format)

    settings = EncodeSettings(**SETTINGS, roi=str(mask))
    r = CliRunner().invoke(main, ["encode", str(photo), "-o", str(tmp_path / "cli.lrc"), "-e", "1", "--tune",
                                  "ms-ssim", "--seed", "3", "--roi", str(mask), "--time-limit", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    data = (tmp_path / "cli.lrc").read_bytes()
    assert encoder.encode_bytes(photo.read_bytes(), "photo.png", settings).data == data
    assert evaluate_bytes(str(photo), photo.read_bytes(), settings).data == data
    buffer = io.BytesIO()
    Image.open(photo).save(buffer, "LRC", **SETTINGS, roi=str(mask))
    assert buffer.getvalue() == data
    (row,) = batch.run(batch.plan([str(photo)], str(tmp_path / "out")), settings)
    assert (tmp_path / "out" / "photo.lrc").read_bytes() == data
    assert (row["tune"], row["roi"], row["bytes"]) == ("ms-ssim", True, len(data))
    r = CliRunner().invoke(main, ["eval", str(photo), "-e", "1", "--tune", "ms-ssim", "--seed", "3", "--roi",
                                  str(mask), "--time-limit", "0", "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    (point,) = json.loads((tmp_path / "e.json").read_text())["images"]
    assert (point["bytes"], point["effort"], point["tune"], point["roi"]) == (len(data), 1, "ms-ssim", True)


def test_eval_measures_the_default_effort_encode_writes(models_dir, photo, tmp_path):
    r = CliRunner().invoke(main, ["encode", str(photo), "-o", str(tmp_path / "a.lrc"), "--time-limit", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["eval", str(photo), "--time-limit", "0", "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    (point,) = json.loads((tmp_path / "e.json").read_text())["images"]
    assert point["bytes"] == (tmp_path / "a.lrc").stat().st_size and point["effort"] == 2


def _file_loss(data: bytes, image, lmbda: float, tune: str) -> float:
    """The R-D loss of a file under a tuning, from its real bytes and decoded pixels."""
    import torch

    decoded = np.asarray(codec.decode_image(data), np.float64)
    original = np.asarray(image, np.float64)
    bpp = bits_per_pixel(8 * len(data), image.width * image.height)
    if tune == "psnr":
        return rd_loss(lmbda, np.mean((decoded - original) ** 2) / 255**2, bpp)
    a, b = (torch.from_numpy(v).permute(2, 0, 1)[None] / 255 for v in (decoded, original))
    return rd_loss(lmbda, 1 - float(ms_ssim(a, b)[0]), bpp)


def test_a_tuned_file_is_never_worse_than_the_plain_one_under_its_own_loss(models_dir, photo):
    """The choice between refined and plain file is made under the tuned distortion, with the
    lambda mapped from the model's: what it reports is what the file's bytes and pixels give."""
    image = Image.open(photo).convert("RGB")
    outcome = encoder.encode_bytes(photo.read_bytes(), "photo.png", EncodeSettings(**SETTINGS))
    plain = encoder.encode_bytes(photo.read_bytes(), "photo.png", EncodeSettings(effort=0))
    row = outcome.row
    assert row["tune"] == "ms-ssim" and row["lmbda"] != 0.01  # mapped from the model card's 0.01
    assert row["base_bytes"] == len(plain.data)
    assert _file_loss(outcome.data, image, row["lmbda"], "ms-ssim") <= _file_loss(plain.data, image, row["lmbda"],
                                                                                  "ms-ssim") + 1e-9


def test_roi_weights_say_what_the_docs_say():
    mask = np.zeros((4, 8), np.uint8)
    mask[:, :2] = 255
    w = roi_weights(mask)
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[0, 0, 0, 0] / w[0, 0, 0, 7]) == pytest.approx(1 + ROI_GAIN)


def test_a_roi_moves_quality_into_the_mask(models_dir, tmp_path):
    """More of the error leaves the mask: inside it the tuned file is closer to the original
    than outside it, relative to the untuned file."""
    image = photo_like(128, 96, seed=6)
    path = tmp_path / "p.png"
    image.save(path)
    m = np.zeros((96, 128), np.uint8)
    m[:, :64] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    untuned = encoder.encode_bytes(path.read_bytes(), "p.png", EncodeSettings(effort=2))
    tuned = encoder.encode_bytes(path.read_bytes(), "p.png", EncodeSettings(effort=2, roi=str(tmp_path / "m.png")))
    ref = np.asarray(image)
    a, b = (np.asarray(codec.decode_image(o.data)) for o in (untuned, tuned))
    inside, outside = (slice(None), slice(0, 64)), (slice(None), slice(64, None))
    assert psnr(ref[inside], b[inside]) - psnr(ref[outside], b[outside]) > \
        psnr(ref[inside], a[inside]) - psnr(ref[outside], a[outside])


@pytest.mark.parametrize("args, message", [
    (["--tune", "ms-ssim", "-e", "0"], "--tune steers refinement: it needs an effort above 0"),
    (["--roi", "{mask}", "-e", "0"], "--roi steers refinement: it needs an effort above 0"),
    (["--roi", "{missing}"], "no such file"),
    (["--roi", "{text}"], "is not a readable image"),
    (["--roi", "{tall}"], "a mask must have the image's aspect ratio"),
    (["--roi", "{huge}", "--max-pixels", "100000"], "exceeds the limit of 100000 pixels"),
])
def test_bad_tune_and_roi_are_one_line_errors(models_dir, photo, mask, tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("not a mask")
    Image.new("L", (10, 40)).save(tmp_path / "tall.png")
    Image.new("1", (3000, 2000)).save(tmp_path / "huge.png")  # 6 MP: a few kB of PNG
    paths = {"mask": mask, "missing": tmp_path / "none.png", "text": tmp_path / "notes.txt",
             "tall": tmp_path / "tall.png", "huge": tmp_path / "huge.png"}
    args = [a.format(**paths) for a in args]
    r = CliRunner().invoke(main, ["encode", str(photo), "-o", str(tmp_path / "x.lrc"), "--quiet", *args])
    assert r.exit_code == 1 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.lrc").exists()


def test_an_unknown_tuning_is_a_usage_error(models_dir, photo):
    r = CliRunner().invoke(main, ["encode", str(photo), "--tune", "vmaf"])
    assert r.exit_code == 2 and "vmaf" in r.output
    with pytest.raises(LrcodecError, match="unknown tuning"):
        EncodeSettings(effort=1, tune="vmaf").refine_settings()


def test_every_encode_path_keeps_alpha(models_dir, tmp_path):
    """Plain, refined, a batch refined together, a folder, eval's and Pillow's: each file keeps the
    alpha exactly (with the input's ICC profile beside it); the overfitted family refuses it."""
    import lrcodec.pillow  # noqa: F401  (registers the format)
    from lrcodec.format import bitstream

    plane = np.arange(64 * 48, dtype=np.uint8).reshape(48, 64)
    image = photo_like(64, 48, seed=5).convert("RGBA")
    image.putalpha(Image.fromarray(plane, "L"))
    (tmp_path / "in").mkdir()
    image.save(tmp_path / "in" / "a.png", icc_profile=b"not really a profile")
    image.save(tmp_path / "in" / "b.png")
    source = (tmp_path / "in" / "a.png").read_bytes()
    plain, refined = EncodeSettings(), EncodeSettings(effort=1, time_limit=0)
    buffer = io.BytesIO()
    Image.open(tmp_path / "in" / "a.png").save(buffer, "LRC")
    files = [encoder.encode_bytes(source, "a.png", plain).data, encoder.encode_bytes(source, "a.png", refined).data,
             *[o.data for o in encoder.encode_group([("a.png", source), ("b.png", source)], refined)],
             evaluate_bytes("a.png", source, refined).data, buffer.getvalue()]
    batch.run(batch.plan([str(tmp_path / "in")], str(tmp_path / "out")), plain)
    files += [(tmp_path / "out" / name).read_bytes() for name in ("a.lrc", "b.lrc")]
    for i, data in enumerate(files):
        decoded = codec.decode_latents(data)
        assert decoded.header.version == 5 and np.array_equal(decoded.alpha, plane), i
        assert decoded.metadata == ({} if i == len(files) - 1 else {"icc": b"not really a profile"}), i  # b.png: none
    with pytest.raises(LrcodecError, match="overfitted family does not code alpha: pass --drop-alpha"):
        encoder.encode_bytes(source, "a.png", EncodeSettings(model="overfit", effort=1))
    dropped = encoder.encode_bytes(source, "a.png", EncodeSettings(drop_alpha=True)).data
    assert bitstream.parse_header(dropped).version == 3 and codec.decode_latents(dropped).alpha is None
