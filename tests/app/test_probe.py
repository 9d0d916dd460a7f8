"""The digests the portability checks compare (``lrcodec.app.probe``) and its command line.
The command line on every golden file, under other CPU kernels, is tests/test_portability.py's;
here: one golden file under this process's own arithmetic, and what the digests see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import GOLDEN, ROOT, assert_pixels_close, photo_like
from lrcodec import codec
from lrcodec.app.probe import latent_digest, pixel_digest, symbol_digest

VARIANTS = {"threads-1", "threads-2", "threads-3", "native", "float64"}


def _latents(seed: int = 0) -> SimpleNamespace:
    """What the digests read of a decoder's latents, with the decoder's dtypes."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        z_symbols=torch.from_numpy(rng.integers(-5, 6, (1, 4, 2, 3)).astype(np.int32)),
        y_symbols=torch.from_numpy(rng.integers(-9, 10, (1, 6, 4, 5)).astype(np.int32)),
        sigma_index=rng.integers(0, 256, (1, 6, 4, 5)).astype(np.int32),
        y_hat=torch.from_numpy(rng.normal(0, 3, (1, 6, 4, 5)).astype(np.float32)),
    )


def _is_sha256(digest: str) -> bool:
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def test_digests_are_functions_of_the_values():
    a, b = _latents(), _latents()
    assert a.y_symbols is not b.y_symbols
    assert symbol_digest(a) == symbol_digest(b) and latent_digest(a) == latent_digest(b)
    assert _is_sha256(symbol_digest(a)) and _is_sha256(latent_digest(a))
    assert symbol_digest(a) != latent_digest(a)
    assert symbol_digest(a) != symbol_digest(_latents(1))


@pytest.mark.parametrize("field", ["z_symbols", "y_symbols", "sigma_index"])
def test_one_symbol_changed_changes_both_digests(field):
    base, other = _latents(), _latents()
    values = getattr(other, field)
    values[0, 1, 1, 2] += 1
    assert symbol_digest(other) != symbol_digest(base)
    assert latent_digest(other) != latent_digest(base)


def test_y_hat_is_in_the_latent_digest_only():
    """A y_hat one float32 step away is another file for g_s, with the same symbols."""
    base, other = _latents(), _latents()
    y_hat = other.y_hat.numpy()  # shares the tensor's memory
    y_hat[0, 2, 3, 4] = np.nextafter(y_hat[0, 2, 3, 4], np.float32(np.inf))
    assert not torch.equal(other.y_hat, base.y_hat)
    assert symbol_digest(other) == symbol_digest(base)
    assert latent_digest(other) != latent_digest(base)


def test_pixel_digest():
    rng = np.random.default_rng(2)
    pixels = torch.from_numpy(rng.integers(0, 256, (1, 3, 8, 10)).astype(np.uint8))
    assert pixel_digest(pixels) == pixel_digest(pixels.clone()) and _is_sha256(pixel_digest(pixels))
    changed = pixels.clone()
    changed[0, 2, 7, 9] ^= 1
    assert pixel_digest(changed) != pixel_digest(pixels)


def test_a_decoded_file_has_its_encoders_digests(tiny_model):
    """The decoder's latents digest as the encoder's did, and decoding again changes nothing."""
    result = codec.encode_image(photo_like(64, 48, seed=5), tiny_model)
    first, second = (codec.decode_latents(result.data, tiny_model) for _ in range(2))
    assert symbol_digest(first.latents) == symbol_digest(result.latents) == symbol_digest(second.latents)
    assert latent_digest(first.latents) == latent_digest(result.latents) == latent_digest(second.latents)
    assert_pixels_close(first.pixels, second.pixels)  # float g_s: within the stated bound, not bit for bit


def test_the_command_line_on_a_golden_file(tmp_path):
    """``python -m lrcodec.app.probe --pixels=DIR FILE`` prints, for each of the five
    variants, the file's pinned symbols and latents (what tests/test_portability.py compares)
    and the digest of the pixels it saved as DIR/NAME.VARIANT.npy."""
    name = "lrc-mshp-q1-plain.lrc"
    expected = json.loads((GOLDEN / "golden.json").read_text())[name]
    path = str(GOLDEN / name)
    out = subprocess.run([sys.executable, "-m", "lrcodec.app.probe", f"--pixels={tmp_path}", path],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)
    assert set(results) == VARIANTS
    size = (expected["image"]["height"], expected["image"]["width"])
    for variant, by_file in results.items():
        assert set(by_file) == {path}
        got = by_file[path]
        assert (got["symbols"], got["latents"]) == (expected["symbols_sha256"], expected["latents_sha256"]), variant
        pixels = np.load(tmp_path / f"{Path(name).stem}.{variant}.npy")
        assert pixels.dtype == np.uint8 and pixels.shape[0] == 1 and pixels.shape[2:] == size
        assert got["pixels"] == pixel_digest(torch.from_numpy(pixels)), variant
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{Path(name).stem}.{v}.npy" for v in VARIANTS)


def test_a_file_whose_model_is_not_shipped_is_an_error_in_every_variant():
    """The probe records why a file cannot be decoded here, in each variant, and goes on."""
    from lrcodec.app.probe import VARIANTS, decode_variants

    results = decode_variants([str(GOLDEN / "mean-scale-plain.lrc")])
    assert sorted(results) == sorted(VARIANTS)
    assert all("not among the shipped models" in r[str(GOLDEN / "mean-scale-plain.lrc")]["error"]
               for r in results.values())
