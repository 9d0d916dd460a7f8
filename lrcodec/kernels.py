"""The float transforms evaluated so that one machine gives the same result at any thread count.

oneDNN splits the sums of its transposed convolutions and of GDN's 1x1 convolution differently
for different thread counts, so the same file decoded with 1 and 2 threads differed in a few
pixels (bench/threads.py). Its forward convolutions with a multiple of 16 output channels sum
in one order whatever the threads, and so does PyTorch's native 1x1 convolution (measured on
AVX-512, AVX2 and SSE4.1 kernels with 1-4 threads). A stride-s transposed convolution is the
same linear map as a convolution with s*s times the output channels followed by a pixel
shuffle (sub-pixel convolution), so g_s runs as that, every convolution's output channels are
padded to a multiple of 16, and GDN's 1x1 convolution runs natively. The results equal the
plain layers' up to float summation order (about 1e-6).

Small inputs are the exception: PyTorch hands a batch-1 convolution of at most 20,480 input
values with kernels up to 3x3 to its native im2col kernel, which splits its sums by thread
count, and oneDNN's direct kernel too summed a 4x8 input in another order at 1 and 2 threads
on an Intel Xeon (1e-6 apart, a pixel level in a 48x80 image), where a Kodak image's decode
was the same at 1, 2 and 3 threads. Convolutions of inputs that small run on one thread: the
same kernel and order at any thread count, at a cost of microseconds.

The other layers (the residual and attention blocks of Cheng et al.'s and ELIC's transforms)
run as they are on channels-last tensors: oneDNN's NHWC kernels summed ELIC's and cheng2020's
g_s in one order at 1 and 2 threads where the NCHW ones did not (3e-6 apart), and ELIC's g_s
ran in 0.8 s instead of 1.24 s (a Kodak image, 2 threads, Intel Xeon)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

SMALL_INPUT = 20480  # input values up to which a convolution runs on one thread (module docstring)


def stable_forward(transform, x):
    """``transform(x)`` for a Sequential of convolutions, transposed convolutions and GDN
    layers, computed in an order that does not depend on the thread count. (GDN switches
    oneDNN off process-wide while it runs: do not decode in several threads of one process.)"""
    for layer in transform:
        x = _forward(layer, x)
    return x


def _forward(layer, x):
    import torch
    from compressai.layers import GDN

    if isinstance(layer, torch.nn.ConvTranspose2d) and layer.groups == 1 and layer.dilation == (1, 1):
        return _subpixel(layer, x)
    if (isinstance(layer, torch.nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros"
            and isinstance(layer.padding, tuple)):
        return _conv(x, layer.weight, layer.bias, layer.stride, layer.padding)
    if isinstance(layer, GDN) and x.device.type == "cpu":
        with native_kernels():
            return layer(x)
    if x.device.type == "cpu" and x.dim() == 4:  # a block (residual, attention): channels last
        x = x.contiguous(memory_format=torch.channels_last)
        if x.numel() <= SMALL_INPUT:
            with one_thread():
                return layer(x)
    return layer(x)


def _conv(x, weight, bias, stride=1, padding=0):
    """conv2d with the output channels padded to a multiple of 16 on the CPU: for those oneDNN
    takes its blocked direct kernel, for other counts a GEMM whose split varies with threads."""
    import torch
    import torch.nn.functional as F

    channels = len(weight)
    if x.device.type == "cpu" and channels % 16:
        extra = 16 - channels % 16
        weight = torch.cat([weight, weight.new_zeros(extra, *weight.shape[1:])])
        bias = None if bias is None else torch.cat([bias, bias.new_zeros(extra)])
    with one_thread() if x.device.type == "cpu" and x.numel() <= SMALL_INPUT else nullcontext():
        return F.conv2d(x, weight, bias, stride, padding)[:, :channels]


def _subpixel(deconv, x):
    """A transposed convolution as convolution + pixel shuffle (the module docstring), for
    square strides whose output is exactly stride times the input; others run as they are.

    Output row Y = s*m + r takes input row m + j through kernel tap k = r + p - s*j; the
    convolution's output channel (o, ry, rx) holds phase (ry, rx) of output channel o."""
    import torch
    import torch.nn.functional as F

    w = deconv.weight  # (C_in, C_out, K, K)
    (s, s_w), (p, p_w), (op, op_w), K = deconv.stride, deconv.padding, deconv.output_padding, w.shape[2]
    j_lo, j_hi = -((K - 1 - p) // s), (p + s - 1) // s
    if (s, p, op, K) != (s_w, p_w, op_w, w.shape[3]) or K + op - 2 * p != s or j_lo > 0 or j_hi < 0:
        return deconv(x)
    j = torch.arange(j_lo, j_hi + 1, device=w.device)
    k = torch.arange(s, device=w.device)[:, None] + p - s * j[None, :]  # (phase, tap)
    inside = (k >= 0) & (k < K)
    k = k.clamp(0, K - 1)
    # (C_in, C_out, ry, rx, jy, jx), zero where the tap falls outside the kernel
    sub = w[:, :, k[:, None, :, None], k[None, :, None, :]] * (inside[:, None, :, None] & inside[None, :, None, :])
    weight = sub.permute(1, 2, 3, 0, 4, 5).reshape(-1, w.shape[0], len(j), len(j))
    bias = None if deconv.bias is None else deconv.bias.repeat_interleave(s * s)
    if -j_lo == j_hi:
        return F.pixel_shuffle(_conv(x, weight, bias, padding=j_hi), s)
    return F.pixel_shuffle(_conv(F.pad(x, (-j_lo, j_hi, -j_lo, j_hi)), weight, bias), s)


@contextmanager
def one_thread():
    """PyTorch's intra-op thread count set to 1 (process-wide, as ``native_kernels``)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def native_kernels():
    """PyTorch's native convolution kernels instead of oneDNN (format 1's encoder ran h_s on
    them; the probe uses them as one more kind of arithmetic)."""
    import torch

    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous
