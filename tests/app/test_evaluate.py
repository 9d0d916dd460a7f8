"""Measurement code: BD-rate on known curves, PSNR / MS-SSIM on known pairs, eval output, anchors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import photo_like

from lrcodec.app.cli import main
from lrcodec.app.evaluate import available_classical, bd_rate, classical_point, ms_ssim, psnr

RATES = [0.1, 0.2, 0.4, 0.8, 1.2]
QUALITY = [27.0, 29.5, 32.0, 35.0, 37.0]


@pytest.mark.parametrize("factor", [0.8, 1.0, 1.25])
def test_bd_rate_of_a_scaled_curve_is_the_scale(factor):
    assert bd_rate(RATES, QUALITY, [r * factor for r in RATES], QUALITY) == pytest.approx((factor - 1) * 100, abs=1e-6)


def test_bd_rate_without_overlap_is_nan():
    assert math.isnan(bd_rate(RATES, QUALITY, RATES, [q + 20 for q in QUALITY]))


def test_psnr_and_ms_ssim_on_known_pairs():
    a = np.full((200, 200, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] += 3  # MSE = 3 over one of three channels: 3
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3))
    assert psnr(a, a) == 120.0  # metrics.PSNR_MAX (test_one_psnr_definition)
    img = np.asarray(photo_like(200, 200))
    assert ms_ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    assert 0 < ms_ssim(img, noisy) < 0.99


def test_classical_wrappers_on_a_tiny_image():
    image = photo_like(48, 40)
    codecs = available_classical()
    assert {"JPEG", "WebP"} <= set(codecs)
    for name, (_, _, settings) in codecs.items():
        low, high = classical_point(image, "t", name, settings[0]), classical_point(image, "t", name, settings[-1])
        assert low.bytes < high.bytes and low.psnr < high.psnr, name


def test_eval_json_schema(models_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        photo_like(64, 48, seed=i).save(folder / f"{i}.png")
    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["eval", str(folder), "--json", str(out), "--csv", str(tmp_path / "r.csv")])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert [row["image"] for row in d["images"]] == ["0.png", "1.png"]
    for row in d["images"]:
        assert {"bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s"} <= set(row)
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (64 * 48))
    assert d["mean"]["bpp"] == pytest.approx(np.mean([row["bpp"] for row in d["images"]]))
    assert (tmp_path / "r.csv").read_text().startswith("image,codec")


def test_one_psnr_definition():
    """Evaluation's PSNR of 8-bit arrays is ``metrics.psnr_of`` of their MSE on [0, 1]: a known
    value, and the same finite cap for a perfect match (JSON results stay numbers)."""
    from lrcodec.metrics import PSNR_MAX, psnr_of

    a = np.full((4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # MSE 100 / 48 levels^2
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 48 / 100), abs=1e-12)
    assert psnr(a, b) == psnr_of(100 / 48 / 255**2)
    assert psnr(a, a) == psnr_of(0.0) == PSNR_MAX
