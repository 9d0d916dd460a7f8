"""Decoding without torch (``lrcodec.runtime``): a model's export decodes its files to the
torch decoder's symbols bit for bit and to its pixels within the float bound."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import ROOT, assert_latents_close, assert_pixels_close, photo_like

from lrcodec import codec, runtime
from lrcodec.format import bitstream
from lrcodec.app.probe import latent_digest, symbol_digest
from lrcodec.errors import LrcodecError
from lrcodec.models import SPEC, load_model, save_model, shipped_models


@pytest.fixture
def exported(tmp_path, tiny_model):
    """The tiny model saved as a model is made (weights, card, runtime export), and its decoder."""
    save_model(tiny_model.net, tmp_path / "tiny", {"arch": "mean-scale", "N": 16, "M": 24, "sigma_min": 0.11})
    return load_model(str(tmp_path / "tiny.safetensors")), runtime.load_runtime(tmp_path / f"tiny{SPEC}")


@pytest.mark.parametrize("uq", [False, True])
def test_an_export_decodes_to_the_torch_decoders_symbols_and_pixels(exported, uq):
    model, decoder = exported
    assert decoder.model_id == model.model_id and decoder.halos[1] == model.halos[1]
    data = codec.encode_image(photo_like(150, 90, seed=3), model, uq=uq, seed=5).data
    ours, theirs = codec.decode_latents(data, decoder), codec.decode_latents(data, model)
    assert symbol_digest(ours.latents) == symbol_digest(theirs.latents)
    assert latent_digest(ours.latents) == latent_digest(theirs.latents)  # y_hat too: all of it exact
    assert isinstance(ours.pixels, np.ndarray) and ours.pixels.dtype == np.uint8
    assert_pixels_close(ours.pixels, theirs.pixels)
    assert ours.image().size == (150, 90)


@pytest.mark.parametrize("uq", [False, True])
def test_the_plain_encode_without_torch_is_the_torch_encode(exported, uq):
    """g_a and h_a on onnxruntime: the torch encoder's symbols but where a latent lies within
    float error of a rounding boundary, a file whose size is its information content, and
    which the torch decoder decodes."""
    model, runtime_model = exported
    image = photo_like(150, 90, seed=4)
    ours, theirs = (codec.encode_image(image, m, uq=uq, seed=2) for m in (runtime_model, model))
    assert_latents_close(ours.latents.y_symbols, theirs.latents.y_symbols)
    assert_latents_close(ours.latents.z_symbols, theirs.latents.z_symbols)
    payload_bits = 8 * (len(ours.data) - bitstream.HEADER_SIZE - bitstream.TRAILER_SIZE)
    assert ours.bits_coder - 1 <= payload_bits <= ours.bits_coder + 64  # as tests/test_codec.py's
    decoded = codec.decode_latents(ours.data, model)
    assert np.array_equal(np.asarray(decoded.latents.y_symbols), ours.latents.y_symbols)


def test_the_g_s_graph_computes_the_torch_g_s_at_any_tile_size(exported):
    model, decoder = exported
    for shape in ((1, 24, 5, 7), (1, 24, 12, 3)):
        y = torch.randn(shape, generator=torch.Generator().manual_seed(shape[2])) * 3
        with torch.no_grad():
            expected = model.net.g_s(y).numpy()
        got = decoder.run("g_s", y.numpy())
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


def test_every_shipped_model_has_an_export_of_its_weights():
    """An export that went stale (other weights, another model id) would code wrong pixels or
    refuse the files: each shipped model's export names its id, its integer h_s is the torch
    coder's, and its graphs compute the model's transforms."""
    cards = shipped_models(current_only=False)
    assert cards
    for card in cards:
        decoder = runtime.shipped_runtime(card)
        assert decoder is not None and decoder.model_id.hex() == card["model_id"], card["name"]
        model = load_model(card["name"])
        assert [layer.spec() for layer in model.exact.h_s.layers] == decoder.spec["h_s"]
        for a, b in zip(model.exact.h_s.layers, decoder.exact.h_s.layers):
            assert a.weight_bits == b.weight_bits and np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        y = torch.randn((1, decoder.spec["M"], 4, 5), generator=torch.Generator().manual_seed(0))
        x = torch.rand((1, 3, 64, 80), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = {"g_s": (y, model.net.g_s(y)), "g_a": (x, model.net.g_a(x)),
                        "h_a": (y, model.family.hyper_analysis(model.net, y))}
        for graph, (inputs, outputs) in expected.items():
            got = decoder.run(graph, inputs.numpy())
            assert got.shape == outputs.shape and np.abs(got - outputs.numpy()).max() < 1e-4, (card["name"], graph)


def test_tiled_synthesis_is_the_whole_within_the_float_bound(exported, monkeypatch):
    _, decoder = exported
    y_hat = np.random.default_rng(0).normal(0, 2, (1, 24, 20, 18)).astype(np.float32)
    whole = codec.synthesise(decoder, y_hat, 320, 288)
    monkeypatch.setattr(codec, "WHOLE", 64 * 64)
    monkeypatch.setattr(codec, "TILE", 128)  # 8 y positions a tile, halo 4: 3 x 3 tiles
    assert_pixels_close(codec.synthesise(decoder, y_hat, 320, 288), whole)


def test_threads_share_a_decoder(exported):
    """One decoder (one onnxruntime session) decodes from several threads at once; each gets
    the symbols of a decode alone, and its pixels within the float bound."""
    model, decoder = exported
    files = [codec.encode_image(photo_like(96, 64, seed=s), model).data for s in range(4)]
    alone = [codec.decode_latents(f, decoder) for f in files]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: codec.decode_latents(f, decoder), files * 2))
    for a, b in zip(alone * 2, together):
        assert symbol_digest(a.latents) == symbol_digest(b.latents)
        assert_pixels_close(a.pixels, b.pixels)


def test_a_checkpoint_is_exported_once_into_the_cache(tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setenv("LRCODEC_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "trained.pth.tar"
    torch.save({"state_dict": tiny_model.net.state_dict()}, checkpoint)
    decoder = runtime.runtime_for(str(checkpoint))
    assert "exporting" in capsys.readouterr().err
    assert decoder.model_id == load_model(str(checkpoint)).model_id
    assert runtime.runtime_for(str(checkpoint)).model_id == decoder.model_id
    assert capsys.readouterr().err == ""  # the second time from the cache
    data = codec.encode_image(photo_like(64, 64), tiny_model).data
    assert_pixels_close(codec.decode_latents(data, decoder).pixels, codec.decode_latents(data, tiny_model).pixels)


def test_a_model_that_decodes_with_torch_only_has_no_decoder(tmp_path, tiny_context_model, monkeypatch):
    monkeypatch.setenv("LRCODEC_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "context.pth"
    torch.save(tiny_context_model.net.state_dict(), checkpoint)
    assert runtime.runtime_for(str(checkpoint), quiet=True) is None
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [runtime.TORCH_ONLY]  # found out once
    assert runtime.runtime_for(str(checkpoint), quiet=True) is None
    assert runtime.runtime_for("bmshj2018-hyperprior") is None  # a zoo name: torch's hub cache


def test_an_export_refuses_weights_it_was_not_made_from(tmp_path, tiny_model):
    save_model(tiny_model.net, tmp_path / "tiny", {"arch": "mean-scale"})
    spec = tmp_path / f"tiny{SPEC}"
    weights = tmp_path / "tiny.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"\0\0")
    with pytest.raises(LrcodecError, match="not the file"):
        runtime.load_runtime(spec)
    spec.write_text(json.dumps(dict(json.loads(spec.read_text()), export_version=99)))
    with pytest.raises(LrcodecError, match="this lrcodec version"):
        runtime.load_runtime(spec)
    for damaged in ([], {"export_version": runtime.EXPORT_VERSION}):
        spec.write_text(json.dumps(damaged))
        with pytest.raises(LrcodecError, match="runtime export"):
            runtime.load_runtime(spec)
    with pytest.raises(LrcodecError, match="not found"):
        runtime.load_runtime(tmp_path / f"missing{SPEC}")


def test_a_damaged_g_s_graph_is_a_one_line_error(exported, tmp_path):
    _, decoder = exported
    g_s = decoder.stem.with_name(decoder.stem.name + ".g_s.onnx")
    g_s.write_bytes(g_s.read_bytes()[:1000])
    damaged = runtime.RuntimeModel(decoder.spec, decoder.exact, decoder.stem)
    with pytest.raises(LrcodecError, match="not a usable graph"):
        damaged.g_s(np.zeros((1, 24, 2, 2), np.float32))


def test_a_format_1_file_given_a_runtime_model_decodes_with_torch():
    """Format 1's float probabilities are torch's: its decoder runs (and may refuse the file
    where this machine's floats differ from its encoder's, as tests/test_portability.py says)."""
    from lrcodec.format.format1 import NOT_HERE

    name = "v1-lrc-mshp-q3-plain.lrc"
    golden = ROOT / "tests" / "golden"
    try:
        decoded = codec.decode_latents((golden / name).read_bytes(), runtime.runtime_for("lrc-mshp-q3"))
    except LrcodecError as e:
        assert str(e) == NOT_HERE
        return
    assert not isinstance(decoded.pixels, np.ndarray)  # the torch model's
    assert symbol_digest(decoded.latents) == json.loads((golden / "golden.json").read_text())[name]["symbols_sha256"]


def test_a_file_of_another_model_is_refused_by_a_decoder(exported, tiny_scale_model):
    _, decoder = exported
    data = codec.encode_image(photo_like(64, 64), tiny_scale_model).data
    with pytest.raises(LrcodecError, match="not with"):
        codec.decode_latents(data, decoder)
