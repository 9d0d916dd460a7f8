"""PSNR, bits per pixel and the R-D loss (lrcodec.metrics): the one definition of each."""

from __future__ import annotations

import math

import pytest
import torch

from lrcodec.metrics import PSNR_MAX, bits_per_pixel, psnr_of, rd_loss


def test_psnr_is_ten_log10_of_one_over_the_mse():
    """MSE on [0, 1] samples: 1 -> 0 dB, 0.01 -> 20 dB, one 8-bit level everywhere -> 48.13 dB."""
    assert psnr_of(1.0) == 0.0
    assert psnr_of(0.01) == pytest.approx(20.0, abs=1e-12)
    assert psnr_of((1 / 255) ** 2) == pytest.approx(20 * math.log10(255), abs=1e-12)
    for mse in (0.3, 1e-3, 2.5e-5, 1e-9):
        assert psnr_of(mse) == pytest.approx(-10 * math.log10(mse), rel=1e-12)
    assert psnr_of(4.0) < 0  # worse than the signal's range


def test_a_perfect_match_gives_a_finite_maximum():
    """PSNR_MAX, not inf, for zero MSE (JSON results and means stay numbers), and no value
    above it however small the MSE; the cap is continuous."""
    assert psnr_of(0.0) == pytest.approx(PSNR_MAX, abs=1e-9) and math.isfinite(psnr_of(0.0))
    assert psnr_of(1e-30) == psnr_of(0.0)
    assert psnr_of(10 ** (-PSNR_MAX / 10)) == pytest.approx(PSNR_MAX, abs=1e-9)
    assert psnr_of(10 ** (-(PSNR_MAX - 1) / 10)) == pytest.approx(PSNR_MAX - 1, abs=1e-9)


def test_psnr_decreases_with_the_mse():
    values = [psnr_of(m) for m in (0.0, 1e-10, 1e-6, 1e-3, 0.1, 1.0, 10.0)]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)


def test_bits_per_pixel_of_numbers_and_tensors():
    """Bits over the real pixels; a tensor stays a tensor and keeps its gradient."""
    assert bits_per_pixel(8 * 1000, 64 * 48) == pytest.approx(8000 / 3072)
    bits = torch.tensor(3072.0, requires_grad=True)
    bpp = bits_per_pixel(bits, 64 * 48)
    assert isinstance(bpp, torch.Tensor) and bpp.item() == 1.0
    bpp.backward()
    assert bits.grad.item() == pytest.approx(1 / 3072)


def test_rd_loss_is_compressai_trade_off():
    """lambda * 255**2 * MSE + bpp (the zoo's lambdas are on that scale): at lambda 0.0130 one
    8-bit level of MSE costs 0.013 bit per pixel."""
    assert rd_loss(0.0130, (1 / 255) ** 2, 0.5) == pytest.approx(0.513)
    assert rd_loss(0.0, 0.2, 0.75) == 0.75
    assert rd_loss(0.01, 0.0, 0.0) == 0.0
    mse = torch.tensor([0.001, 0.002], requires_grad=True)
    bpp = torch.tensor([0.3, 0.2], requires_grad=True)
    loss = rd_loss(0.05, mse, bpp)
    assert torch.allclose(loss, 0.05 * 255**2 * mse.detach() + bpp.detach())
    loss.sum().backward()
    assert torch.allclose(mse.grad, torch.full((2,), 0.05 * 255**2)) and torch.allclose(bpp.grad, torch.ones(2))


@pytest.mark.parametrize("size", [(161, 161), (512, 768), (203, 397)])
def test_ms_ssim_is_pytorch_msssims(size):
    """The one MS-SSIM (refinement's loss and eval's figure) is pytorch-msssim's: the same
    operations in float64, compared within 1e-12 (the convolutions may pick other kernels for
    our expanded window than for its repeated one); uniform weights change nothing."""
    from pytorch_msssim import ms_ssim as reference

    from lrcodec.metrics import ms_ssim

    gen = torch.Generator().manual_seed(sum(size))
    a = torch.rand((2, 3, *size), generator=gen, dtype=torch.float64) * 255
    b = (a + torch.randn(a.shape, generator=gen, dtype=torch.float64) * 20).clamp(0, 255)
    ours = ms_ssim(a, b, 255.0)
    assert ours.shape == (2,)
    assert torch.allclose(ours, reference(a, b, data_range=255.0, size_average=False), rtol=1e-12, atol=0)
    assert torch.allclose(ms_ssim(a, b, 255.0, weights=torch.full((1, 1, *size), 2.0, dtype=torch.float64)), ours)
    assert torch.allclose(ms_ssim(a / 255, b / 255), ours)


def test_ms_ssim_of_a_small_image_uses_the_scales_that_fit():
    from lrcodec.metrics import ms_ssim, ms_ssim_levels

    assert [ms_ssim_levels(s, 500) for s in (5, 21, 41, 81, 160, 161)] == [1, 2, 3, 4, 4, 5]
    a = torch.rand((1, 3, 48, 64), dtype=torch.float64)
    assert float(ms_ssim(a, a)[0]) == pytest.approx(1.0)
    noisy = (a + 0.2 * torch.rand(a.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)).clamp(0, 1)
    assert 0 < float(ms_ssim(a, noisy)[0]) < 0.99
