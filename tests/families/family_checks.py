"""What every family's test file checks of each of its architectures (``FamilyChecks``): exact
round trips at the ideal size, the coder's parameters against the float graph's, loading from
a bare CompressAI state dict, the default effort on such a checkpoint, refinement and the
golden files (``tests/golden/families.json``, written by scripts/make_family_golden.py). A
family's file subclasses it with its ``ARCHS``; ``tests/conftest.py`` parametrizes ``arch``
and ``golden`` from them."""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch

from conftest import FIXTURES, GOLDEN, make_model, photo_like
from lrcodec import codec, models, runtime
from lrcodec.app.probe import latent_digest, symbol_digest
from lrcodec.format import bitstream
from lrcodec.models import export_runtime

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


def golden_names(archs) -> list[str]:
    return sorted(name for name, entry in FAMILY_GOLDEN.items() if entry["arch"] in archs)


def assert_positions_are_whole(context, parameters) -> None:
    """A context convolution at chosen positions (``PositionConvolution``, the taps a 5x5
    causal or checkerboard mask leaves) and a parameter network on those positions' vectors
    give exactly the integers of the whole networks, saturation and zero padding included."""
    import numpy as np

    from lrcodec.format.exact import _run_layer, _saturate

    assert len(context.offsets[0]) == 12  # of 25
    channels = context.layer.weight.shape[1]
    y = torch.randint(-300, 300, (1, channels, 7, 9)).double() * 2**10
    y[0, 0, 3, 4] = 1e12  # saturated as the whole network saturates it
    rows, cols = np.nonzero(np.ones((7, 9), bool))  # every position, the borders' zero padding included
    whole = _run_layer(context.layer, _saturate(y))[0][:, rows, cols].T
    assert np.array_equal(context(y, rows, cols), whole)
    p = torch.randint(-3000, 3000, (5, parameters.layers[0].weight.shape[1])).double() * 2**8
    assert np.array_equal(parameters.on_vectors(p), parameters.reference(p[..., None, None])[..., 0, 0])


class FamilyChecks:
    ARCHS: tuple[str, ...] = ()
    REFINES_HERE = True  # False: its refinement is tested in tests/learn/test_refine.py

    def test_round_trip_at_the_ideal_size(self, arch, uq):
        model = tiny(arch)
        image = photo_like(144, 80, seed=11)
        result = codec.encode_image(image, model, uq=uq, seed=3)
        decoded = codec.decode_latents(result.data, model)
        assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
        assert torch.equal(decoded.latents.z_symbols, result.latents.z_symbols)
        assert torch.equal(decoded.latents.y_hat, result.latents.y_hat)
        payload_bits = 8 * (len(result.data) - bitstream.HEADER_SIZE - bitstream.TRAILER_SIZE)
        assert result.bits_ideal > 2000
        # The ideal under the range coder's own weights, plus at most the two streams' flush
        # words; under lrcodec's tables, which the coder re-quantizes (entropy.coder_weights),
        # the file of a tiny network on a small image lies within 1 % either way.
        assert result.bits_coder - 1 <= payload_bits <= result.bits_coder + 64
        assert 0.99 * result.bits_ideal <= payload_bits <= 1.01 * result.bits_ideal
        assert decoded.image().size == image.size

    def test_the_coders_parameters_are_the_float_graphs(self, arch):
        """The bits of the coded latents under the coder's own (sigma index, mu) equal those
        under the float graph run on the same y_hat (a context reads y_hat, teacher-forced), to
        3 %: the exact path computes what the trained network does, up to fixed point and the
        sigma table (whose levels are 3 % apart)."""
        model = tiny(arch)
        q = codec.encode_image(photo_like(144, 80, seed=12), model).latents
        with torch.no_grad():
            float_bits = sum(model.family.float_bits(model.net, q.y_hat, q.z_hat)).item()
            coder_bits = model.family.hard_bits(model.net, q).item()
        assert abs(coder_bits - float_bits) <= 0.03 * float_bits

    def test_loads_from_a_bare_state_dict(self, arch, tmp_path):
        model = tiny(arch)
        torch.save(model.net.state_dict(), tmp_path / "net.pth")
        loaded = models.load_model(str(tmp_path / "net.pth"), model.card.get("quality"))  # a variable-rate one's level
        assert (loaded.arch, loaded.model_id) == (arch, model.model_id)
        data = codec.encode_image(photo_like(64, 64, seed=1), model).data
        assert torch.equal(codec.decode_latents(data, loaded).latents.y_hat,
                           codec.decode_latents(data, model).latents.y_hat)

    def test_a_bare_checkpoint_encodes_at_the_default_effort(self, arch, tmp_path):
        """A CompressAI state dict carries no lambda: the default effort refines for the one
        ``refine.lambda_for`` chooses (a variable-rate network: its level's), and the file decodes."""
        from lrcodec.encoder import encode_bytes
        from lrcodec.learn.refine import lambda_for
        from lrcodec.settings import DEFAULT_EFFORT, EncodeSettings

        model = tiny(arch)
        path = tmp_path / f"{arch}.pth.tar"
        torch.save({"state_dict": model.net.state_dict()}, path)
        image = photo_like(64, 48, seed=3)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        settings = EncodeSettings(model=str(path), quality=model.card.get("quality"), effort=DEFAULT_EFFORT,
                                  time_limit=0)
        outcome = encode_bytes(buffer.getvalue(), "photo.png", settings)
        assert outcome.row["iterations"] > 0
        loaded = models.load_model(str(path), model.card.get("quality"))
        decoded = codec.decode_latents(outcome.data, loaded)
        assert decoded.image().size == image.size
        assert "lmbda" not in loaded.card or arch.endswith("-vbr")
        assert lambda_for(loaded, outcome.row["base_bpp"]) > 0

    def test_refinement_lowers_the_true_loss(self, arch):
        if not self.REFINES_HERE:
            pytest.skip("refined in tests/learn/test_refine.py")
        from lrcodec.learn.refine import refine_image

        model = tiny(arch)
        result = refine_image(photo_like(64, 64, seed=2), model, method="ssl", iterations=20, lr=0.02, lmbda=0.05,
                              eval_every=5)
        losses = [h.loss for h in result.history]
        assert min(losses[1:]) < losses[0]
        assert not result.kept_base
        assert torch.equal(codec.decode_latents(result.encoded.data, model).latents.y_hat,
                           result.encoded.latents.y_hat)

    def test_golden_file_decodes_to_its_digests(self, golden, tmp_path):
        """With the torch model, and for an architecture that has one, with its runtime export
        (``lrcodec.runtime``, no torch: exported here as a checkpoint is on first use)."""
        expected = FAMILY_GOLDEN[golden]
        data = (GOLDEN / golden).read_bytes()
        assert len(data) == expected["bytes"]
        model = tiny(expected["arch"])
        decoders = [model]
        if model.family.portable:
            stem = tmp_path / "tiny"
            N, M, seed = TINY[model.arch]
            shutil.copy(FIXTURES / f"tiny-{model.arch}-N{N}-M{M}-{seed}.safetensors", stem.with_suffix(".safetensors"))
            decoders.append(runtime.load_runtime(export_runtime(model, stem)))
        for decoder in decoders:
            decoded = codec.decode_latents(data, decoder)
            assert symbol_digest(decoded.latents) == expected["symbols_sha256"]
            assert latent_digest(decoded.latents) == expected["latents_sha256"]
