"""SGA+ refinement: sampler properties, lower true loss, never worse, deterministic, decodable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo_like
from PIL import Image

from lrcodec import codec
from lrcodec.learn.refine import Sampler, class_probabilities, refine_image, three_class_logits, two_class_logits

R = torch.linspace(0.001, 0.999, 999)


@pytest.mark.parametrize("method", ["ssl", "linear", "cosine", "atanh"])
def test_two_class_probabilities_are_valid(method):
    p = class_probabilities(two_class_logits(R, method), 0.7)
    assert torch.allclose(p.sum(-1), torch.ones_like(R))
    assert (p >= 0).all()
    # Nearer candidate is the likelier one.
    assert (p[R < 0.49, 0] > 0.5).all() and (p[R > 0.51, 1] > 0.5).all()


def test_ssl_with_a_one_is_linear():
    assert torch.allclose(class_probabilities(two_class_logits(R, "ssl", a=1.0), 1.0), torch.stack([1 - R, R], -1), atol=1e-5)


def test_low_temperature_approaches_rounding():
    v = torch.linspace(-3.4, 3.4, 500)
    v = v[(v - v.round()).abs() < 0.45]
    gen = torch.Generator().manual_seed(0)
    for method in ("ssl", "linear", "cosine"):
        for three in (False, True):
            sampler = Sampler(method, three, a=2.3 if not three else 1.4, decay=1e-2)
            out = sampler(v, 2000, sampler.noise(v.shape, gen))  # T = e^-20
            assert torch.allclose(out, v.round(), atol=1e-3), (method, three)


@pytest.mark.parametrize("method", ["ssl", "linear", "cosine"])
def test_three_class_probabilities_are_valid(method):
    c = torch.linspace(-0.5, 0.5, 101)
    p = class_probabilities(three_class_logits(c, method), 0.5)
    assert torch.allclose(p.sum(-1), torch.ones_like(c)) and (p >= 0).all()
    assert (p[:, 1] >= p[:, 0] - 1e-6).all() and (p[:, 1] >= p[:, 2] - 1e-6).all()


def test_refinement_lowers_the_real_loss_and_decodes(tiny_model):
    from lrcodec.learn.refine import file_loss

    image = photo_like(64, 64, seed=2)
    result = refine_image(image, tiny_model, method="ssl", iterations=30, lr=0.02, lmbda=0.05, eval_every=5)
    losses = [h[1] for h in result.history]
    assert min(losses[1:]) < losses[0]
    # On this image refinement wins: the refined file is written, and by real bytes and pixels
    # it has a lower R-D loss than the plain encode.
    assert not result.kept_base and result.encoded.data != result.base.data
    x = codec.image_to_tensor(image)
    assert file_loss(result.encoded, x, 0.05, tiny_model)[0] < file_loss(result.base, x, 0.05, tiny_model)[0]
    decoded = codec.decode_latents(result.encoded.data, tiny_model)
    assert decoded.header.refined and decoded.header.describe()["method"] == "ssl"
    assert decoded.image().size == (64, 64)


@pytest.mark.parametrize("method", ["ste", "noise", "atanh"])
def test_never_worse_than_plain_encode(tiny_model, method):
    from lrcodec.learn.refine import file_loss

    image = photo_like(64, 48, seed=5)
    # A huge learning rate makes the optimisation diverge; the guarantee must hold anyway.
    result = refine_image(image, tiny_model, method=method, iterations=5, lr=5.0, lmbda=0.05, eval_every=1)
    x = codec.image_to_tensor(image)
    assert file_loss(result.encoded, x, 0.05, tiny_model)[0] <= file_loss(result.base, x, 0.05, tiny_model)[0]


def test_same_seed_same_file(tiny_model):
    image = photo_like(64, 64, seed=3)
    a = refine_image(image, tiny_model, iterations=10, lmbda=0.05, seed=4, uq=True)
    b = refine_image(image, tiny_model, iterations=10, lmbda=0.05, seed=4, uq=True)
    assert a.encoded.data == b.encoded.data
    assert codec.decode_latents(a.encoded.data, tiny_model).header.uq


def test_patience_stops_when_the_true_loss_stops_improving(tiny_model):
    image = photo_like(64, 48, seed=6)
    # lr 0: the latents never move, so no evaluation can beat iteration 0.
    result = refine_image(image, tiny_model, iterations=200, lr=0.0, lmbda=0.05, eval_every=5, patience=2)
    assert result.iterations == 10
    assert [h[0] for h in result.history] == [0, 5, 10]
    assert result.kept_base and result.encoded.data == result.base.data


def test_lr_drop_and_both_precisions_give_decodable_refined_files(tiny_model):
    image = photo_like(64, 48, seed=7)
    for precision in ("float32", "bfloat16"):
        result = refine_image(image, tiny_model, iterations=20, lr=0.02, lr_drop=0.5, decay=0.05,
                              lmbda=0.05, precision=precision)
        assert result.iterations == 20
        assert min(h[1] for h in result.history[1:]) < result.history[0][1], precision
        assert codec.decode_image(result.encoded.data, tiny_model).size == (64, 48)


@pytest.mark.parametrize("changes,message", [
    (dict(method="sga"), "unknown method"),
    (dict(method="atanh", three_class=True), "three-class"),
    (dict(precision="fp8"), "unknown precision"),
    (dict(lr_drop=0.0), "lr_drop"),
])
def test_bad_settings_are_refused(tiny_model, changes, message):
    from lrcodec.errors import LrcodecError

    with pytest.raises(LrcodecError, match=message):
        refine_image(photo_like(32, 32), tiny_model, iterations=1, lmbda=0.05, **changes)


def test_effort_presets_are_valid_and_grow():
    from lrcodec.settings import DEFAULT_EFFORT, EFFORTS, effort_settings

    assert EFFORTS[0] is None and effort_settings(0) is None and DEFAULT_EFFORT in EFFORTS
    budgets = [EFFORTS[e].iterations for e in sorted(EFFORTS) if e]
    assert budgets == sorted(budgets) and len(set(budgets)) == len(budgets)
    for e in EFFORTS:
        if e:
            EFFORTS[e].check()
    assert effort_settings(1, iterations=3).iterations == 3



def test_the_lambda_refined_for(tiny_model):
    """Given, else the card's, else that of the CompressAI zoo quality whose published Kodak
    rate is nearest the plain encode's (in log rate: 0.31 bpp is quality 3's 0.307)."""
    import copy

    from lrcodec.errors import LrcodecError
    from lrcodec.learn.refine import lambda_for

    assert "lmbda" not in tiny_model.card
    assert [lambda_for(tiny_model, bpp) for bpp in (0.001, 0.31, 0.37, 0.39, 9.0)] == [0.0018, 0.0067, 0.0067, 0.013, 0.18]
    assert lambda_for(tiny_model, 0.31, 0.02) == 0.02
    carded = copy.copy(tiny_model)
    carded.card = dict(tiny_model.card, lmbda=0.004)
    assert lambda_for(carded, 0.31) == 0.004 and lambda_for(carded, 0.31, 0.02) == 0.02
    with pytest.raises(LrcodecError, match="lambda must be positive"):
        lambda_for(carded, 0.31, -1.0)
    result = refine_image(photo_like(64, 48, seed=4), tiny_model, iterations=2, eval_every=1)
    assert result.lmbda == lambda_for(tiny_model, result.base.bpp)


def test_a_batch_refines_each_image_as_if_alone(tiny_model):
    from lrcodec.learn.refine import refine_images

    images = [photo_like(64, 48, seed=s) for s in (11, 12)]
    # STE draws nothing at random, so alone and in a batch the loops see the same numbers.
    options = dict(method="ste", iterations=20, lr=0.02, lmbda=0.05, eval_every=5, precision="float32")
    together = refine_images(images, tiny_model, **options)
    for image, batched in zip(images, together):
        alone = refine_image(image, tiny_model, **options)
        assert [h[0] for h in batched.history] == [h[0] for h in alone.history]
        for a, b in zip(alone.history, batched.history):
            assert b[1] == pytest.approx(a[1], rel=1e-4)
        assert codec.decode_image(batched.encoded.data, tiny_model).size == (64, 48)
    with pytest.raises(Exception, match="one size"):
        refine_images([images[0], photo_like(32, 48)], tiny_model, **options)


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_scale_model", "tiny_context_model"])
@pytest.mark.parametrize("method", ["ste", "ssl"])
def test_tiled_refinement_is_the_untiled_one(request, fixture, method):
    """Tiles of 4 y positions (64 pixels) with their halos give the untiled loop's gradients, so
    the same draws give the same true losses, up to float summation order."""
    from lrcodec.learn.refine import refine_halo
    from lrcodec.format.tiling import tiles

    model = request.getfixturevalue(fixture)
    image = photo_like(200, 120, seed=13)  # padded to 16 x 12 y positions: the last tile row is all padding
    assert len(list(tiles(12, 16, 4, refine_halo(model)))) == 12
    # STE's rounding is discontinuous: once float summation order moves a latent across a tie,
    # the two trajectories part (seen after 9 iterations), so it is compared over fewer.
    options = dict(method=method, iterations=12 if method == "ssl" else 6, lr=0.02, lmbda=0.05, eval_every=3,
                   precision="float32", seed=1)
    whole, tiled = refine_image(image, model, **options), refine_image(image, model, tile=4, **options)
    assert [h[0] for h in whole.history] == [h[0] for h in tiled.history]
    for a, b in zip(whole.history, tiled.history):
        assert b[1] == pytest.approx(a[1], rel=1e-6)  # a halo too small differs by about 3e-4
    assert whole.history[-1][1] < whole.history[0][1]
    assert codec.decode_image(tiled.encoded.data, model).size == (200, 120)


def test_refinement_tiles_are_checked(tiny_model):
    from lrcodec.errors import LrcodecError

    with pytest.raises(LrcodecError, match="multiple of 4"):
        refine_image(photo_like(32, 32), tiny_model, iterations=1, lmbda=0.05, tile=6)


def test_time_limit_plans_the_iterations_that_fit():
    from lrcodec.learn.refine import _plan, _rescheduled
    from lrcodec.settings import RefineSettings

    settings = RefineSettings(iterations=50, eval_every=10, decay=0.02)
    # 1 s an iteration, 5 s an evaluation (at 10, 20, ... and at the last iteration)
    assert _plan(settings, 1000, 1.0, 5.0) == 50
    assert _plan(settings, 22, 1.0, 5.0) == 12  # 12 iterations + evaluations at 10 and 12; 13 + 10 does not fit
    assert _plan(settings, 5.9, 1.0, 5.0) == 0
    shorter = _rescheduled(settings, 10)
    assert shorter.iterations == 10 and shorter.decay * 10 == pytest.approx(settings.decay * 50)


def test_a_budget_too_small_for_one_iteration_keeps_the_plain_file(tiny_model):
    image = photo_like(64, 48, seed=8)
    result = refine_image(image, tiny_model, iterations=20, lr=0.02, lmbda=0.05, time_limit=1e-9)
    assert result.iterations == 0 and result.kept_base and result.encoded.data == result.base.data
    assert [h[0] for h in result.history] == [0]


def test_a_batch_without_a_lambda_refines_each_image_for_its_own():
    """A model without a lambda (the shipped q3's weights, its card's lambda dropped): in one
    batch, each image is refined for the lambda its own plain encode implies (``lambda_for``),
    as it would be alone. A flat image (0.07 bpp) and mild noise (0.68 bpp) lie well inside
    the rate bands of zoo qualities 1 and 5, so float rounding cannot move them to another."""
    import copy

    from lrcodec.models import load_model
    from lrcodec.learn.refine import lambda_for, refine_images

    model = copy.copy(load_model(quality=3))
    model.card = {k: v for k, v in model.card.items() if k != "lmbda"}
    flat = Image.new("RGB", (128, 96), (120, 130, 140))
    noise = np.random.default_rng(3).normal(0, 32, (96, 128, 3))
    noisy = Image.fromarray(np.clip(128 + noise, 0, 255).astype(np.uint8))
    results = refine_images([flat, noisy], model, iterations=2, eval_every=1)
    lmbdas = [r.lmbda for r in results]
    assert lmbdas == [lambda_for(model, r.base.bpp) for r in results]
    assert lmbdas == [0.0018, 0.025]
    assert lmbdas == [refine_image(im, model, iterations=2, eval_every=1).lmbda for im in (flat, noisy)]


def test_the_loops_adam_is_torchs():
    """refine._Adam (which spares an encode torch._dynamo's import) takes torch.optim.Adam's steps,
    bit for bit, the lr cut included: both make the same elementwise calls (no reductions) on the
    same tensors, so the same kernels give the same bits on any CPU."""
    from lrcodec.learn.refine import _Adam

    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(3, 5, generator=gen).requires_grad_(True), torch.randn(7, generator=gen).requires_grad_(True)]
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    a, b = _Adam(ours, lr=0.02), torch.optim.Adam(theirs, lr=0.02)
    for step in range(30):
        if step == 20:
            a.lr = 0.002
            b.param_groups[0]["lr"] = 0.002
        for params in (ours, theirs):
            (params[0].sin().sum() * 3 + (params[1] ** 2).sum()).backward()
        a.step()
        b.step()
        b.zero_grad(set_to_none=True)
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs))


def test_a_slow_first_iteration_does_not_shorten_the_plan(tiny_model, monkeypatch):
    """The first iteration carries one-time costs (a fresh process's kernels): the plan for a
    time limit is made from the second's time, so a limit with room for all keeps all."""
    import time as time_module

    from lrcodec.learn import refine

    real_step, calls = refine._step, []

    def step(*args):
        calls.append(1)
        if len(calls) == 1:
            time_module.sleep(3.0)  # planned from the first iteration, at most 10 of 20 would fit
        return real_step(*args)

    monkeypatch.setattr(refine, "_step", step)
    result = refine_image(photo_like(64, 48, seed=8), tiny_model, iterations=20, lmbda=0.05, time_limit=30.0)
    assert result.iterations == 20


def test_ms_ssim_tuning_tiled_is_about_the_untiled():
    """Under --tune ms-ssim each tile adds the MS-SSIM of its own pixels, with the pixels around
    them as its windows' context: tiles of 4 y positions (64 pixels) refine about as the whole
    image does (the shipped q1 model: a tiny one's pixels are too far off to refine)."""
    from lrcodec.models import load_model

    model = load_model(quality=1)
    image = photo_like(200, 120, seed=13)
    options = dict(iterations=12, lr=0.02, eval_every=3, precision="float32", seed=1, tune="ms-ssim")
    whole, tiled = refine_image(image, model, **options), refine_image(image, model, tile=4, **options)
    # the plain encode's true loss, the whole image's MS-SSIM, from two runs of the float transforms
    assert tiled.history[0].loss == pytest.approx(whole.history[0].loss, rel=1e-6)
    assert tiled.history[-1].loss < tiled.history[0].loss
    assert tiled.history[-1].loss == pytest.approx(whole.history[-1].loss, rel=0.02)
    assert whole.tune == tiled.tune == "ms-ssim"
    assert codec.decode_image(tiled.encoded.data, model).size == (200, 120)
