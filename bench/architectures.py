"""Every architecture against CompressAI's own coder on the same weights, in one run.

For each zoo architecture at its quality-3 size (``compressai.zoo.image.cfgs``), each
checkpoint-only one at its CompressAI constructor's default size, and the mean-scale
hyperprior at ELIC's size (the reference for the checkerboard models' decode), a network
with seeded random transforms and an entropy model fitted to the image's y
(``fit_entropy_model``; CompressAI's trained weights cannot be downloaded here, and lrcodec's
coder does the same work whatever the weights) encodes and decodes one image with lrcodec
(``codec.encode_image`` / ``codec.decode_latents``, entropy coding and synthesis included)
and with CompressAI's ``compress()`` / ``decompress()``. Sizes are compared with the ideal
information content under lrcodec's tables, under the range coder's re-quantization of them
(``entropy.coder_weights``) and, for both coders, under the float model.

    .venv/bin/python bench/architectures.py [--data ../shared/data/kodak] [--archs a,b]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch  # noqa: E402

from lrcodec.format import bitstream
from lrcodec import codec  # noqa: E402
from lrcodec.families import ZOO, family  # noqa: E402
from lrcodec.families.reference import compressai_network  # noqa: E402
from lrcodec.models import _finish, build_network  # noqa: E402
from lrcodec.learn.surrogates import surrogate_quantize  # noqa: E402
from refine import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FIT_STEPS = 150
# mbt2018-vbr's context reads y_hat in steps of 1/g, five times the fixed-rate models' unit at
# quality 3: at 3e-3 Adam's first steps blew its (sigma, mu) up to ~1e5 and the file to 10 bpp
# (y's float rate 24 -> 26 bits per element after 50 steps; 3.0 at 3e-4 after 20)
FIT_LR, FIT_LR_OF = 3e-3, {"mbt2018-vbr": 3e-4}


# compressai.models.sensetime's defaults, the factorized prior's quality-3 size, and the
# mean-scale hyperprior at ELIC's size: the reference of the checkerboard models' decode time
BY_ARCH = {"factorized-relu": (128, 192), "cheng2020-anchor-checkerboard": (192, 192),
           "elic2022-official": (192, 320), "elic2022-chandelier": (192, 320), "mean-scale": (192, 320)}


def zoo_sized(name: str, seed: int, image, fit_steps: int = FIT_STEPS):
    """A model of the zoo architecture's quality-3 size with seeded random weights, g_a's last
    convolution scaled so that y has a standard deviation of about 4 on the image (a random g_a's y
    rounds to almost all zeros, which would time a degenerate file) and its entropy model fitted
    to that y."""
    from compressai.zoo.image import cfgs
    from compressai.zoo.image_vbr import cfgs as vbr_cfgs

    if name in BY_ARCH:
        arch, (N, M) = name, BY_ARCH[name]
    elif name in vbr_cfgs:  # one size for every rate; coded at quality 3, y scaled to std 4 in steps
        arch, (N, M) = ZOO[name][0], vbr_cfgs[name]
    else:
        arch, size = ZOO[name][0], cfgs[name][3]
        N, M = (size[0], size[0]) if len(size) == 1 else size
    torch.manual_seed(seed)
    net = build_network(arch, N, M).eval()
    chosen = family(arch)
    gain = chosen.gain(net) if chosen.rate_levels(net) else 1.0
    last = next(layer for layer in reversed(net.g_a) if isinstance(layer, torch.nn.Conv2d))
    x = codec.prepare_image(image)[0]
    with torch.no_grad():
        for _ in range(3):  # g_a may end in an attention block, which is not linear in its input
            scale = 4 / (gain * net.g_a(x).std())
            last.weight.mul_(scale)
            last.bias.mul_(scale)
        y = net.g_a(x)
    fit_entropy_model(net, chosen, y, fit_steps, FIT_LR_OF.get(name, FIT_LR))
    return _finish(family(arch).prepare(net), f"{name}-random", arch, {"source": "random init", "N": N, "M": M})


def fit_entropy_model(net, chosen, y, steps: int, lr: float = FIT_LR) -> None:
    """Fit the entropy model (h_s, the prior of z, a context and its parameter network) to the
    image's y by Adam on the noise-relaxed rate, g_a, h_a and g_s frozen: a random h_s predicts
    a sigma far below y's spread, which puts most of y in tails that no trained model codes."""
    frozen = ("g_a", "g_s", "h_a", "Gain", "QuantABCD", "gayn2zqstep")
    trained = [p for n, p in net.named_parameters()
               if not any(part in frozen for part in n.split(".")) and not n.endswith("quantiles")]
    quantiles = [p for n, p in net.named_parameters() if n.endswith("quantiles")]
    for p in trained + quantiles:
        p.requires_grad_(True)
    opt, aux_opt = torch.optim.Adam(trained, lr=lr), torch.optim.Adam(quantiles, lr=1e-2)
    noise = lambda stream: lambda v, channels: surrogate_quantize(v, "noise", stream=stream)  # noqa: E731
    for _ in range(steps):
        z_hat, bits_z = chosen.z_forward(net, chosen.hyper_analysis(net, y), noise(1))
        hyper = chosen.hyper_synthesis(net, z_hat)
        _, bits_y = chosen.y_forward(net, y, hyper, noise(0))
        opt.zero_grad()
        aux_opt.zero_grad()
        ((bits_y.sum() + bits_z.sum()) / y.numel()).backward()
        net.aux_loss().backward()  # every factorized prior's quantiles, the variable-rate models' too
        opt.step()
        aux_opt.step()
    for p in net.parameters():
        p.requires_grad_(False)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def compare(name: str, image, repeats: int, seed: int, fit_steps: int) -> dict:
    model = zoo_sized(name, seed, image, fit_steps)
    encode_s, result = timed(lambda: codec.encode_image(image, model), repeats)
    decode_s, decoded = timed(lambda: codec.decode_latents(result.data, model), repeats)
    header = bitstream.parse_header(result.data)  # the entropy decoding alone, without g_s
    symbols_s, _ = timed(lambda: codec._decode_symbols(result.data, header, model), repeats)
    assert torch.equal(decoded.latents.y_symbols, result.latents.y_symbols)
    q = result.latents
    with torch.no_grad():
        bits_y, bits_z = (b.item() for b in model.family.float_bits(model.net, q.y_hat, q.z_hat))
    payload_bits = 8 * (len(result.data) - bitstream.HEADER_SIZE - bitstream.TRAILER_SIZE)
    row = {"name": name, "arch": model.arch, "N": model.card["N"], "M": model.card["M"],
           "y_units": len(model.exact.y_units(tuple(q.y_symbols.shape))),
           "lrcodec": {"encode_s": encode_s, "decode_s": decode_s, "symbols_s": symbols_s, "payload_bits": payload_bits,
                       "ideal_bits": result.bits_ideal, "coder_ideal_bits": result.bits_coder,
                       "float_ideal_bits": bits_y + bits_z,
                       "overhead_vs_ideal_pct": 100 * (payload_bits / result.bits_ideal - 1),
                       "overhead_vs_coder_ideal_pct": 100 * (payload_bits / result.bits_coder - 1)}}
    x, _ = codec.prepare_image(image)
    net, rate = compressai_network(model.arch, model.net.state_dict()), {}  # CompressAI's, the same weights
    if model.family.rate_levels(model.net):  # CompressAI's variable-rate path at the same level
        rate = {"stage": 2, "s": model.card["level"]}
    if rate and model.arch != "joint-autoregressive-vbr":
        net.update(force=True, scale=net.Gain[rate["s"]].abs())  # its z tables at the level's step
    else:
        net.update(force=True)
    with torch.no_grad():
        c_encode_s, out = timed(lambda: net.compress(x, **rate), repeats)
        c_decode_s, _ = timed(lambda: net.decompress(out["strings"], out["shape"], **rate), repeats)
    c_bits = 8 * sum(len(s[0]) for s in out["strings"])
    row["compressai"] = {"encode_s": c_encode_s, "decode_s": c_decode_s, "payload_bits": c_bits,
                         "overhead_vs_float_ideal_pct": 100 * (c_bits / (bits_y + bits_z) - 1)}
    row["speedup"] = {"encode": c_encode_s / encode_s, "decode": c_decode_s / decode_s}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--image", default="kodim01.png")
    ap.add_argument("--archs", default=",".join([*ZOO, *BY_ARCH]))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit-steps", type=int, default=FIT_STEPS, help="Adam steps of fit_entropy_model")
    ap.add_argument("--out", default=str(RESULTS / "architectures.json"))
    args = ap.parse_args()
    from PIL import Image

    image = Image.open(Path(args.data) / args.image).convert("RGB")
    command, names = "python bench/architectures.py " + " ".join(sys.argv[1:]), args.archs.split(",")
    out = Path(args.out)
    # the rows of other architectures stay, each with the command and machine that measured it
    previous = json.loads(out.read_text()) if out.exists() else {"rows": []}
    kept = [{"command": previous.get("command"), "machine": previous.get("machine"), **r}
            for r in previous["rows"] if r["name"] not in names]
    order = [*ZOO, *BY_ARCH]
    rows = []
    for name in names:
        rows.append({"command": command, "machine": machine(), **compare(name, image, args.repeats, args.seed, args.fit_steps)})
        r = rows[-1]
        print(f"{name:26} lrcodec {r['lrcodec']['encode_s']:6.2f} / {r['lrcodec']['decode_s']:6.2f} s "
              f"({r['lrcodec']['overhead_vs_ideal_pct']:+.3f} %, coder's {r['lrcodec']['overhead_vs_coder_ideal_pct']:+.4f} %), "
              f"CompressAI {r['compressai']['encode_s']:6.2f} / {r['compressai']['decode_s']:6.2f} s "
              f"({r['compressai']['overhead_vs_float_ideal_pct']:+.2f} %)", flush=True)
        report = {"image": args.image,
                  "weights": "seeded random transforms at each zoo architecture's quality-3 size, y scaled to std 4 "
                             "(variable-rate models: in steps of their quality-3 level), the entropy model fitted "
                             f"to the image's y in {args.fit_steps} Adam steps (learning rate {FIT_LR:g}; "
                             + ", ".join(f"{k} {v:g}" for k, v in FIT_LR_OF.items()) + ")",
                  "rows": sorted(kept + rows, key=lambda r: order.index(r["name"]) if r["name"] in order else len(order)),
                  # architectures a run could not measure, and why (kept until a run measures them)
                  "not_measured": {k: v for k, v in previous.get("not_measured", {}).items() if k not in names}}
        out.parent.mkdir(parents=True, exist_ok=True)  # after every row: an interrupted run keeps what it measured
        out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
