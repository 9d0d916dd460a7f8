"""The thread-count-independent transforms compute what the plain layers compute."""

from __future__ import annotations

import pytest
import torch

from lrcodec.kernels import _subpixel, stable_forward


@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, output_padding", [
    (8, 3, 5, 2, 2, 1),   # the hyperprior's g_s layers
    (8, 16, 5, 2, 2, 1),  # channels already a multiple of 16
    (3, 2, 7, 3, 3, 2),   # another stride
    (4, 3, 3, 2, 1, 1),   # taps not centred: padded on one side
])
def test_subpixel_convolution_is_the_transposed_convolution(c_in, c_out, kernel, stride, padding, output_padding):
    torch.manual_seed(0)
    deconv = torch.nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding).double()
    x = torch.randn(2, c_in, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(_subpixel(deconv, x), deconv(x), rtol=0, atol=1e-12)


def test_stable_transforms_equal_the_plain_ones_at_every_thread_count(tiny_model):
    net = tiny_model.net
    torch.manual_seed(1)
    y = torch.randn(1, 24, 6, 10) * 3
    x = torch.rand(1, 3, 64, 96)
    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            for transform, inp in ((net.g_s, y), (net.g_a, x)):
                outputs = []
                for n in (1, 2, 3):
                    torch.set_num_threads(n)
                    outputs.append(stable_forward(transform, inp))
                assert all(torch.equal(outputs[0], o) for o in outputs[1:])
                plain = transform(inp)
                assert (outputs[0] - plain).abs().max() <= 1e-5 * plain.abs().max()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", ["cheng2020-anchor", "elic2022-official"])
def test_block_transforms_are_the_same_at_every_thread_count(arch):
    """Residual and attention blocks (channels last): one result at 1, 2 and 3 threads, the
    plain layers' up to summation order."""
    from test_families import tiny

    model = tiny(arch)
    net = model.net
    torch.manual_seed(2)
    y = torch.randn(1, model.card["M"], 24, 32) * 3  # small blocks at first (one thread), then larger
    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            outputs = []
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                outputs.append(stable_forward(net.g_s, y))
            assert all(torch.equal(outputs[0], o) for o in outputs[1:])
            plain = net.g_s(y)
            assert (outputs[0] - plain).abs().max() <= 1e-5 * plain.abs().max()
    finally:
        torch.set_num_threads(threads)
