"""The channel-context family (``lrcodec.families.channel_context``): exact slice-by-slice
coding, float graph = integer graph, refinement of the rate that is written, loading without
a card, and every family's checks (``family_checks.FamilyChecks``)."""

from __future__ import annotations

import copy
import zlib

import numpy as np
import pytest
import torch
from conftest import TINY_CONTEXT, assert_pixels_close, photo_like

from lrcodec.format import bitstream
from lrcodec import codec
from lrcodec.errors import LrcodecError
from family_checks import FamilyChecks
from lrcodec.families.channel_context import CHANNEL_CONTEXT


class TestChannelContext(FamilyChecks):
    ARCHS = ("channel-context",)
    REFINES_HERE = False  # test_refinement_optimises_the_context_rate_and_is_never_worse


@pytest.mark.parametrize("uq, soft_alpha", [(False, 0), (True, 0), (True, 8)])
def test_round_trip_is_exact_at_the_ideal_size(tiny_context_model, uq, soft_alpha):
    image = photo_like(160, 112, seed=3)
    result = codec.encode_image(image, tiny_context_model, uq=uq, seed=7, soft_alpha=soft_alpha)
    decoded = codec.decode_latents(result.data, tiny_context_model)
    assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
    assert torch.equal(decoded.latents.z_symbols, result.latents.z_symbols)
    assert np.array_equal(decoded.latents.sigma_index, result.latents.sigma_index)
    payload_bits = 8 * (len(result.data) - bitstream.HEADER_SIZE - bitstream.TRAILER_SIZE)
    # One range-coder stream per payload, padded to 32-bit words; constriction's fixed-point
    # tables move the real cost by a few bits per thousand either way.
    assert abs(payload_bits - result.bits_ideal) <= 64 + 2e-3 * result.bits_ideal


def test_units_cover_y_once_in_slice_order(tiny_context_model):
    units = tiny_context_model.exact.y_units((1, 24, 5, 7))
    assert len(units) == 2 * TINY_CONTEXT["slices"]  # two checkerboard passes per slice
    count = np.zeros((1, 24, 5, 7), int)
    for unit in units:
        unit.put(count, unit.take(count) + 1)
    assert (count == 1).all()
    assert [u.lo for u in units] == sorted(u.lo for u in units)


def test_exact_parameters_are_the_float_graphs(tiny_context_model):
    """(sigma, mu) the coder uses equal the float context's on the same y_hat, up to the
    fixed-point rounding (2**-16 per layer); the symbols decided on each path agree."""
    from lrcodec.learn.train_context import hard_quantizer

    model = tiny_context_model
    x, _ = codec.prepare_image(photo_like(128, 96, seed=5))
    y, z = codec.analyse(model, x)
    q = codec.quantize_latents(model, y, z)
    sigma_h, mu_h = CHANNEL_CONTEXT.split(torch.from_numpy(model.exact.hyper(q.z_symbols.numpy(),
                                                                               np.zeros(q.z_symbols.shape))))
    with torch.no_grad():
        sigma, mu, y_hat, _ = model.net.context(y, sigma_h.float(), mu_h.float(), hard_quantizer(0.11))
    assert (mu.double() - q.mu).abs().max() < 1e-3
    assert torch.mean((torch.round(y - mu) == q.y_symbols.float()).float()) > 0.999
    table_sigma = torch.from_numpy(q.sigma_table[model.exact.sigma_index(sigma.double().numpy())])
    assert torch.mean((table_sigma == q.sigma).float()) > 0.98


def test_slice_networks_equal_their_int64_definition(tiny_context_model):
    for net in tiny_context_model.exact.nets:
        inputs = net.layers[0].weight.shape[1]
        x = torch.randint(-3000, 3000, (1, inputs, 6, 5)).double() * 2**8
        x[0, 0, 0, 0] = 1e12  # saturates identically on both paths
        assert np.array_equal(net(x), net.reference(x))


def test_an_untrained_context_codes_as_the_hyperprior(tiny_model):
    """Its last layers start at zero: the same symbols and the same ideal bits as the
    mean-scale model it extends (only the coding order differs)."""
    net = copy.deepcopy(tiny_model.net)
    state = net.state_dict()
    context_net = CHANNEL_CONTEXT.build("channel-context", 16, 24, TINY_CONTEXT)
    context_net.load_state_dict(state, strict=False)
    from lrcodec.models import _finish

    model = _finish(context_net, "untrained", "channel-context", {"sigma_min": 0.11})
    image = photo_like(128, 96, seed=6)
    plain, with_context = codec.encode_image(image, tiny_model), codec.encode_image(image, model)
    assert torch.equal(plain.latents.y_symbols, with_context.latents.y_symbols)
    assert with_context.bits_ideal == pytest.approx(plain.bits_ideal, rel=1e-9)


def test_saved_model_loads_by_its_weights_alone(tiny_context_model, tmp_path):
    from lrcodec.models import load_checkpoint, load_safetensors, save_model

    path = tmp_path / "ctx.safetensors"
    save_model(tiny_context_model.net, path, {"arch": "channel-context"}, fp16=False)
    loaded = load_safetensors(path, card={})
    assert loaded.arch == "channel-context" and loaded.family is CHANNEL_CONTEXT
    assert loaded.net.context.shape == tiny_context_model.net.context.shape
    assert loaded.model_id == tiny_context_model.model_id
    torch.save({"state_dict": tiny_context_model.net.state_dict()}, tmp_path / "ctx.pth")
    assert load_checkpoint(tmp_path / "ctx.pth").model_id == tiny_context_model.model_id
    image = photo_like(64, 64, seed=1)
    data = codec.encode_image(image, tiny_context_model).data
    assert np.array_equal(np.asarray(codec.decode_image(data, loaded)), np.asarray(codec.decode_image(data, tiny_context_model)))


def test_damaged_y_payload_is_a_clean_error(tiny_context_model):
    data = bytearray(codec.encode_image(photo_like(96, 96, seed=2), tiny_context_model).data)
    header = bitstream.parse_header(bytes(data))
    at = bitstream.HEADER_SIZE + header.z_length + header.y_length // 2
    data[at] ^= 0x40
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    with pytest.raises(LrcodecError, match="invalid lrcodec file"):
        codec.decode_latents(bytes(data), tiny_context_model)


def test_refinement_optimises_the_context_rate_and_is_never_worse(tiny_context_model):
    from lrcodec.learn.refine import refine_image

    image = photo_like(96, 64, seed=8)
    result = refine_image(image, tiny_context_model, iterations=12, lr=0.02, eval_every=4, lmbda=0.05)
    plain = codec.encode_image(image, tiny_context_model)
    assert result.base.data == plain.data
    assert [h[0] for h in result.history] == [0, 4, 8, 12]
    decoded = codec.decode_latents(result.encoded.data, tiny_context_model)
    assert torch.equal(decoded.latents.y_symbols, result.encoded.latents.y_symbols)
    from lrcodec.learn.refine import file_loss

    x, _ = codec.prepare_image(image)
    x = x[:, :, : image.height, : image.width]
    lmbda = 0.05
    assert file_loss(result.encoded, x, lmbda, tiny_context_model)[0] <= file_loss(plain, x, lmbda, tiny_context_model)[0] + 1e-12


def test_context_models_cannot_be_widened(tiny_context_model):
    from lrcodec.models import widen_latents

    with pytest.raises(LrcodecError, match="only mean-scale"):
        widen_latents(tiny_context_model.net, "channel-context", 32)


def test_context_latents_are_identical_under_other_arithmetic(tiny_context_model, tmp_path):
    """The integer slice networks decide the same symbols without SIMD kernels, with oneDNN at
    SSE4.1, with 1, 2 or 3 threads, native kernels and float64 transforms (``lrcodec.app.probe``);
    the pixels at each thread count are within the float bound of this process's."""
    import json
    import os
    import subprocess
    import sys

    from lrcodec.models import save_model
    from lrcodec.app.probe import latent_digest

    models = tmp_path / "models"
    save_model(tiny_context_model.net, models / "tiny-ctx.safetensors", {"arch": "channel-context"}, fp16=False)
    path = tmp_path / "ctx.lrc"
    path.write_bytes(codec.encode_image(photo_like(160, 112, seed=3), tiny_context_model, uq=True, seed=5).data)
    here = codec.decode_latents(path.read_bytes(), tiny_context_model)
    expected = latent_digest(here.latents)
    env = dict(os.environ, LRCODEC_MODELS=str(models), ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41")
    out = subprocess.run([sys.executable, "-m", "lrcodec.app.probe", f"--pixels={tmp_path}", str(path)], env=env,
                         capture_output=True, text=True, check=True)
    variants = json.loads(out.stdout)
    assert set(variants) == {"threads-1", "threads-2", "threads-3", "native", "float64"}
    for records in variants.values():
        assert records[str(path)]["latents"] == expected
    for n in (1, 2, 3):
        assert_pixels_close(np.load(tmp_path / f"ctx.threads-{n}.npy"), here.pixels, f"{n} threads")
