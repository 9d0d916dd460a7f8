"""Rate-only context training on cached latents (``lrcodec.learn.train_context``)."""

from __future__ import annotations

import torch

from conftest import photo_like
from lrcodec import codec


def test_rate_only_training_writes_a_loadable_context_model(tiny_model, tmp_path):
    """train_context caches the latents, trains the slice networks and assembles a
    channel-context model on the base model's weights (no ../shared needed)."""
    from lrcodec.models import load_model, save_model
    from lrcodec.learn.train_context import ContextConfig, train_context

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        photo_like(128, 96, seed=20 + i).save(data / f"im{i}.png")
    save_model(tiny_model.net, tmp_path / "base.safetensors", {"arch": "mean-scale", "lmbda": 0.05})
    cfg = ContextConfig(model=str(tmp_path / "base.safetensors"), data=str(data), out=str(tmp_path / "out"),
                        slices=3, hidden=(8, 8), steps=4, batch_size=2, crop=4, val_images=1, eval_every=2)
    train_context(cfg, log=lambda _: None)
    assert [h["step"] for h in cfg.history] == [0, 2, 4]
    model = load_model(str(tmp_path / "out" / "base.safetensors"))
    assert model.arch == "channel-context" and model.card["training"]["base"] == "base"
    assert model.net.context.shape.slices == 3
    image = photo_like(64, 48, seed=9)
    result = codec.encode_image(image, model)
    assert torch.equal(codec.decode_latents(result.data, model).latents.y_symbols, result.latents.y_symbols)
