"""Training plumbing on tiny generated images: the loss falls, resume is exact, output loads."""

from __future__ import annotations

import pytest
import torch
from conftest import photo_like

from lrcodec import codec, models
from lrcodec.errors import LrcodecError
from lrcodec.learn.train import TrainConfig, train


def _data(tmp_path, n=5):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(n):
        photo_like(80, 72, seed=i).save(folder / f"{i}.png")
    return folder


def _config(tmp_path, data, **kw):
    base = dict(data=str(data), out=str(tmp_path / "models" / "m"), N=8, M=12, steps=30,
                batch_size=2, crop=64, lr=5e-3, val_images=1, checkpoint_every=10,
                checkpoint_dir=str(tmp_path / "runs"), surrogate="noise", lmbda=0.02, bf16=False)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_and_model_round_trips(tmp_path):
    data = _data(tmp_path)
    path = train(_config(tmp_path, data, steps=60, checkpoint_every=20))
    history = torch.load(tmp_path / "runs" / "m" / "checkpoint.pt", weights_only=True)["config"]["history"]
    first, last = history[0], history[-1]
    assert path.exists() and last["step"] == 60
    loaded = models.load_model(str(path))
    assert loaded.card["training"]["steps"] == 60 and loaded.card["lmbda"] == 0.02
    image = photo_like(70, 50, seed=9)
    assert codec.decode_image(codec.encode_image(image, loaded).data, loaded).size == (70, 50)
    assert [h["step"] for h in history] == [20, 40, 60]
    assert last["loss"] < first["loss"]  # held-out loss with hard rounding


def test_resume_continues_exactly(tmp_path):
    data = _data(tmp_path)
    straight = _config(tmp_path / "a", data, steps=20)
    train(straight)
    pieces = _config(tmp_path / "b", data, steps=20)
    train(pieces, stop_at=7)
    ckpt = tmp_path / "b" / "runs" / "m" / "checkpoint.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 7
    train(pieces, resume=str(ckpt))
    a = torch.load(tmp_path / "a" / "runs" / "m" / "checkpoint.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert b["step"] == 20
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_every_surrogate_trains(tmp_path):
    data = _data(tmp_path, n=3)
    for surrogate in ("ste", "mixed", "uq", "soft-round", "sua"):
        path = train(_config(tmp_path / surrogate, data, steps=3, surrogate=surrogate))
        model = models.load_model(str(path))
        assert all(torch.isfinite(v).all() for v in model.net.state_dict().values())
        if surrogate == "soft-round":  # the card keeps alpha for soft-mean reconstruction
            assert model.card["training"]["alpha_max"] == 16.0
            assert codec.soft_mean_alpha(model, "soft-mean") == 16


def test_init_takes_the_init_models_shape_and_widens(tmp_path, tiny_model):
    data = _data(tmp_path, n=3)
    models.save_model(tiny_model.net, tmp_path / "init", {"arch": "mean-scale", "lmbda": 0.01})
    init = str(tmp_path / "init.safetensors")
    same = models.load_model(str(train(_config(tmp_path / "a", data, steps=2, N=None, M=None, init=init))))
    assert (same.card["N"], same.card["M"]) == (16, 24)
    wide = models.load_model(str(train(_config(tmp_path / "b", data, steps=2, N=None, M=32, init=init))))
    assert wide.card["M"] == 32 and wide.card["training"]["init"] == init
    assert models.infer_architecture(models.weights_of(wide.net)) == ("mean-scale", 16, 32)
    with pytest.raises(LrcodecError, match="--N must match"):
        train(_config(tmp_path / "c", data, steps=2, N=8, M=None, init=init))
    with pytest.raises(LrcodecError, match="--arch scale does not match"):
        train(_config(tmp_path / "d", data, steps=2, N=None, M=None, arch="scale", init=init))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path):
    """Checkpoints load with weights_only=True: a pickled object is refused, not executed."""
    import pickle

    from lrcodec.errors import LrcodecError

    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    ckpt = tmp_path / "evil.pt"
    torch.save({"config": Payload()}, ckpt, pickle_module=pickle)
    with pytest.raises(LrcodecError, match="cannot resume"):
        train(_config(tmp_path / "c", _data(tmp_path), steps=2), resume=str(ckpt))
