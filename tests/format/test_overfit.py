"""The overfitted family's file half (``lrcodec.format.overfit``): the exact ARM, the
wavefront order, the coding of latents and decoder parameters, the golden files (under other
BLAS kernels, SIMD levels and thread counts too) and damaged files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_pixels_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lrcodec import codec
from lrcodec.app.probe import grid_digest
from lrcodec.errors import LrcodecError
from lrcodec.format import bitstream
from lrcodec.format import overfit as fmt

GOLDEN = Path(__file__).parent.parent / "golden"
MANIFEST = json.loads((GOLDEN / "overfit.json").read_text())


def random_decoder(profile: fmt.Profile, seed: int = 0, scale: int = 300) -> fmt.Decoder:
    """A decoder with random integer parameters (a trained one's magnitudes at exponent 8)."""
    rng = np.random.default_rng(seed)
    params = {name: rng.integers(-scale, scale + 1, shape).astype(np.int32) for name, shape in profile.tensors}
    return fmt.Decoder(profile, params, 8, 9)


def random_grids(profile: fmt.Profile, height: int, width: int, seed: int = 0, spread: float = 2.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.rint(rng.laplace(0, spread, shape)).astype(np.int64) for shape in fmt.level_shapes(profile, height, width)]


@pytest.mark.parametrize("name", sorted(fmt.PROFILES))
def test_every_neighbour_lies_on_an_earlier_wavefront(name):
    """The decoder's order is causal: each context position is decoded before the latent."""
    profile = fmt.PROFILES[name]
    h, w = 9, 13
    step = {int(y * w + x): t for t, (ys, xs) in enumerate(fmt.wavefronts(h, w, profile.slope)) for y, x in zip(ys, xs)}
    assert sorted(step) == list(range(h * w))
    for i, t in step.items():
        y, x = divmod(i, w)
        for dy, dx in profile.context:
            if 0 <= y + dy < h and 0 <= x + dx < w:
                assert step[(y + dy) * w + x + dx] < t


def test_the_exact_arm_is_its_integer_definition():
    """The float64 matrix products equal the same network evaluated in Python integers,
    saturated inputs included: every sum is an integer below 2**53, whatever the BLAS."""
    profile = fmt.PROFILES["overfit-2000"]
    decoder = random_decoder(profile, scale=fmt.PARAM_LIMIT)
    arm = decoder.arm()
    rng = np.random.default_rng(1)
    ctx = rng.integers(-50, 50, (64, len(profile.context)))
    ctx[0, :] = 10**6  # saturates at ARM_INPUT_LIMIT
    mu, log_scale = arm(ctx)

    def reference(row):
        h = [max(-fmt.ARM_INPUT_LIMIT, min(fmt.ARM_INPUT_LIMIT, int(v))) << fmt.ARM_BITS for v in row]
        limit = int(fmt.ARM_ACT_LIMIT)
        layers = list(zip(arm.weights, arm.biases))
        for i, (w, b) in enumerate(layers):
            out = [max(-limit, min(limit, (sum(int(w[o, n]) * h[n] for n in range(len(h)))
                                            + (int(b[o]) << fmt.ARM_BITS)) >> arm.exponent)) for o in range(w.shape[0])]
            if i == len(layers) - 1:
                return out
            out = [max(v, 0) for v in out]
            h = [max(-limit, min(limit, a + v)) for a, v in zip(h, out)] if i > 0 else out

    for row, m, s in zip(ctx, mu, log_scale):
        assert reference(row) == [m, s]


def test_laplace_tables_are_normalised_and_favour_the_centre():
    tables = fmt.latent_tables(-20, 20)
    assert tables.shape == (2**fmt.MU_BITS * fmt.SCALES, 41) and tables.min() >= 1
    assert np.all(np.abs(tables.sum(axis=1) / 2**24 - 1) < 1e-4)
    narrow = tables[0]  # centre 1/16, the smallest scale: nearly all mass on k = 0
    assert narrow.argmax() == 20 and narrow[20] > 0.99 * 2**24


@pytest.mark.parametrize("name", sorted(fmt.PROFILES))
def test_latents_round_trip_at_the_ideal_size(name):
    """Every level decodes wavefront by wavefront to the encoder's grids, and the payload
    costs its information content under the range coder's weights (below the tables' ideal
    for these wild predictions' rare symbols, as ``entropy.coder_weights`` says) plus its slack."""
    profile = fmt.PROFILES[name]
    decoder = random_decoder(profile, scale=60)
    grids = random_grids(profile, 70, 90)
    grids[3][:] = 0  # an all-zero level is not coded at all
    coded, nonzero = fmt.encode_latents(decoder, grids)
    assert nonzero == (1 << profile.levels) - 1 - (1 << 3)
    assert coded.bits_ideal == pytest.approx(fmt.latent_bits(decoder, grids))
    assert coded.bits_coder <= 8 * len(coded.payload) <= coded.bits_coder * 1.002 + 64
    shapes = fmt.level_shapes(profile, 70, 90)
    decoded = fmt.decode_latents(coded.payload, decoder, shapes, nonzero, coded.lo, coded.hi)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, grids))


def test_latents_beyond_the_alphabet_are_refused():
    profile = fmt.PROFILES["overfit-500"]
    grids = random_grids(profile, 64, 64)
    grids[0][0, 0] = 10_000
    with pytest.raises(LrcodecError, match="exceed the format's range"):
        fmt.encode_latents(random_decoder(profile, scale=0), grids)


def test_decoder_parameters_round_trip():
    profile = fmt.PROFILES["overfit-500"]
    decoder = random_decoder(profile, scale=2000)
    payload, bits = fmt.pack_decoder(decoder, 0b1010101)
    back, nonzero = fmt.unpack_decoder(payload, profile)
    assert nonzero == 0b1010101 and (back.arm_exponent, back.synth_exponent) == (8, 9)
    assert all(np.array_equal(back.params[k], v) for k, v in decoder.params.items())
    assert bits == 8 * len(payload)
    with pytest.raises(LrcodecError, match="decoder parameters"):
        fmt.unpack_decoder(payload + b"\0\0\0\1", profile)  # words after the last parameter


def test_upsampling_is_bilinear_with_replicated_edges():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    up = fmt.upsample2(x)
    assert up.shape == (1, 6, 8)
    assert up[0, 0, 0] == x[0, 0, 0] and up[0, 0, 1] == pytest.approx(0.75 * 0 + 0.25 * 1)
    assert up[0, 1, 0] == pytest.approx(0.75 * 0 + 0.25 * 4)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_decodes_to_its_digests(name):
    """Any change to the tables, the ARM, the coding order or the header fails here."""
    expected = MANIFEST[name]
    data = (GOLDEN / name).read_bytes()
    assert len(data) == expected["bytes"]
    header = bitstream.parse_header(data)
    assert header.version == bitstream.OVERFIT_VERSION and header.model_id.hex() == expected["model_id"]
    decoded = codec.decode_latents(data)
    assert grid_digest(decoded.latents) == expected["symbols_sha256"]
    assert_pixels_close(decoded.image().convert("RGB"), Image.open(GOLDEN / f"{name}.png").convert("RGB"), name)


_PROBE = """
import json, sys
from lrcodec import codec
from lrcodec.app.probe import grid_digest, pixel_digest
out = {}
for path in sys.argv[1:]:
    decoded = codec.decode_latents(open(path, "rb").read())
    out[path] = [grid_digest(decoded.latents), decoded.pixels.tolist()]
print(json.dumps(out))
"""


@pytest.mark.parametrize("env", [
    {"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX AVX2 FMA3 AVX F16C",
     "OPENBLAS_NUM_THREADS": "1"},
    {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "3", "ATEN_CPU_CAPABILITY": "avx2",
     "ONEDNN_MAX_CPU_ISA": "AVX2"},
], ids=["sse", "avx2"])
def test_golden_files_decode_the_same_under_other_arithmetic(env):
    """numpy's SIMD loops and OpenBLAS's kernels capped (SSE3, or AVX2 as on an AMD EPYC), at
    other thread counts: the same latents (exact by construction), pixels within the bound."""
    names = sorted(MANIFEST)
    out = subprocess.run([sys.executable, "-c", _PROBE, *[str(GOLDEN / n) for n in names]], capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=600)
    assert out.returncode == 0, out.stderr
    for name, (digest, pixels) in zip(names, json.loads(out.stdout).values()):
        assert digest == MANIFEST[name]["symbols_sha256"], name
        stored = np.asarray(Image.open(GOLDEN / f"{name}.png").convert("RGB"))
        assert_pixels_close(np.asarray(pixels, np.uint8)[0].transpose(1, 2, 0), stored, name)


def test_an_unknown_profile_is_a_clear_error():
    data = bytearray((GOLDEN / sorted(MANIFEST)[0]).read_bytes())
    data[8 + 3] ^= 0xFF  # inside the model id
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    with pytest.raises(LrcodecError, match="overfitted profile .* does not know"):
        codec.decode_image(bytes(data))


def test_a_forged_strip_is_refused_before_its_latents_are_decoded():
    """A header of 3000x1 pixels passes a 4096-pixel limit, but its grids would be 3008x64."""
    data = bytearray((GOLDEN / sorted(MANIFEST)[0]).read_bytes())
    data[12:20] = (3000).to_bytes(4, "little") + (1).to_bytes(4, "little")  # width, height
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    with pytest.raises(LrcodecError, match="pads to 3008x64 latents"):
        codec.decode_image(bytes(data), max_pixels=4096)


@pytest.mark.parametrize("name, overfit", [("overfit", True), ("overfit-2000", True), ("overfit-7", True),
                                           ("overfit-run3.safetensors", False), ("runs/overfit-1", False),
                                           ("lrc-mshp-q3", False), (None, False)])
def test_which_model_names_are_the_family(name, overfit):
    assert fmt.is_overfit(name) is overfit


@settings(max_examples=int(os.environ.get("LRCODEC_FUZZ_EXAMPLES", 60)), deadline=10000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_files_fail_cleanly(data):
    """Damaged or forged overfitted files are one-line errors, or (a consistent forgery) decode."""
    original = (GOLDEN / data.draw(st.sampled_from(sorted(MANIFEST)))).read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    buf = bytearray(original)
    if kind == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            buf[data.draw(st.integers(0, len(buf) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    else:
        cut = data.draw(st.integers(0, len(buf)))
        buf = buf[:cut] + data.draw(st.binary(max_size=64)) + buf[cut:]
    forged = len(buf) >= 8 and data.draw(st.booleans())
    if forged:
        buf[-4:] = zlib.crc32(bytes(buf[:-4])).to_bytes(4, "little")
    if bytes(buf) == original:
        return
    if kind == "truncate" or not forged:
        with pytest.raises(LrcodecError):
            codec.decode_image(bytes(buf), max_pixels=1 << 16)
        return
    try:
        codec.decode_image(bytes(buf), max_pixels=1 << 16)
    except LrcodecError as e:
        assert "\n" not in str(e)
