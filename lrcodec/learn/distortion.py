"""What refinement weighs against the rate: the distortion a file is tuned for (``--tune``)
and where in the image it matters (``--roi``), with the same decoder and bitstream.

* ``psnr``: MSE, the loss the models were trained for.
* ``ms-ssim``: 1 - MS-SSIM (``metrics.ms_ssim``, the definition ``eval`` reports), with lambda
  mapped per image so that a quality level keeps about its rate: at the plain encode, the
  trade-off's slope is carried over from MSE by the ratio of the two distortions
  (lambda' = lambda * MSE_0 / (1 - MS-SSIM_0); both fall by about the same factor per bit).

A region-of-interest mask weighs each pixel's error: a mask value v (0-255) gives the weight
1 + ROI_GAIN * v / 255, normalised to a mean of 1 over the image, so that white counts
``1 + ROI_GAIN`` times black and the file keeps about its size. Under ``ms-ssim`` the weights
average each scale's SSIM map instead of the squared errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..metrics import ms_ssim, rd_loss

ROI_GAIN = 9.0  # a white mask pixel's error weighs ten times a black one's


def roi_weights(mask) -> torch.Tensor:
    """(1, 1, H, W) float32 weights of mean 1 from a greyscale mask (uint8 array, H x W)."""
    w = 1 + ROI_GAIN * torch.tensor(mask, dtype=torch.float32)[None, None] / 255
    return w / w.mean()


@dataclass
class Distortion:
    """One batch's distortion: the tuning, the per-pixel weights (None: uniform) and each
    image's lambda, mapped for the tuning by ``calibrate`` at the plain encode."""

    tune: str = "psnr"
    weights: torch.Tensor | None = None  # (1 or B, 1, H, W), mean 1
    lmbdas: torch.Tensor | None = None  # (B,) the rd_loss lambda per image (float64, on the CPU)
    device: torch.device = torch.device("cpu")  # where the loop runs
    _loop_lmbdas: torch.Tensor | None = None  # the same as the loop's float32, on its device: made once

    def to(self, device) -> "Distortion":
        self.weights = None if self.weights is None else self.weights.to(device)
        self.device = torch.device(device)
        return self

    def _weights(self, index: int | slice, rows: tuple, cols: tuple) -> torch.Tensor | None:
        if self.weights is None:
            return None
        w = self.weights if self.weights.shape[0] == 1 else self.weights[index]
        return w[:, :, rows[0] : rows[1], cols[0] : cols[1]]

    def relaxed(self, x_hat: torch.Tensor, x: torch.Tensor, rows: tuple, cols: tuple, pixels: int,
                own: tuple | None = None) -> torch.Tensor:
        """The R-D loss's distortion term of a tile's own pixels (float in [0, 1], (B, 3, h, w)
        at ``rows``/``cols`` of an image of ``pixels`` pixels), summed over the batch: the
        tiles' terms add up to the image's (exactly for MSE; for MS-SSIM each tile's MS-SSIM
        over its ``own`` rows and columns, with the pixels around them as its windows'
        context, weighted by its share of the image)."""
        w = self._weights(slice(None), rows, cols)
        if self.tune == "psnr":
            error = (x_hat - x).square()
            d = (error if w is None else error * w).sum((1, 2, 3)) / (3 * pixels)
        else:
            if own is not None and own != (rows, cols):
                inside = torch.zeros((1, 1, rows[1] - rows[0], cols[1] - cols[0]), device=x.device)
                inside[..., own[0][0] - rows[0] : own[0][1] - rows[0], own[1][0] - cols[0] : own[1][1] - cols[0]] = 1
                w = inside if w is None else w * inside
            share = x.shape[2] * x.shape[3] if w is None else w.flatten(1).sum(1)
            d = (1 - ms_ssim(x_hat, x, weights=w)) * share / pixels
        return rd_loss(self._loop_lmbdas.to(d.dtype), d, 0.0).sum()

    def measured(self, decoded: torch.Tensor, original: torch.Tensor, index: int = 0) -> tuple[float, float]:
        """(distortion, MSE) of a decoded image (uint8, (1, 3, H, W)) against the original's: the
        file's own, in the metric's definition (MS-SSIM in float32 on the whole image)."""
        H, W = original.shape[2:]
        mse = squared_error(decoded, original) / (original.numel() * 255**2)
        w = self._weights(slice(index, index + 1), (0, H), (0, W))
        if self.tune == "psnr":
            if w is None:
                return mse, mse
            error = sum(((decoded[..., r : r + 256, :].float() - original[..., r : r + 256, :].float()) / 255).square()
                        .mul(w[..., r : r + 256, :].cpu()).sum() for r in range(0, H, 256))
            return float(error) / original.numel(), mse
        a, b = decoded.float() / 255, original.cpu().float() / 255
        return 1 - float(ms_ssim(a, b, weights=None if w is None else w.cpu())[0]), mse

    def calibrate(self, lmbdas: list[float], plain: list[tuple[float, float]]) -> None:
        """Each image's lambda for this distortion from the model's (MSE) lambda and its plain
        encode's (distortion, MSE) (module docstring)."""
        if self.tune != "psnr":  # a (nearly) perfect plain encode has no slope to carry over: keep lambda
            lmbdas = [lmbda * mse / d if min(d, mse) > 1e-10 else lmbda for lmbda, (d, mse) in zip(lmbdas, plain)]
        self.lmbdas = torch.tensor(lmbdas, dtype=torch.float64)
        self._loop_lmbdas = self.lmbdas.to(self.device, torch.float32)

    def loss(self, index: int, distortion: float, bpp: float) -> float:
        return rd_loss(float(self.lmbdas[index]), distortion, bpp)


def squared_error(a: torch.Tensor, b: torch.Tensor, rows: int = 256) -> int:
    """The exact sum of squared differences of two uint8 images, a band of rows at a time (a
    12 MP image in float would cost 150 MB a copy)."""
    b = b.cpu()
    return sum(int((a[..., r : r + rows, :].int() - b[..., r : r + rows, :].int()).square().sum())
               for r in range(0, a.shape[-2], rows))
