"""The codec's promises: exact round trips, sizes at the ideal information content, odd images."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from conftest import assert_latents_close, assert_pixels_close, make_model, photo_like
from PIL import Image

from lrcodec.format import bitstream, entropy
from lrcodec import codec
from lrcodec.format.exact import gaussian_pmf, quantize_pmf
from lrcodec.errors import LrcodecError


def _own_reconstruction(model, image):
    """What the model itself reconstructs from hard-quantized latents, as 8-bit pixels."""
    x, _ = codec.prepare_image(image)
    y, z = codec.analyse(model, x)
    q = codec.quantize_latents(model, y, z)
    return q, np.asarray(codec.tensor_to_image(codec.synthesise(model, q.y_hat, image.height, image.width)))


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_scale_model"])
def test_round_trip_is_exact(fixture, request):
    model = request.getfixturevalue(fixture)
    image = photo_like(96, 80)
    result = codec.encode_image(image, model)
    decoded = codec.decode_latents(result.data, model)
    assert torch.equal(decoded.latents.z_symbols, result.latents.z_symbols)
    assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
    q, own = _own_reconstruction(model, image)
    assert torch.equal(q.y_symbols, result.latents.y_symbols)
    assert np.array_equal(np.asarray(decoded.image()), own)


@pytest.mark.parametrize("uq, soft_alpha", [(False, 0), (True, 0), (True, 8)])
def test_file_size_is_the_ideal_information_content(tiny_model, uq, soft_alpha):
    image = photo_like(256, 192, seed=3)
    result = codec.encode_image(image, tiny_model, uq=uq, seed=7, soft_alpha=soft_alpha)
    payload_bits = 8 * (len(result.data) - bitstream.HEADER_SIZE - bitstream.TRAILER_SIZE)
    assert result.bits_ideal > 20000
    # Two range-coder streams, each flushed and padded to whole 32-bit words (at most 64 bits
    # together) above the ideal under the coder's weights, which are lrcodec's tables
    # re-quantized to 24 bits (a few bits per 10^4).
    assert result.bits_coder - 1 <= payload_bits <= result.bits_coder + 64
    assert result.bits_ideal - 8 <= payload_bits <= result.bits_ideal + 64 + 5e-4 * result.bits_ideal


def test_the_coders_weights_are_what_it_codes_with():
    """A rare symbol costs what the range coder's re-quantized weight says, which is less than
    lrcodec's table says: the coder gives every symbol weight 1 on top of its share."""
    tables = quantize_pmf(gaussian_pmf(np.array([0.3, 0.11, 4.0]), np.zeros(3), -20, 20))
    symbols = np.full(4000, 2, dtype=np.int32)  # 2 under sigma 0.11: a table weight of 1
    coded = entropy.encode(symbols, entropy.Groups.of(np.ones(4000, dtype=np.int64)), tables[1:2], -20)
    payload_bits = 8 * len(coded.payload)
    assert coded.bits_coder - 1 <= payload_bits <= coded.bits_coder + 32
    assert payload_bits < coded.bits_ideal - 3000  # 23 bits a symbol, not the table's 24


def test_ideal_bits_match_the_models_likelihood(tiny_model):
    """The coded model is the trained one: ideal bits equal -log2 of the training-time likelihood
    at hard-rounded latents with sigma rounded up to the coder's table, renormalised over the
    file's symbol range as the coder does."""
    from lrcodec.format.likelihoods import factorized_interval_likelihood, gaussian_interval_likelihood

    image = photo_like(128, 128, seed=4)
    result = codec.encode_image(image, tiny_model)
    q = result.latents
    v, sigma = q.y_symbols.double(), q.sigma.double()
    lo, hi = result.header.ymin, result.header.ymax
    in_range = gaussian_interval_likelihood(torch.full_like(v, lo - 0.5), torch.full_like(v, hi + 0.5), sigma)
    bits_y = -torch.log2(gaussian_interval_likelihood(v - 0.5, v + 0.5, sigma) / in_range).sum().item()
    eb = tiny_model.net.entropy_bottleneck
    z_hat, zlo, zhi = q.z_hat.double(), result.header.zmin, result.header.zmax
    m = z_hat - q.z_symbols.double()  # the median of each element's channel
    z_range = factorized_interval_likelihood(eb, (m + zlo - 0.5).float(), (m + zhi + 0.5).float()).double()
    bits_z = -torch.log2(factorized_interval_likelihood(eb, q.z_hat - 0.5, q.z_hat + 0.5).double() / z_range)
    assert result.info["bits_y"] == pytest.approx(bits_y, rel=1e-4)
    assert result.info["bits_z"] == pytest.approx(bits_z.sum().item(), rel=1e-4)


@pytest.mark.parametrize("size", [(65, 47), (1, 1), (1, 130), (200, 3)])
def test_odd_sizes_round_trip(tiny_model, size):
    image = photo_like(*size, seed=5)
    result = codec.encode_image(image, tiny_model)
    out = codec.decode_image(result.data, tiny_model)
    assert out.size == size and out.mode == "RGB"
    _, own = _own_reconstruction(tiny_model, image)
    assert np.array_equal(np.asarray(out), own)


def test_grayscale_decodes_to_grayscale(tiny_model):
    image = photo_like(70, 50, mode="L")
    out = codec.decode_image(codec.encode_image(image, tiny_model).data, tiny_model)
    assert out.mode == "L" and out.size == (70, 50)


def _disc(width: int, height: int) -> np.ndarray:
    """An alpha plane with every level: a disc fading out from the centre."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.clip(255 - ((xx - width // 2) ** 2 + (yy - height // 2) ** 2) // 3, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_alpha_round_trips_exactly_beside_the_same_colours(tiny_model, mode):
    """RGBA and LA: the colours coded as without alpha (the same symbols), the alpha exactly,
    decoded as RGBA or LA; --drop-alpha codes the colours only (format 2)."""
    image = photo_like(45, 31, seed=3).convert(mode)
    plane = _disc(45, 31)
    with_alpha = image.copy()
    with_alpha.putalpha(Image.fromarray(plane, "L"))
    result = codec.encode_image(with_alpha, tiny_model)
    colours = codec.encode_image(image, tiny_model)
    assert result.header.version == 5 and result.header.mode == mode
    decoded = codec.decode_latents(result.data, tiny_model)
    assert np.array_equal(decoded.alpha, plane) and decoded.alpha.dtype == np.uint8
    assert torch.equal(decoded.latents.y_symbols, codec.decode_latents(colours.data, tiny_model).latents.y_symbols)
    out = decoded.image()
    assert out.mode == mode + "A" and np.array_equal(np.asarray(out.getchannel("A")), plane)
    assert decoded.image(drop_alpha=True).mode == mode
    dropped = codec.encode_image(with_alpha, tiny_model, drop_alpha=True)
    assert dropped.data == colours.data and codec.decode_latents(dropped.data, tiny_model).alpha is None


def test_a_constant_alpha_costs_sixteen_bytes(tiny_model):
    """00 v: a 12-byte record in a section of its own (4 bytes of length), nothing else changed."""
    image = photo_like(64, 48, seed=2).convert("RGBA")
    image.putalpha(200)
    data = codec.encode_image(image, tiny_model).data
    dropped = codec.encode_image(image, tiny_model, drop_alpha=True).data
    assert len(data) == len(dropped) + 16
    assert data[bitstream.HEADER_SIZE:-4].endswith(struct.pack("<IBBII", 12, 4, 0, 2, 2) + b"\x00\xc8")
    assert np.array_equal(codec.decode_latents(data, tiny_model).alpha, np.full((48, 64), 200, np.uint8))


def test_premultiplied_and_palette_alpha_are_kept_straight(tiny_model):
    """RGBa and La are converted to straight alpha first; a palette's transparency is an alpha."""
    rgba = photo_like(40, 30, seed=4).convert("RGBA")
    rgba.putalpha(Image.fromarray(_disc(40, 30), "L"))
    palette = photo_like(40, 30, seed=4).convert("P")
    palette.info["transparency"] = 0
    for image in (rgba.convert("RGBa"), rgba.convert("LA").convert("La"), rgba.convert("PA"), palette):
        straight = image.convert("LA" if image.mode in ("LA", "La") else "RGBA")
        decoded = codec.decode_latents(codec.encode_image(image, tiny_model).data, tiny_model)
        assert np.array_equal(decoded.alpha, np.asarray(straight.getchannel("A"))), image.mode
        assert_pixels_close(np.asarray(decoded.image().convert(straight.mode[:-1])),
                            np.asarray(codec.decode_image(codec.encode_image(straight.convert(straight.mode[:-1]),
                                                                             tiny_model).data, tiny_model)))


def test_refinement_keeps_alpha(tiny_model):
    from lrcodec.learn.refine import refine_image

    image = photo_like(64, 48, seed=6).convert("RGBA")
    image.putalpha(Image.fromarray(_disc(64, 48), "L"))
    result = refine_image(image, tiny_model, iterations=2, seed=1)
    for encoded in (result.encoded, result.base):
        assert np.array_equal(codec.decode_latents(encoded.data, tiny_model).alpha, _disc(64, 48))


def test_out_of_support_symbols_round_trip(tiny_model):
    """Latents far outside anything the prior expects still code and decode exactly."""
    x, _ = codec.prepare_image(photo_like(64, 64))
    y, z = codec.analyse(tiny_model, x)
    y[0, 0, 0, 0] += 900.0
    z[0, 1, 0, 0] -= 300.0
    result = codec.encode_latents(tiny_model, y, z, 64, 64)
    decoded = codec.decode_latents(result.data, tiny_model)
    assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
    assert torch.equal(decoded.latents.z_symbols, result.latents.z_symbols)
    assert result.latents.y_symbols.abs().max() > 800


def test_uq_round_trip_and_uniform_error(tiny_model):
    from scipy import stats

    image = photo_like(128, 128, seed=8)
    result = codec.encode_image(image, tiny_model, uq=True, seed=11)
    decoded = codec.decode_latents(result.data, tiny_model)
    assert decoded.header.uq and decoded.header.seed == 11
    assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
    assert torch.equal(decoded.latents.y_hat, result.latents.y_hat)
    x, _ = codec.prepare_image(image)
    y, _ = codec.analyse(tiny_model, x)
    err = (y - result.latents.y_hat).flatten().numpy()
    assert np.abs(err).max() <= 0.5 + 1e-5
    # 15 dither levels: the error is uniform up to a 1/16-wide discretisation.
    assert stats.kstest(err, "uniform", args=(-0.5, 1.0)).statistic < 0.07


def test_soft_mean_reconstruction_round_trips_with_r_alpha(tiny_model):
    from lrcodec.learn.surrogates import soft_round_conditional_mean
    from lrcodec.format.dither import uq_dither

    image = photo_like(128, 128, seed=9)
    result = codec.encode_image(image, tiny_model, uq=True, seed=4, soft_alpha=8)
    decoded = codec.decode_latents(result.data, tiny_model)
    assert decoded.header.soft_alpha == 8 and decoded.header.describe()["reconstruction"] == "soft-mean (alpha 8)"
    assert torch.equal(decoded.latents.y_hat, result.latents.y_hat)
    assert torch.equal(decoded.latents.z_hat, result.latents.z_hat)
    # The decoder's value is mu + r_alpha(k + u), the soft-rounding conditional mean.
    q = decoded.latents
    u = uq_dither(4, tuple(q.y_hat.shape))
    expected = q.mu.float() + soft_round_conditional_mean(q.y_symbols.float() + u, 8.0)
    assert torch.allclose(q.y_hat, expected, atol=2e-6)
    # It differs from the dither reconstruction of the same seed.
    plain = codec.encode_image(image, tiny_model, uq=True, seed=4)
    assert plain.data != result.data


def test_soft_mean_needs_uq_and_an_alpha(tiny_model):
    with pytest.raises(LrcodecError, match="needs universal quantization"):
        codec.encode_image(photo_like(64, 64), tiny_model, soft_alpha=8)
    with pytest.raises(LrcodecError, match="not trained with soft rounding"):
        codec.soft_mean_alpha(tiny_model, "soft-mean")
    assert codec.soft_mean_alpha(tiny_model, "soft-mean", 12) == 12
    assert codec.soft_mean_alpha(tiny_model, "dither") == 0
    with pytest.raises(LrcodecError, match="1-255"):
        codec.soft_mean_alpha(tiny_model, "soft-mean", 300)


def test_header_fields_are_validated_and_checksummed(tiny_model):
    data = codec.encode_image(photo_like(64, 64), tiny_model, uq=True, seed=3).data
    header = bitstream.parse_header(data)
    assert (header.width, header.height, header.mode, header.uq) == (64, 64, "RGB", True)
    with pytest.raises(LrcodecError, match="truncated"):
        bitstream.parse_header(data[:-7])
    with pytest.raises(LrcodecError, match="checksum"):
        flipped = bytearray(data)
        flipped[24] ^= 1  # the seed: another seed must not decode silently
        bitstream.parse_header(bytes(flipped))
    with pytest.raises(LrcodecError, match="magic"):
        bitstream.parse_header(b"\x89PNG" + data[4:])
    with pytest.raises(LrcodecError, match="empty"):
        bitstream.parse_header(b"")


def test_another_model_is_refused(tiny_model):
    other = make_model(seed=42)
    data = codec.encode_image(photo_like(64, 64), tiny_model).data
    with pytest.raises(LrcodecError, match="made with model"):
        codec.decode_image(data, other)


def test_image_limits(tiny_model):
    data = codec.encode_image(photo_like(64, 64), tiny_model).data
    with pytest.raises(LrcodecError, match="exceeds the limit"):
        codec.decode_image(data, tiny_model, max_pixels=1000)


def test_decoding_at_other_thread_counts_is_within_the_float_bound(tiny_model):
    image = photo_like(768, 512, seed=12)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data = codec.encode_image(image, tiny_model).data
        one = codec.decode_latents(data, tiny_model)
        torch.set_num_threads(2)
        two = codec.decode_latents(data, tiny_model)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(one.latents.sigma_index, two.latents.sigma_index)
    assert torch.equal(one.latents.y_hat, two.latents.y_hat)  # exact: integer arithmetic
    # g_s runs on oneDNN, whose sums depend on the thread count: the float bound.
    assert_pixels_close(one.pixels, two.pixels)


def test_sigma_comes_from_the_models_own_table():
    """A model trained with another --sigma-min codes with its own table, and the latents say so."""
    from lrcodec.format.entropy import sigma_table
    from lrcodec.models import _finish

    base = make_model(seed=3)
    model = _finish(base.net, "wide-sigma", "mean-scale", dict(base.card, sigma_min=0.2))
    q = codec.encode_image(photo_like(64, 64, seed=6), model).latents
    assert np.array_equal(q.sigma.numpy(), sigma_table(0.2)[q.sigma_index])
    assert q.sigma.min() >= 0.2


def test_library_calls_from_a_thread_pool_give_the_one_by_one_results(tiny_model, tiny_context_model):
    """Encodes, refinements and decodes run at once from a pool of threads in one process: the
    process-wide switches (oneDNN, the thread count) never move while they run or after (the
    old kernels.py flipped them, so that one thread's decode changed another's arithmetic), and
    each result is that of the same call made one by one: files with the same latents but where
    a float latent lies at a rounding boundary, pixels within the float bound. (Bit equality
    would rest on the kernels' run-to-run reproducibility, which no library guarantees.)"""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from lrcodec.learn.refine import refine_image

    images = [photo_like(160 + 32 * (i % 3), 96 + 16 * i, seed=40 + i) for i in range(6)]
    models = [tiny_model, tiny_context_model]
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled

    def encode(i):
        return codec.encode_image(images[i], models[i % 2], uq=i % 3 == 0, seed=i).data

    def refine(i):
        return refine_image(images[i], models[i % 2], iterations=4, eval_every=2, lmbda=0.05, seed=i).encoded.data

    def decode(data, i):
        return np.asarray(codec.decode_image(data, models[i % 2]))

    def same_file(a, b, i):
        assert_latents_close(*(codec.decode_latents(d, models[i % 2]).latents.y_symbols for d in (a, b)))

    files = [encode(i) for i in range(len(images))]
    refined = [refine(i) for i in range(3)]
    pixels = [decode(f, i) for i, f in enumerate(files)]
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.add(torch.backends.mkldnn.enabled)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(3) as pool:
            encodes = [pool.submit(encode, i) for i in range(len(images))]
            refines = [pool.submit(refine, i) for i in range(3)]
            decodes = [pool.submit(decode, f, i) for i, f in enumerate(files)]
            for futures, alones in ((encodes, files), (refines, refined)):
                for i, (future, alone) in enumerate(zip(futures, alones)):
                    same_file(future.result(), alone, i)
            for future, alone in zip(decodes, pixels):
                assert_pixels_close(future.result(), alone)
    finally:
        done.set()
        watcher.join()
    assert seen == {onednn}
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled) == (threads, onednn)
    for i, (f, alone) in enumerate(zip(files, pixels)):
        assert_pixels_close(decode(f, i), alone)
