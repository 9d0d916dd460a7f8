"""CompressAI's variable-rate models (``lrcodec.families.vbr``): one network at every rate
level, files that name their level, CompressAI's own reconstruction of the same weights, the
zoo names, and every family's checks (``family_checks.FamilyChecks``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import photo_like
from lrcodec import codec, models
from lrcodec.errors import LrcodecError
from lrcodec.families.reference import compressai_network
from lrcodec.families.vbr import exact_mlp
from family_checks import FamilyChecks, tiny

VBR = ["scale-vbr", "mean-scale-vbr", "joint-autoregressive-vbr"]


class TestVariableRate(FamilyChecks):
    ARCHS = tuple(VBR)


@pytest.mark.parametrize("arch", VBR)
def test_one_network_codes_every_level_and_a_file_names_its_level(arch):
    model = tiny(arch)
    image = photo_like(144, 80, seed=11)
    files, ids = [], set()
    for level in range(8):
        files.append(codec.encode_image(image, model.set_level(level)).data)
        ids.add(model.model_id)
    assert len(ids) == 8  # the level is part of the model id
    sizes = [len(f) for f in files]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 3  # finer steps, more bits
    for level, data in enumerate(files):
        start = 0 if level else 7
        model.set_level(start)  # the decoder finds the level from the file and leaves the model as it was
        decoded = codec.decode_latents(data, model)
        assert model.card["level"] == start and model.name.endswith(f"-q{start + 1}")
        assert decoded.image().size == image.size
        at_level = model.at_level(level)
        assert at_level.name.endswith(f"-q{level + 1}") and model.card["level"] == start
        assert torch.equal(decoded.latents.y_hat, codec.decode_latents(data, at_level).latents.y_hat)
    other = tiny("mean-scale")
    with pytest.raises(LrcodecError, match="file was made with model"):
        codec.decode_latents(files[3], other)


def test_a_level_outside_the_network_is_one_clear_error():
    model = tiny("mean-scale-vbr")
    with pytest.raises(LrcodecError, match="quality must be 1-8, got 9"):
        model.set_level(8)
    with pytest.raises(LrcodecError, match="one rate"):
        tiny("mean-scale").set_level(1)


@pytest.mark.parametrize("arch", VBR)
@pytest.mark.parametrize("level", [2, 7])
def test_decodes_to_compressais_own_reconstruction_of_the_same_weights(arch, level):
    """CompressAI's compress/decompress (stage 2, rate level s) on its network holding the same
    weights gives the image lrcodec decodes, up to the few symbols fixed point and the sigma table change."""
    model = tiny(arch).set_level(level)
    image = photo_like(144, 80, seed=11)
    ours = codec.decode_latents(codec.encode_image(image, model).data, model).pixels
    net = compressai_network(arch, model.net.state_dict())
    if arch == "joint-autoregressive-vbr":
        net.update(force=True)
    else:
        net.update(force=True, scale=net.Gain[level].abs())
    x, _ = codec.prepare_image(image)
    with torch.no_grad():
        out = net.compress(x, stage=2, s=level)
        theirs = codec.to_pixels(net.decompress(out["strings"], out["shape"], stage=2, s=level)["x_hat"])
    diff = (ours.int() - theirs[:, :, :80, :144].int()).abs()
    assert diff.max() <= 3 and diff.float().mean() < 0.75


def test_the_steps_and_offsets_are_the_networks_mlps():
    """The exact float64 evaluation of gayn2zqstep and QuantABCD is CompressAI's float32 one,
    to float32 precision."""
    net = tiny("mean-scale-vbr").net
    x = torch.tensor([[1 / 0.3], [1.0], [10.0]])
    assert np.allclose(exact_mlp(net.gayn2zqstep, x.double().numpy()), net.gayn2zqstep(x).numpy(), rtol=1e-5)
    x = torch.tensor([[0.11, 0.5], [3.0, 0.1], [40.0, 1.0]])
    assert np.allclose(exact_mlp(net.QuantABCD, x.double().numpy()), net.QuantABCD(x).numpy(), rtol=1e-5, atol=1e-6)


def test_vbr_zoo_names_load_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """One file for all eight qualities (compressai.zoo.image_vbr); the quality is the level."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LrcodecError, match=r"download https://\S+mbt2018-mean-mse-vbr-\S+ to "):
        models.load_model("mbt2018-mean-vbr", quality=5)
    tiny_model = tiny("mean-scale-vbr")
    path, _ = models.zoo_weights_path("mbt2018-mean-vbr", 5)
    path.parent.mkdir(parents=True)
    torch.save({**tiny_model.net.state_dict(), "QuantOffset": torch.zeros(8)}, path)  # CompressAI drops it too
    loaded = models.load_model("mbt2018-mean-vbr", quality=5)
    assert (loaded.name, loaded.arch, loaded.card["level"]) == ("mbt2018-mean-vbr-q5", "mean-scale-vbr", 4)
    assert loaded.card["lmbda"] == pytest.approx(0.025)
    assert loaded.model_id == tiny_model.set_level(4).model_id
    with pytest.raises(LrcodecError, match="1-8"):
        models.load_model("mbt2018-vbr", quality=9)
