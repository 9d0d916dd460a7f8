"""The registry: shipped safetensors + cards, CompressAI checkpoints, zoo names offline."""

from __future__ import annotations

import pytest
import torch
from conftest import photo_like

from lrcodec import codec, models
from lrcodec.errors import LrcodecError
from lrcodec.models import _compressai_keys


def test_shipped_model_loads_by_name_and_quality(models_dir, tiny_model):
    loaded = models.load_model("tiny")
    assert loaded.arch == "mean-scale" and loaded.card["lmbda"] == 0.01
    assert models.load_model(quality=1).model_id == loaded.model_id
    assert loaded.card["model_id"] == loaded.model_id.hex()
    # fp16 storage changes the weights slightly, so the identity changes with them.
    data = codec.encode_image(photo_like(48, 48), loaded).data
    assert codec.decode_image(data).size == (48, 48)  # found by id among shipped models
    with pytest.raises(LrcodecError, match="quality must be"):
        models.load_model(quality=5)
    with pytest.raises(LrcodecError, match="unknown model"):
        models.load_model("nonexistent")


@pytest.mark.parametrize("wrap", [None, "state_dict"])
def test_compressai_checkpoint_loads_without_pickle(tmp_path, tiny_scale_model, wrap):
    from lrcodec.families.reference import compressai_network

    net = compressai_network("scale", tiny_scale_model.net.state_dict())
    net.update(force=True)  # a CompressAI checkpoint carries its coder tables too
    state = net.state_dict()
    path = tmp_path / "ckpt.pth.tar"
    torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    loaded = models.load_model(str(path))
    assert loaded.arch == "scale" and loaded.model_id == tiny_scale_model.model_id
    image = photo_like(64, 64)
    assert codec.encode_image(image, loaded).data == codec.encode_image(image, tiny_scale_model).data


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(LrcodecError, match="cannot load checkpoint"):
        models.load_model(str(path))


def test_zoo_names_load_from_the_torch_hub_cache(tmp_path, monkeypatch, tiny_model):
    """The real path, without network: a missing file is one line that says what to download
    and where; a file placed there (a bare state dict, as CompressAI's, under DataParallel's
    names) loads, with weights_only."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LrcodecError, match=r"not in torch's hub cache: download https://\S+mbt2018-mean-3-\S+ to "):
        models.load_model("mbt2018-mean", quality=3)
    with pytest.raises(LrcodecError, match="1-8"):
        models.load_model("mbt2018-mean", quality=9)
    with pytest.raises(LrcodecError, match="1-6"):
        models.load_model("cheng2020-anchor", quality=7)
    path, _ = models.zoo_weights_path("mbt2018-mean", 3)
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in tiny_model.net.state_dict().items()}, path)
    loaded = models.load_model("mbt2018-mean", quality=3)
    assert (loaded.name, loaded.arch, loaded.model_id) == ("mbt2018-mean-q3", "mean-scale", tiny_model.model_id)
    assert loaded.card["lmbda"] == 0.0067  # the lambda CompressAI trained quality 3 for


def test_widened_model_codes_like_the_original(tiny_model, tiny_scale_model):
    """Growing M keeps the decoded image and (almost) the file size: the new channels start
    unused, so training a widened high-rate model begins where the narrow one ended."""
    wide = models._finish(models.widen_latents(tiny_model.net, "mean-scale", 40), "wide", "mean-scale", {})
    assert models.infer_architecture(models.weights_of(wide.net)) == ("mean-scale", 16, 40)
    image = photo_like(96, 64, seed=4)
    narrow_file = codec.encode_image(image, tiny_model).data
    wide_file = codec.encode_image(image, wide).data
    a = torch.tensor(list(codec.decode_image(narrow_file, tiny_model).getdata()))
    b = torch.tensor(list(codec.decode_image(wide_file, wide).getdata()))
    assert (a - b).abs().max() <= 1 and (a != b).float().mean() < 0.01  # float summation order
    assert len(wide_file) <= len(narrow_file) * 1.02 + 8
    with pytest.raises(LrcodecError, match="narrow"):
        models.widen_latents(wide.net, "mean-scale", 24)
    with pytest.raises(LrcodecError, match="mean-scale"):
        models.widen_latents(tiny_scale_model.net, "scale", 40)


def test_old_checkpoint_keys_are_renamed_as_compressais_loader_does():
    from compressai.zoo.pretrained import load_pretrained

    t = torch.zeros(1)
    state = {"module.g_a.0.conv1.weight": t, "module.g_a.0.downsample.weight": t, "g_a.2.downsample.bias": t,
             "entropy_bottleneck._biases.0": t, "entropy_bottleneck._matrices.3": t,
             "entropy_bottleneck._factors.2": t, "module.entropy_bottleneck._biases.1": t,
             "entropy_bottleneck._matrices.12": t, "entropy_bottleneck.quantiles": t,
             "latent_codec.hyper.entropy_bottleneck._biases.0": t, "module.h_a.downsample.downsample.w": t,
             "module.module.x": t, "epoch": 3, "names": ["a"]}
    renamed = _compressai_keys(state)
    expected = load_pretrained({k: v for k, v in state.items() if hasattr(v, "shape")})
    assert list(renamed) == list(expected)
    assert all(renamed[k] is expected[k] for k in expected)
    assert "entropy_bottleneck._bias0" in renamed and "g_a.0.skip.weight" in renamed
