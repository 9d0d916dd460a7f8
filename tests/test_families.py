"""Every architecture, each from its family module: exact round trips at the ideal size, the
same symbols under other CPU kernels, loading from a bare CompressAI state dict, refinement,
and golden files (``tests/golden/families.json``, written by scripts/make_family_golden.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FIXTURES, assert_pixels_close, make_model, photo_like
from lrcodec import bitstream, codec, models
from lrcodec.errors import LrcodecError
from lrcodec.families import ARCHITECTURES, arch_of_state, family
from lrcodec.probe import latent_digest, symbol_digest

GOLDEN = Path(__file__).parent / "golden"
FAMILY_GOLDEN = json.loads((GOLDEN / "families.json").read_text())
# (arch, N, M, seed) of each architecture's small test network (tests/fixtures/)
TINY = {
    "mean-scale": (16, 24, 0),
    "scale": (16, 24, 1),
    "channel-context": (16, 24, 2),
    "factorized": (16, 24, 4),
    "factorized-relu": (16, 24, 5),
    "joint-autoregressive": (16, 24, 6),
    "cheng2020-anchor": (16, 16, 7),
    "cheng2020-attn": (16, 16, 8),
    "cheng2020-anchor-checkerboard": (16, 16, 9),
    "elic2022-official": (16, 32, 10),
    "elic2022-chandelier": (16, 32, 11),
    "scale-vbr": (16, 24, 12),
    "mean-scale-vbr": (16, 24, 13),
    "joint-autoregressive-vbr": (16, 24, 14),
}
TINY_GROUPS = {"groups": [4, 4, 8, 16]}  # ELIC's uneven channel groups, small


def tiny(arch: str):
    N, M, seed = TINY[arch]
    return make_model(arch, N=N, M=M, seed=seed, context=TINY_GROUPS if arch.startswith("elic") else None)


def test_every_architecture_has_a_test_network():
    assert set(TINY) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("uq", [False, True])
def test_round_trip_at_the_ideal_size(arch, uq):
    model = tiny(arch)
    image = photo_like(144, 80, seed=11)
    result = codec.encode_image(image, model, uq=uq, seed=3)
    decoded = codec.decode_latents(result.data, model)
    assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
    assert torch.equal(decoded.latents.z_symbols, result.latents.z_symbols)
    assert torch.equal(decoded.latents.y_hat, result.latents.y_hat)
    payload_bits = 8 * (len(result.data) - bitstream.HEADER_SIZE - bitstream.TRAILER_SIZE)
    assert result.bits_ideal > 2000
    # The ideal under the range coder's own weights, plus at most the two streams' flush words;
    # under lrcodec's tables, which the coder re-quantizes (entropy.coder_weights), the file of
    # a tiny network on a small image lies within 1 % either way.
    assert result.bits_coder - 1 <= payload_bits <= result.bits_coder + 64
    assert 0.99 * result.bits_ideal <= payload_bits <= 1.01 * result.bits_ideal
    assert decoded.image().size == image.size


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_coders_parameters_are_the_float_graphs(arch):
    """The bits of the coded latents under the coder's own (sigma index, mu) equal those under
    the float graph run on the same y_hat (a context reads y_hat, teacher-forced), to 3 %:
    the exact path computes what the trained network does, up to fixed point and the
    sigma table (whose levels are 3 % apart)."""
    model = tiny(arch)
    q = codec.encode_image(photo_like(144, 80, seed=12), model).latents
    with torch.no_grad():
        float_bits = sum(model.family.float_bits(model.net, q.y_hat, q.z_hat)).item()
        coder_bits = model.family.hard_bits(model.net, q).item()
    assert coder_bits == pytest.approx(float_bits, rel=0.03)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_loads_from_a_bare_state_dict(arch, tmp_path):
    model = tiny(arch)
    torch.save(model.net.state_dict(), tmp_path / "net.pth")
    loaded = models.load_model(str(tmp_path / "net.pth"), model.card.get("quality"))  # a variable-rate one's level
    assert (loaded.arch, loaded.model_id) == (arch, model.model_id)
    data = codec.encode_image(photo_like(64, 64, seed=1), model).data
    assert torch.equal(codec.decode_latents(data, loaded).latents.y_hat, codec.decode_latents(data, model).latents.y_hat)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_bare_checkpoint_encodes_at_the_default_effort(arch, tmp_path):
    """A CompressAI state dict carries no lambda: the default effort refines for the one
    ``refine.lambda_for`` chooses (a variable-rate network: its level's), and the file decodes."""
    from lrcodec.batch import encode_bytes
    from lrcodec.refine import lambda_for
    from lrcodec.settings import DEFAULT_EFFORT, EncodeSettings

    model = tiny(arch)
    path = tmp_path / f"{arch}.pth.tar"
    torch.save({"state_dict": model.net.state_dict()}, path)
    image = photo_like(64, 48, seed=3)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    settings = EncodeSettings(model=str(path), quality=model.card.get("quality"), effort=DEFAULT_EFFORT, time_limit=0)
    outcome = encode_bytes(buffer.getvalue(), "photo.png", settings)
    assert outcome.row["iterations"] > 0
    loaded = models.load_model(str(path), model.card.get("quality"))
    decoded = codec.decode_latents(outcome.data, loaded)
    assert decoded.image().size == image.size
    assert "lmbda" not in loaded.card or arch.endswith("-vbr")
    assert lambda_for(loaded, outcome.row["base_bpp"]) > 0


def test_compressai_networks_are_recognised_by_their_keys():
    from compressai.models import (Cheng2020Anchor, Cheng2020Attention, FactorizedPrior, FactorizedPriorReLU,
                                   JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior, ScaleHyperprior)

    for cls, arch in [(FactorizedPrior, "factorized"), (FactorizedPriorReLU, "factorized-relu"),
                      (ScaleHyperprior, "scale"), (MeanScaleHyperprior, "mean-scale"),
                      (JointAutoregressiveHierarchicalPriors, "joint-autoregressive")]:
        assert arch_of_state(cls(8, 12).state_dict()) == arch
    assert arch_of_state(Cheng2020Anchor(8).state_dict()) == "cheng2020-anchor"
    assert arch_of_state(Cheng2020Attention(8).state_dict()) == "cheng2020-attn"
    from compressai.models.sensetime import Cheng2020AnchorCheckerboard, Elic2022Chandelier, Elic2022Official

    assert arch_of_state(Cheng2020AnchorCheckerboard(8).state_dict()) == "cheng2020-anchor-checkerboard"
    for groups in ([2, 2, 4, 8], [4, 4, 8], [16, 16, 32, 64, 192]):  # the default split too
        M = sum(groups)
        assert arch_of_state(Elic2022Official(8, M, groups).state_dict()) == "elic2022-official"
        assert arch_of_state(Elic2022Chandelier(8, M, groups).state_dict()) == "elic2022-chandelier"


def test_an_unknown_architecture_is_one_clear_error(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, tmp_path / "other.pth")
    with pytest.raises(LrcodecError, match="not a checkpoint of an architecture lrcodec knows"):
        models.load_model(str(tmp_path / "other.pth"))


def test_a_checkpoint_that_does_not_fit_is_one_clear_error(tmp_path):
    state = dict(tiny("cheng2020-anchor").net.state_dict())
    state["h_s.0.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(LrcodecError, match="checkpoint does not match a cheng2020-anchor model: .*size mismatch"):
        models.load_model(str(tmp_path / "bad.pth"))
    with pytest.raises(LrcodecError, match="do not split M=96"):
        models.build_network("elic2022-official", 64, 96)
    with pytest.raises(LrcodecError, match="M = N"):
        models.build_network("cheng2020-anchor", 64, 96)


def test_masked_taps_are_zeroed_at_load(tmp_path):
    """CompressAI masks in forward only: taps a checkpoint holds under the mask never reach
    the coder or the model id."""
    model = tiny("joint-autoregressive")
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    mask = state["context_prediction.mask"]
    state["context_prediction.weight"] += (1 - mask) * 0.5
    torch.save(state, tmp_path / "unmasked.pth")
    loaded = models.load_model(str(tmp_path / "unmasked.pth"))
    assert loaded.model_id == model.model_id
    assert torch.equal(loaded.net.context_prediction.weight * (1 - mask), torch.zeros_like(mask))


def test_wavefront_units_cover_y_in_an_order_the_mask_allows():
    from lrcodec.families.autoregressive import wavefront_units

    units = wavefront_units(4, 32, 48)
    assert len(units) == 141  # a Kodak image: 1,536 positions
    step = np.zeros((32, 48), int)
    for t, unit in enumerate(units):
        step[unit.positions] = t
    assert sorted(np.bincount(step.ravel(), minlength=141) > 0) == [True] * 141
    # every tap of the causal 5x5 mask is coded in an earlier unit
    for di, dj in [(0, -1), (0, -2), (-1, -2), (-1, 2), (-2, 2), (-2, -2), (-1, 0)]:
        i, j = np.mgrid[2:32, 2:46]
        assert (step[i + di, j + dj] < step[i, j]).all()


@pytest.mark.parametrize("arch", ["joint-autoregressive", "cheng2020-anchor"])
def test_exact_parameters_are_the_float_graphs(arch):
    """(sigma, mu) the coder uses equal the float graph's on the decoded y_hat, up to the
    fixed-point rounding; the symbols decided on each path agree."""
    model = tiny(arch)
    x, _ = codec.prepare_image(photo_like(128, 96, seed=5))
    y, z = codec.analyse(model, x)
    q = codec.quantize_latents(model, y, z)
    with torch.no_grad():
        sigma, mu = model.family.params(model.net, model.net.h_s(q.z_hat), q.y_hat)
    assert (mu.double() - q.mu).abs().max() < 2e-3
    assert torch.mean((torch.round(y - mu) == q.y_symbols.float()).float()) > 0.999


@pytest.mark.parametrize("arch", ["joint-autoregressive", "cheng2020-anchor"])
def test_integer_networks_equal_their_int64_definition(arch):
    exact = tiny(arch).exact
    z = torch.randint(-40, 40, (1, 16, 7, 9)).double() * 2**16
    z[0, 0, 0, 0] = 1e9
    assert torch.equal(exact.h_s(z), exact.h_s.reference(z))
    p = torch.randint(-3000, 3000, (5, exact.entropy_parameters.layers[0].weight.shape[1], 1, 1)).double() * 2**8
    assert torch.equal(exact.entropy_parameters(p), exact.entropy_parameters.reference(p))


@pytest.mark.parametrize("arch", ["joint-autoregressive", "cheng2020-anchor-checkerboard", "elic2022-chandelier"])
def test_contexts_at_chosen_positions_are_the_whole_convolutions_there(arch):
    """The coder's context reads only the taps its mask leaves, at a unit's positions, and its
    parameter network runs on those positions' vectors: the integers of the whole networks."""
    from lrcodec.exact import _run_layer, _saturate

    exact = tiny(arch).exact
    context, parameters = ((exact.context, exact.entropy_parameters) if arch == "joint-autoregressive"
                           else (exact.spatial[-1], exact.parameters[-1]))
    assert len(context.offsets[0]) == 12  # of 25: a 5x5 causal or checkerboard mask
    channels = context.layer.weight.shape[1]
    y = torch.randint(-300, 300, (1, channels, 7, 9)).double() * 2**10
    y[0, 0, 3, 4] = 1e12  # saturated as the whole network saturates it
    rows, cols = np.nonzero(np.ones((7, 9), bool))  # every position, the borders' zero padding included
    whole = _run_layer(context.layer, _saturate(y))[0][:, rows, cols].T
    assert torch.equal(context(y, rows, cols), whole)
    p = torch.randint(-3000, 3000, (5, parameters.layers[0].weight.shape[1])).double() * 2**8
    assert torch.equal(parameters.on_vectors(p), parameters.reference(p[..., None, None])[..., 0, 0])


def test_cheng2020_halos_come_from_the_receptive_fields():
    """The sub-pixel h_s reaches 4 z positions, more than the 3 the first families needed;
    tiled h_s is exactly the untiled one with that halo, and not with less."""
    exact = tiny("cheng2020-anchor").exact
    assert exact.h_s.radius == 4
    z = torch.randint(-6, 6, (1, 16, 24, 20)).numpy()
    whole = exact.hyper(z, np.zeros(z.shape), tile=64)
    assert np.array_equal(exact.hyper(z, np.zeros(z.shape), tile=8), whole)
    from lrcodec.tiling import tiled

    z_fixed = torch.from_numpy(z * 2.0**16)
    assert not torch.equal(tiled(exact.h_s, z_fixed, up=4, tile=8, halo=2), exact.h_s(z_fixed))


def test_cheng2020_tiled_synthesis_is_the_untiled_one(monkeypatch):
    model = tiny("cheng2020-anchor")
    assert model.halos[1] > 4  # wider than the hyperpriors' g_s
    y_hat = torch.randn(1, 16, 40, 36) * 3
    whole = codec.synthesise(model, y_hat, 640, 576)
    monkeypatch.setattr(codec, "TILE", 256)
    monkeypatch.setattr(codec, "WHOLE", 0)
    tiled = codec.synthesise(model, y_hat, 640, 576)
    assert_pixels_close(whole, tiled)


# (the hyperpriors and the channel context: tests/test_refine.py)
@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a not in ("mean-scale", "scale", "channel-context")])
def test_refinement_lowers_the_true_loss(arch):
    from lrcodec.refine import refine_image

    model = tiny(arch)
    result = refine_image(photo_like(64, 64, seed=2), model, method="ssl", iterations=20, lr=0.02, lmbda=0.05,
                          eval_every=5)
    losses = [h[1] for h in result.history]
    assert min(losses[1:]) < losses[0]
    assert not result.kept_base
    assert torch.equal(codec.decode_latents(result.encoded.data, model).latents.y_hat, result.encoded.latents.y_hat)


@pytest.mark.parametrize("name", sorted(FAMILY_GOLDEN))
def test_golden_file_decodes_to_its_digests(name):
    expected = FAMILY_GOLDEN[name]
    data = (GOLDEN / name).read_bytes()
    assert len(data) == expected["bytes"]
    decoded = codec.decode_latents(data, tiny(expected["arch"]))
    assert symbol_digest(decoded.latents) == expected["symbols_sha256"]
    assert latent_digest(decoded.latents) == expected["latents_sha256"]


@pytest.mark.parametrize("capability, onednn_isa", [("default", "SSE41"), ("avx2", "AVX2")])
def test_golden_files_decode_the_same_under_other_kernels(capability, onednn_isa):
    """Each family's golden files decoded in a process with PyTorch's kernels without SIMD (and
    oneDNN's SSE4.1), or both capped at AVX2: the very same symbols and latents."""
    script = ("import json, sys; sys.path.insert(0, 'tests'); from test_families import tiny, FAMILY_GOLDEN, GOLDEN;"
              "from lrcodec import codec; from lrcodec.probe import latent_digest;"
              "print(json.dumps({n: latent_digest(codec.decode_latents((GOLDEN / n).read_bytes(), tiny(e['arch'])).latents)"
              " for n, e in FAMILY_GOLDEN.items()}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).parent.parent,
                         env={**os.environ, "ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": onednn_isa})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {n: e["latents_sha256"] for n, e in FAMILY_GOLDEN.items()}
