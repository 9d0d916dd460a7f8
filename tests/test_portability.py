"""Files decode the same everywhere: golden files, released models, and decoding under other
arithmetic (CPU kernels without SIMD, oneDNN, thread counts, float64 transforms)."""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_pixels_close, photo_like
from PIL import Image

from lrcodec.format import bitstream, exact
from lrcodec import codec, models
from lrcodec.errors import LrcodecError
from lrcodec.format.format1 import NOT_HERE
from lrcodec.app.probe import latent_digest, metadata_digest, pixel_digest, symbol_digest

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "golden.json").read_text())


def check_digests(name: str, symbols: str | None, latents: str | None, error: str | None) -> None:
    """What a golden file must decode to on any machine: its pinned symbols and, from format 2
    on, its pinned y_hat. A format-1 file may instead be refused with the one-line error naming
    format 1, where this machine's float networks differ from its encoder's (one of them
    decodes nowhere we have: its symbols are not pinned)."""
    expected = MANIFEST[name]
    if error is not None:
        assert expected["format_version"] == 1 and error == NOT_HERE, (name, error)
        return
    assert expected["symbols_sha256"] in (None, symbols), name
    if expected["format_version"] >= 2:
        assert latents == expected["latents_sha256"], name


def check_pixels(name: str, pixels) -> None:
    """Pixels come from the float g_s: within the float bound of the stored PNG."""
    assert_pixels_close(pixels, Image.open(GOLDEN / f"{name}.png").convert("RGB"), name)


@pytest.mark.parametrize("path", ["runtime", "torch"])
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_decodes_to_its_digests(name, path):
    """Any change to tables, coder order, header parsing or released weights fails here, on
    both decoders: without torch (``lrcodec.runtime``, what a file decodes with by default from
    format 2 on) and with the torch model."""
    expected = MANIFEST[name]
    data = (GOLDEN / name).read_bytes()
    assert len(data) == expected["bytes"]
    header = bitstream.parse_header(data)
    assert header.version == expected["format_version"] and header.refined == expected["refined"]
    assert header.model_id.hex() == expected["model_id"]
    model = models.find_model_by_id(header.model_id) if path == "torch" else None
    try:
        decoded = codec.decode_latents(data, model)
    except LrcodecError as e:
        check_digests(name, None, None, str(e))
        return
    check_digests(name, symbol_digest(decoded.latents), latent_digest(decoded.latents), None)
    assert metadata_digest(decoded.metadata) == expected.get("metadata_sha256", metadata_digest({})), name
    assert (decoded.alpha is None and "alpha_sha256" not in expected
            or pixel_digest(decoded.alpha) == expected["alpha_sha256"]), name  # format 5: exact
    check_pixels(name, decoded.image().convert("RGB"))


def test_every_released_model_has_golden_files_and_stays_decodable():
    """A model id that has shipped is never orphaned: every card in models/ (current or retired)
    has golden files, and every id a golden file names is still found by id."""
    released = {e["model_id"] for e in MANIFEST.values()}
    shipped = {c["model_id"] for c in models.shipped_models(current_only=False)}
    assert shipped <= released, f"models without golden files: {shipped - released}"
    for model_id in released:
        assert models.find_model_by_id(bytes.fromhex(model_id)).model_id.hex() == model_id
    options = {(e["model"], e["option"]) for e in MANIFEST.values() if e["format_version"] == bitstream.VERSION}
    for card in models.shipped_models(current_only=False):
        assert {(card["name"], o) for o in ("plain", "uq", "refined")} <= options


def _probe(files: list[str], **env) -> dict:
    out = subprocess.run([sys.executable, "-m", "lrcodec.app.probe", *files], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("capability, onednn_isa", [("default", "SSE41"), ("avx2", "AVX2")])
def test_golden_files_decode_the_same_under_other_arithmetic(capability, onednn_isa, tmp_path):
    """Every golden file decoded in a process with other CPU kernels (PyTorch's without SIMD and
    oneDNN's SSE4.1, or both capped at AVX2 as on an AMD EPYC without AVX-512), with 1, 2 and 3
    threads, native kernels instead of oneDNN and float64 transforms: the same symbols and
    latents as pinned (exact by construction), and at every thread count pixels within the
    float bound of the stored ones (``check_pixels``: g_s's sums split by thread count)."""
    names = sorted(MANIFEST)
    files = [str(GOLDEN / n) for n in names]
    results = _probe([f"--pixels={tmp_path}", *files], ATEN_CPU_CAPABILITY=capability, ONEDNN_MAX_CPU_ISA=onednn_isa)
    assert set(results) == {"threads-1", "threads-2", "threads-3", "native", "float64"}
    for name, path in zip(names, files):
        for by_file in results.values():
            got = by_file[path]
            check_digests(name, got.get("symbols"), got.get("latents"), got.get("error"))
        for n in (1, 2, 3):
            if "error" not in results[f"threads-{n}"][path]:
                check_pixels(name, np.load(tmp_path / f"{Path(path).stem}.threads-{n}.npy")[0].transpose(1, 2, 0))


def test_integer_network_equals_its_int64_definition(tiny_model, tiny_scale_model):
    """The float64 fast path of h_s is the int64 network, including at saturated inputs."""
    for model in (tiny_model, tiny_scale_model):
        h_s = model.exact.h_s
        z = torch.randint(-40, 40, (1, 16, 7, 9)).double() * 2**exact.ACT_BITS
        z[0, 0, 0, 0] = 1e9  # beyond ACT_LIMIT: saturates identically on both paths
        assert np.array_equal(h_s(z), h_s.reference(z))


def test_exact_hyper_synthesis_is_the_trained_one(tiny_model):
    """The integer h_s computes what the float one does (to ~1e-3) and the tiled evaluation
    of a large latent is exactly the untiled one."""
    net, em = tiny_model.net, tiny_model.exact
    z = torch.randint(-6, 6, (1, 16, 40, 36)).numpy()
    sigma, mu = np.split(em.hyper(z, np.zeros(z.shape)), 2, axis=1)
    sigma_tiled, mu_tiled = np.split(em.hyper(z, np.zeros(z.shape), tile=8), 2, axis=1)
    idx, idx_tiled = em.sigma_index(sigma), em.sigma_index(sigma_tiled)
    assert np.array_equal(idx, idx_tiled) and np.array_equal(mu, mu_tiled)
    z_hat = torch.from_numpy(z + em.medians.reshape(1, -1, 1, 1)).double()
    sigma_float, mu_float = copy.deepcopy(net.h_s).double()(z_hat).chunk(2, 1)
    assert np.abs(mu - mu_float.detach().numpy()).max() < 2e-3
    table = em.sigma_table
    float_idx = np.clip(np.searchsorted(table, sigma_float.detach().numpy().ravel()), 0, 255)
    assert np.mean(float_idx == idx.ravel()) > 0.95


def test_elementary_functions_match_the_reference_libraries():
    from scipy import special

    x = np.linspace(-700, 700, 20001)
    assert np.max(np.abs(exact.exp(x) / np.exp(x) - 1)) < 1e-15
    assert np.max(np.abs(exact.log(np.exp(x)) - x)) < 1e-12
    t = np.linspace(-9, 26, 20001)
    assert np.max(np.abs(exact.erfc(t) / special.erfc(t) - 1)) < 1e-9
    assert np.max(np.abs(exact.tanh(t) - np.tanh(t))) < 1e-15
    assert np.max(np.abs(exact.softplus(t) - np.logaddexp(0, t))) < 1e-14


def test_factorized_tables_are_the_trained_prior(tiny_model):
    from lrcodec.format.likelihoods import factorized_interval_likelihood

    eb = tiny_model.net.entropy_bottleneck
    C = eb.channels
    p = tiny_model.exact.prior.pmf(np.arange(C), np.zeros(C), -8, 8)
    centre = (torch.from_numpy(tiny_model.exact.medians)[:, None] + torch.arange(-8, 9)).reshape(1, C, -1, 1).float()
    expected = factorized_interval_likelihood(eb, centre - 0.5, centre + 0.5).reshape(C, -1).double().numpy()
    assert np.abs(p - expected).max() < 1e-6


def test_tiled_transforms_equal_untiled(tiny_model, monkeypatch):
    """Tiles with halos compute the untiled transforms up to float summation order (a tile's
    convolutions split their sums otherwise): y within 1e-5 of its range, so the files may differ
    only where a latent lies that close to a rounding boundary; pixels within the float bound."""
    image = photo_like(200, 136, seed=13)
    pixels, _ = codec.prepare_pixels(image)
    y_whole, z_whole = codec.analyse(tiny_model, pixels)
    whole = codec.encode_image(image, tiny_model)
    monkeypatch.setattr(codec, "TILE", 64)
    monkeypatch.setattr(codec, "WHOLE", 0)
    y_tiled, z_tiled = codec.analyse(tiny_model, pixels)
    assert (y_tiled - y_whole).abs().max() <= 1e-5 * y_whole.abs().max()
    assert (z_tiled - z_whole).abs().max() <= 1e-5 * z_whole.abs().max()
    decoded = codec.decode_latents(whole.data, tiny_model)
    assert decoded.pixels.shape == (1, 3, 136, 200)
    monkeypatch.setattr(codec, "WHOLE", 10**8)
    assert_pixels_close(decoded.pixels, codec.decode_latents(whole.data, tiny_model).pixels)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _forge(data: bytes, z: bytes | None = None, y: bytes | None = None) -> bytes:
    """The file with other payloads, header lengths and CRC made consistent with them."""
    header = bitstream.parse_header(data)
    z0, y0 = bitstream.payloads(data, header)
    z, y = z0 if z is None else z, y0 if y is None else y
    body = bytearray(data[: bitstream.HEADER_SIZE])
    struct.pack_into("<II", body, 40, len(z), len(y))
    return _with_crc(bytes(body) + z + y)


def test_payload_must_end_where_its_symbols_end(tiny_model):
    from conftest import photo_like

    data = codec.encode_image(photo_like(64, 64, seed=1), tiny_model).data
    z, y = bitstream.payloads(data, bitstream.parse_header(data))
    assert codec.decode_image(_forge(data), tiny_model).size == (64, 64)
    for name, forged in {"y": _forge(data, y=y + b"\0\0\0\0"), "z": _forge(data, z=z + b"\1\0\0\0"),
                         "y ": _forge(data, y=y[:-4])}.items():
        with pytest.raises(LrcodecError, match=f"its {name.strip()} payload"):
            codec.decode_image(forged, tiny_model)


def test_errors_name_the_format_version(tiny_model):
    from conftest import photo_like

    data = bytearray(codec.encode_image(photo_like(64, 64), tiny_model).data)
    data[3] = 6
    with pytest.raises(LrcodecError, match="format version 6 is newer"):
        codec.decode_image(_with_crc(bytes(data[:-4])), tiny_model)
    data[3] = 2
    struct.pack_into("<I", data, 36, 12345)  # tables CRC of another encoder
    with pytest.raises(LrcodecError, match="tables its z payload implies.*incompatible lrcodec build"):
        codec.decode_image(_with_crc(bytes(data[:-4])), tiny_model)
