"""The overfitted encode (``lrcodec.learn.overfit``) through the one encoder: files that decode
(with and without torch, through the CLI and Pillow) to what the encoder measured, the time
budget, metadata, and the options that do not apply."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import photo_like
from PIL import Image

from lrcodec import codec
from lrcodec.app.evaluate import evaluate_bytes
from lrcodec.encoder import encode
from lrcodec.errors import LrcodecError
from lrcodec.format import bitstream
from lrcodec.learn.overfit import encode_overfit
from lrcodec.metrics import psnr_of
from lrcodec.settings import EncodeSettings, OverfitSettings


@pytest.fixture(scope="module")
def encoded():
    image = photo_like(72, 40, seed=4)
    return image, encode_overfit(image, OverfitSettings(profile="overfit-500", iterations=200, lmbda=0.013))


def _mse(a, b) -> float:
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)) / 255**2


def test_the_file_decodes_to_what_the_encoder_measured(encoded):
    image, result = encoded
    header = bitstream.parse_header(result.data)
    assert header.version == bitstream.OVERFIT_VERSION and (header.width, header.height) == (72, 40)
    decoded = codec.decode_image(result.data)
    assert psnr_of(_mse(decoded, image)) == pytest.approx(result.psnr, abs=0.05)
    assert psnr_of(_mse(decoded, image)) > 20  # it learned the image, not a grey field
    assert result.bits["decoder"] == 8 * header.z_length  # the decoder's share, as info shows it
    assert result.bits["latents_coder"] <= 8 * header.y_length <= result.bits["latents_coder"] + 64


def test_it_decodes_without_torch_to_the_same_pixels(encoded, tmp_path):
    _, result = encoded
    (tmp_path / "a.lrc").write_bytes(result.data)
    script = ("import sys; sys.modules['torch'] = None\n"
              "from lrcodec.codec import decode_image\n"
              "decode_image(open(sys.argv[1], 'rb').read()).save(sys.argv[2])\n"
              "assert not [m for m in sys.modules if m.startswith('torch') and sys.modules[m] is not None]\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.lrc"), str(tmp_path / "a.png")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(codec.decode_image(result.data)))


def test_pillow_reads_it(encoded):
    import lrcodec.pillow  # noqa: F401 (registers the plugin)

    _, result = encoded
    image = Image.open(io.BytesIO(result.data))
    assert image.size == (72, 40)
    assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(codec.decode_image(result.data)))


def test_metadata_is_kept_in_format_4(encoded):
    _, result = encoded
    data = bitstream.with_metadata(result.data, {"xmp": b"<x/>"})
    assert bitstream.parse_header(data).version == bitstream.OVERFIT_VERSION
    assert codec.decode_latents(data).metadata == {"xmp": b"<x/>"}
    assert bitstream.with_metadata(data, {}) == result.data


def test_a_time_limit_plans_fewer_iterations():
    settings = OverfitSettings(profile="overfit-500", iterations=100_000, time_limit=1.0)
    result = encode_overfit(photo_like(64, 64), settings)
    assert 5 <= result.iterations < 100_000


def test_the_encoder_takes_quality_effort_and_lambda():
    settings = EncodeSettings(model="overfit-500", quality=2, effort=1)
    overfit = settings.overfit_settings(64 * 64)
    assert overfit.lmbda == 0.0035 and overfit.iterations == 250 and overfit.time_limit > 0
    assert EncodeSettings(model="overfit", lmbda=0.02, effort=3).overfit_settings(100).lmbda == 0.02


def test_eval_measures_the_file_encode_writes_and_names_the_profile(encoded):
    image, _ = encoded
    buf = io.BytesIO()
    image.save(buf, "PNG")
    settings = EncodeSettings(model="overfit-500", effort=1, time_limit=0.5)
    outcome = evaluate_bytes("crop.png", buf.getvalue(), settings)
    assert outcome.row["codec"] == "lrcodec overfit-500 effort 1" and outcome.row["tune"] is None
    assert outcome.row["bytes"] == len(outcome.data)


def test_a_strip_whose_padding_exceeds_the_limit_is_refused_before_any_work():
    with pytest.raises(LrcodecError, match="pads to 1024x64 latents for overfit-500, more than twice the limit"):
        encode(photo_like(1000, 1), EncodeSettings(model="overfit-500", effort=1, max_pixels=10_000))


@pytest.mark.parametrize("changes, message", [
    ({"effort": 0}, "effort of 1 or more"),
    ({"uq": True}, "--uq does not apply"),
    ({"tune": "ms-ssim"}, "--tune ms-ssim does not apply"),
    ({"quality": 9}, "qualities are 1-8"),
    ({"model": "overfit-7"}, "unknown overfitted profile"),
])
def test_options_that_do_not_apply_are_clear_errors(changes, message):
    settings = EncodeSettings(**{"model": "overfit-500", "effort": 1, "time_limit": 0.5, **changes})
    with pytest.raises(LrcodecError, match=message):
        encode(photo_like(32, 32), settings)


def test_the_cli_encodes_decodes_and_describes(tmp_path):
    photo_like(48, 40).save(tmp_path / "a.png")
    lrcodec = [sys.executable, "-m", "lrcodec.app.cli"]
    run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = subprocess.run([*lrcodec, "encode", "a.png", "-o", "a.lrc", "-m", "overfit-500", "-e", "1",
                          "--time-limit", "2"], **run)
    assert out.returncode == 0, out.stderr
    assert "of them the decoder" in out.stderr
    out = subprocess.run([*lrcodec, "info", "a.lrc", "--json"], **run)
    info = json.loads(out.stdout)
    assert info["model"] == "overfit-500" and info["format_version"] == 4
    assert info["decoder_bytes"] + info["latent_bytes"] < info["file_bytes"]
    out = subprocess.run([*lrcodec, "decode", "a.lrc", "-o", "b.png"], **run)
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "b.png").size == (48, 40)
    out = subprocess.run([*lrcodec, "decode", "a.lrc", "-o", "c.png", "-m", "lrc-mshp-q3"], **run)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "carries its own decoder" in out.stderr
