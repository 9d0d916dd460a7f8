"""`make demo` (``lrcodec.app.demo``): its sample photograph is the one its README describes,
and the demo's whole path (encode at effort 0 and the default effort, write, read back,
decode, measure) runs on a small stand-in for the photograph with a tiny model (the real
photograph refined with a shipped model is too slow for the suite: that is `make demo`)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from conftest import assert_pixels_close, photo_like
from lrcodec import codec
from lrcodec.app import demo
from lrcodec.app.evaluate import psnr
from lrcodec.settings import DEFAULT_EFFORT


def test_the_sample_is_the_documented_photograph():
    readme = (demo.SAMPLE.parent / "README.md").read_text()
    assert demo.SAMPLE.name in readme
    digest = re.search(r"SHA-256\s+([0-9a-f]{64})", readme).group(1)
    assert hashlib.sha256(demo.SAMPLE.read_bytes()).hexdigest() == digest
    with Image.open(demo.SAMPLE) as image:
        assert (image.size, image.mode) == ((451, 300), "RGB")


def test_the_demo_encodes_plain_and_at_the_default_effort(models_dir, tmp_path, monkeypatch, capsys):
    sample = tmp_path / "cat.png"
    photo_like(64, 48, seed=4).save(sample)
    original = np.asarray(Image.open(sample).convert("RGB"))
    monkeypatch.setattr(demo, "SAMPLE", sample)
    monkeypatch.chdir(tmp_path)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "(64x48," in out and "model   tiny" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["plain"], ["default"])}
    assert set(rows) == {"plain", "default"}
    assert rows["plain"][1] == "0" and rows["default"][1] == str(DEFAULT_EFFORT)
    plain = (tmp_path / "out" / "cat.e0.lrc").read_bytes()
    for label, effort in (("plain", 0), ("default", DEFAULT_EFFORT)):
        lrc = tmp_path / "out" / f"cat.e{effort}.lrc"
        data = lrc.read_bytes()
        assert int(rows[label][2]) == len(data)  # the bytes column is the file's size
        assert abs(float(rows[label][3]) - 8 * len(data) / (64 * 48)) < 1e-4
        decoded = codec.decode_latents(data)  # by the model id in its header, as a user would
        if effort == 0:
            assert not decoded.header.refined
        else:  # refined, or (the tiny model's refinement not being better) the plain file kept
            assert decoded.header.refined or data == plain
        pixels = np.asarray(decoded.image().convert("RGB"))
        assert abs(float(rows[label][4]) - psnr(original, pixels)) <= 0.005  # measured on the decoded pixels
        with Image.open(tmp_path / "out" / f"cat.e{effort}.png") as png:
            # the demo's own decode and this one: float g_s twice, within the stated bound
            assert_pixels_close(np.asarray(png.convert("RGB")), pixels)
