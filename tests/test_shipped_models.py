"""The models that ship in models/: they load, match their cards and code an image."""

from __future__ import annotations

import pytest
from conftest import photo_like

from lrcodec import codec, models

CARDS = models.shipped_models()


def test_the_shipped_set_spans_several_rates():
    assert len(CARDS) >= 4
    lambdas = [c["lmbda"] for c in CARDS]
    assert lambdas == sorted(lambdas) and len(set(lambdas)) == len(lambdas)


@pytest.mark.parametrize("card", CARDS, ids=[c["name"] for c in CARDS])
def test_shipped_model_matches_its_card_and_round_trips(card):
    model = models.load_model(card["name"])
    assert model.model_id.hex() == card["model_id"]
    assert (model.arch, card["N"], card["M"]) == (card["arch"], model.net.entropy_bottleneck.channels, model.net.g_s[0].in_channels)
    assert card["training"]["steps"] > 0
    image = photo_like(96, 64, seed=1)
    result = codec.encode_image(image, model)
    decoded = codec.decode_latents(result.data)  # found by id
    assert decoded.header.model_id == model.model_id
    assert decoded.image().size == (96, 64)
