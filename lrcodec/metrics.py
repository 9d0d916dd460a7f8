"""PSNR, MS-SSIM, bits per pixel and the R-D loss: the one definition of each that training,
refinement, evaluation and the benchmarks share."""

from __future__ import annotations

import math


# What the float synthesis may change between machines, kernels, thread counts and runtimes
# (docs/portability.md, "What a file needs to decode elsewhere"): a pixel by at most PIXEL_LEVELS levels, and
# fewer than PIXEL_FRACTION of them at all. Files' symbols and y_hat are exact everywhere.
PIXEL_LEVELS, PIXEL_FRACTION = 1, 1e-3

PSNR_MAX = 120.0  # dB: a perfect match, finite so that JSON results and means stay numbers


def psnr_of(mse: float) -> float:
    """PSNR in dB of an MSE on [0, 1] samples (``PSNR_MAX`` for a perfect match)."""
    return 10 * math.log10(1 / max(mse, 10 ** (-PSNR_MAX / 10)))


def bits_per_pixel(bits, pixels: int):
    """Bits (a number or a tensor) over the image's real, unpadded pixels."""
    return bits / pixels


def rd_loss(lmbda: float, mse, bpp):
    """lambda * 255^2 * MSE + bpp, MSE on [0, 1] samples: CompressAI's trade-off, which its
    zoo's lambdas are given in (numbers or tensors)."""
    return lmbda * 255**2 * mse + bpp


# MS-SSIM as Wang et al. (2003) define it and pytorch-msssim computes it: an 11-tap Gaussian
# window of sigma 1.5 (valid convolution), five scales with these weights, the contrast-structure
# terms of the first four and the whole SSIM of the last, each clamped at 0.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WINDOW, _SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03


def ms_ssim_levels(height: int, width: int) -> int:
    """The scales an image of this size has room for (5 from 161 pixels a side; at least 1)."""
    side, levels = min(height, width), 1
    while levels < len(MS_SSIM_WEIGHTS) and side > (_WINDOW - 1) * 2**levels:
        levels += 1
    return levels


def ms_ssim(x, y, data_range: float = 1.0, weights=None, levels: int | None = None):
    """MS-SSIM per image ((B,) tensor) of two (B, C, H, W) float tensors: the one definition that
    evaluation reports and refinement's ``--tune ms-ssim`` minimizes (1 - it), differentiable.
    ``weights`` ((B or 1, 1, H, W), e.g. a ``--roi`` mask): each scale's map is averaged with
    them (pooled as the image is) instead of uniformly. ``levels`` (default: as many as fit,
    ``ms_ssim_levels``) uses the first scales' weights, renormalised. A side shorter than the
    window is not filtered along (as pytorch-msssim does)."""
    import torch
    import torch.nn.functional as F

    levels = levels or ms_ssim_levels(*x.shape[-2:])
    scale_weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=x.dtype, device=x.device)
    if levels < len(MS_SSIM_WEIGHTS):
        scale_weights = scale_weights / scale_weights.sum()
    taps = torch.arange(_WINDOW, dtype=torch.float32) - _WINDOW // 2  # in float32, as pytorch-msssim's
    g = torch.exp(-(taps**2) / (2 * _SIGMA**2))
    g = (g / g.sum()).to(x.device, x.dtype)
    channels = x.shape[1]
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2

    def blur(v):
        for dim in (2, 3):
            if v.shape[dim] >= _WINDOW:
                shape = (channels, 1, _WINDOW, 1) if dim == 2 else (channels, 1, 1, _WINDOW)
                v = F.conv2d(v, g.reshape(shape[2:]).expand(shape), groups=channels)
        return v

    def mean(values, w):
        """Per image and channel: (B, C)."""
        if w is None:
            return values.flatten(2).mean(2)
        dh, dw = (w.shape[2] - values.shape[2]) // 2, (w.shape[3] - values.shape[3]) // 2
        w = w[:, :, dh : dh + values.shape[2], dw : dw + values.shape[3]]
        return (values * w).flatten(2).sum(2) / w.flatten(2).sum(2).clamp_min(1e-12)

    terms = []
    for level in range(levels):
        mu_x, mu_y = blur(x), blur(y)
        var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        cs = (2 * cov + c2) / (var_x + var_y + c2)
        if level < levels - 1:
            terms.append(torch.relu(mean(cs, weights)))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
            if weights is not None:
                weights = F.avg_pool2d(weights, 2, padding=padding)
        else:
            ssim = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
            terms.append(torch.relu(mean(ssim, weights)))
    return torch.prod(torch.stack(terms) ** scale_weights.reshape(-1, 1, 1), 0).mean(1)
