"""Decoding files of format version 1 (lrcodec 0.1), whose probabilities came from float
networks: z tables from the float factorized prior, sigma from the float h_s. Such a file
decodes where the float results match the encoder's (the tables CRC says whether they do);
elsewhere it is refused with an error that names the format. New files use format 2."""

from __future__ import annotations

import numpy as np

from . import bitstream, entropy
from ..errors import LrcodecError
from .latents import QuantizedLatents, channel_index, dithers, latent_shapes


NOT_HERE = ("this file has lrcodec format version 1, whose probabilities came from floating-point networks, "
            "and this machine computes them differently; decode it where it was made, then re-encode it")


def _float_z_tables(entropy_bottleneck, lo: int, hi: int, offsets: np.ndarray) -> np.ndarray:
    """Format 1's z tables, (C, L, K): the float CDF's interval masses rounded to 2^-24."""
    import torch

    from .likelihoods import factorized_interval_likelihood, z_medians

    C = entropy_bottleneck.channels
    ks = torch.arange(lo, hi + 1, dtype=torch.float32)
    off = torch.as_tensor(offsets, dtype=torch.float32)
    with torch.no_grad():
        m = z_medians(entropy_bottleneck).float().reshape(C, 1, 1)
        centre = (m + off.reshape(1, -1, 1) + ks.reshape(1, 1, -1)).reshape(1, C, -1, 1)
        p = factorized_interval_likelihood(entropy_bottleneck, centre - 0.5, centre + 0.5)
    p = p.reshape(C, len(offsets), -1).double().numpy()
    return np.maximum(np.round(p * 2.0**24), 1.0) / 2.0**24


def _native_forward(layers, x):
    """``layers(x)`` on PyTorch's native (non-oneDNN) convolution kernels, which lrcodec 0.1's
    encoder ran h_s on, by calling those kernels directly: switching oneDNN off would change
    every other thread's arithmetic too."""
    import torch

    aten = torch.ops.aten
    for layer in layers:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            x = aten.slow_conv_transpose2d(x, layer.weight, layer.kernel_size, layer.bias, layer.stride, layer.padding,
                                           layer.output_padding, layer.dilation)
        elif isinstance(layer, torch.nn.Conv2d):
            x = aten._slow_conv2d_forward(x, layer.weight, layer.kernel_size, layer.bias, layer.stride, layer.padding)
        else:
            x = layer(x)
    return x


def decode_latents_v1(data: bytes, header: bitstream.Header, model):
    import copy

    import constriction
    import torch

    from .likelihoods import z_medians

    if model.arch not in ("mean-scale", "scale"):  # lrcodec 0.1 wrote only these
        raise LrcodecError(f"invalid lrcodec file (format 1 with a {model.arch} model)")
    z_payload, y_payload = bitstream.payloads(data, header)
    y_shape, z_shape = latent_shapes(model, header.width, header.height)
    u_y, u_z = dithers(y_shape, z_shape, header.uq, header.seed, header.soft_alpha)
    net = model.net if next(model.net.parameters()).dtype == torch.float32 else copy.deepcopy(model.net).float()
    tables = _float_z_tables(net.entropy_bottleneck, header.zmin, header.zmax, u_z.offsets)
    groups, channels, _ = u_z.groups(channel_index(z_shape))
    try:
        z_symbols = entropy.decode(z_payload, groups, tables.reshape(-1, tables.shape[2])[groups.keys],
                                   header.zmin, "z").reshape(z_shape)
    except LrcodecError:
        raise LrcodecError(NOT_HERE) from None
    medians = z_medians(net.entropy_bottleneck)
    with torch.no_grad():
        z_hat = torch.from_numpy(z_symbols).float() + medians + torch.from_numpy(u_z.values.astype(np.float32))
        sigma, mu = model.family.split(_native_forward(model.family.hyper(net).h_s, z_hat))
    table = model.exact.sigma_table
    sigma_index = np.clip(np.searchsorted(table, sigma.double().numpy().ravel()), 0, len(table) - 1)
    sigma_index = sigma_index.astype(np.int32).reshape(sigma.shape)
    if entropy.crc(sigma_index, tables) != header.tables_crc:
        raise LrcodecError(NOT_HERE)
    u = u_y.values
    family = constriction.stream.model.QuantizedGaussian(header.ymin, header.ymax)
    try:  # a payload of a length that is not whole 32-bit words is invalid too
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(y_payload, dtype="<u4").astype(np.uint32))
        y_flat = decoder.decode(family, -u.ravel(), table[sigma_index].ravel())
    except (AssertionError, ValueError, RuntimeError):
        raise LrcodecError("invalid lrcodec file (format 1: its y payload is not a valid range-coder stream)") from None
    y_symbols = np.asarray(y_flat, dtype=np.int32).reshape(y_shape)
    y_hat = torch.from_numpy(y_symbols).float() + mu + torch.from_numpy(u.astype(np.float32))
    return QuantizedLatents(torch.from_numpy(y_symbols), torch.from_numpy(z_symbols), y_hat, z_hat,
                            sigma_index, mu.double(), torch.from_numpy(u.astype(np.float32)), table)
