"""Option sets as dataclasses: the single source of the names, defaults and checks that the
library, the CLI (its click choices) and the benchmarks share. Importing this module is
cheap (no torch), so that ``lrcodec --help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import LrcodecError

METHODS = ("ssl", "linear", "cosine", "atanh", "ste", "noise")
THREE_CLASS = ("ssl", "linear", "cosine")
PRECISIONS = ("auto", "float32", "bfloat16")
SURROGATES = ("noise", "ste", "mixed", "uq", "soft-round", "sua", "soft-round-noise")  # lrcodec/learn/surrogates.py
TUNES = ("psnr", "ms-ssim")  # what refinement weighs against the rate (lrcodec/learn/distortion.py)
SSL_SHARPNESS, SSL_SHARPNESS_THREE_CLASS = 2.3, 1.4  # the SGA+ paper's a for two and three classes
MAX_PIXELS = 100_000_000  # the largest image (and file) coded unless a limit is given
SIGMA_MIN = 0.11  # CompressAI's SCALES_MIN: lower bound of sigma in estimate and coder alike


@dataclass(frozen=True)
class RefineSettings:
    """Everything that steers one refinement (``docs/algorithms.md`` section 4). The defaults
    are the SGA+ paper's; ``EFFORTS`` holds the presets chosen by measurement."""

    method: str = "ssl"
    three_class: bool = False
    iterations: int = 500
    lr: float = 0.005
    a: float | None = None  # SSL sharpness (None: SSL_SHARPNESS, or SSL_SHARPNESS_THREE_CLASS)
    tmax: float = 1.0  # temperature T(t) = min(tmax, exp(-decay t))
    decay: float = 1e-3
    lr_drop: float = 1.0  # after this fraction of the iterations the lr falls to a tenth (1: never)
    patience: int = 0  # stop after this many true-loss evaluations without a better one (0: never)
    eval_every: int = 10  # iterations between true-loss evaluations
    lmbda: float | None = None  # R-D trade-off (None: the model card's, else ``refine.lambda_for``'s default)
    precision: str = "auto"  # the synthesis inside the loop: bfloat16 where the hardware has it natively
    time_limit: float = 0.0  # seconds for the whole refinement: fewer iterations where they do not fit (0: none)
    tune: str = "psnr"  # the distortion weighed against the rate (TUNES)

    def check(self) -> None:
        if self.method not in METHODS:
            raise LrcodecError(f"unknown method {self.method!r} (choose from {', '.join(METHODS)})")
        if self.three_class and self.method not in THREE_CLASS:
            raise LrcodecError(f"--three-class is available for {', '.join(THREE_CLASS)}, not {self.method}")
        if self.iterations < 0:
            raise LrcodecError("iterations must be >= 0")
        if self.eval_every < 1 or self.patience < 0 or not 0 < self.lr_drop <= 1:
            raise LrcodecError("eval_every must be >= 1, patience >= 0 and lr_drop in (0, 1]")
        if self.lmbda is not None and not self.lmbda > 0:
            raise LrcodecError(f"lambda must be positive, got {self.lmbda}")
        if self.time_limit is None or self.time_limit < 0:
            raise LrcodecError("time_limit must be >= 0 seconds (0: none)")
        if self.tune not in TUNES:
            raise LrcodecError(f"unknown tuning {self.tune!r} (choose from {', '.join(TUNES)})")
        if self.precision not in PRECISIONS:
            raise LrcodecError(f"unknown precision {self.precision!r} (choose from {', '.join(PRECISIONS)})")

    @property
    def sharpness(self) -> float:
        """The SSL sharpness a: as given, else the paper's for the number of classes."""
        if self.a is not None:
            return self.a
        return SSL_SHARPNESS_THREE_CLASS if self.three_class else SSL_SHARPNESS

    @property
    def label(self) -> str:
        return f"{self.method}-3c" if self.three_class else self.method


def _budget(iterations: int, lr: float, anneal: float, seconds: float) -> RefineSettings:
    """SSL with the temperature annealed over the whole budget (T falls to e^-anneal) and the
    lr cut to a tenth for the last fifth: the schedule bench/schedules.py chose. ``seconds``
    bounds the refinement: a large image gets the iterations that fit (the same schedule
    over fewer of them). One true-loss evaluation, at the end: with the temperature annealed
    and the lr cut, the last latents are the ones to code (bench/effort.py measures the
    cost of the evaluations this saves against what they found)."""
    return RefineSettings(iterations=iterations, lr=lr, decay=anneal / iterations, lr_drop=0.8, time_limit=seconds,
                          eval_every=iterations)


# effort -> refinement (0: the plain encode); chosen with bench/schedules.py
# (bench/results/refine-schedules.json), costs and gains in bench/results/refine.json.
EFFORTS: dict[int, RefineSettings | None] = {
    0: None,
    1: _budget(25, 0.02, 1.0, 20),
    2: _budget(50, 0.02, 1.0, 45),
    3: _budget(100, 0.02, 1.0, 90),
    4: _budget(200, 0.02, 1.0, 180),
    5: _budget(500, 0.01, 1.0, 450),
}
DEFAULT_EFFORT = 2


def effort_settings(effort: int, **changes) -> RefineSettings | None:
    """The refinement an effort level runs (None for 0, the plain encode)."""
    if effort not in EFFORTS:
        raise LrcodecError(f"effort must be one of {', '.join(map(str, EFFORTS))}, got {effort}")
    preset = EFFORTS[effort]
    return replace(preset, **changes) if preset is not None and changes else preset


@dataclass(frozen=True)
class OverfitSettings:
    """One overfitted encode (``lrcodec.learn.overfit``): the decoder and latents learned for
    one image from scratch on Cool-chic 4's schedule (Adam, gradients clipped, cosine lr; a
    soft quantizer with annealed temperature, then the last ``hard_fraction`` of the
    iterations with hard rounding at lr/100)."""

    profile: str = "overfit"  # lrcodec.format.overfit.PROFILES, or "overfit": its default (overfit-2000)
    iterations: int = 1000
    lr: float = 0.01
    surrogate: str = "soft-round"  # SURROGATES: the from-scratch study's winner (docs/overfit.md)
    hard_fraction: float = 0.1
    temperature: tuple[float, float] = (0.3, 0.1)  # soft rounding's 1/alpha, annealed linearly
    noise: tuple[float, float] = (0.25, 0.1)  # soft-round-noise's Gaussian noise (std), annealed linearly (Cool-chic's)
    clip: float = 0.1  # the gradient's norm is clipped to this
    lmbda: float = 0.0067
    time_limit: float = 0.0  # seconds for the whole optimization (0: none): fewer iterations, same schedule
    seed: int = 0

    def check(self) -> None:
        if self.surrogate not in SURROGATES:
            raise LrcodecError(f"unknown surrogate {self.surrogate!r} (choose from {', '.join(SURROGATES)})")
        if self.iterations < 1 or not self.lr > 0 or not 0 <= self.hard_fraction <= 1:
            raise LrcodecError("an overfitted encode needs iterations >= 1, lr > 0 and hard_fraction in [0, 1]")
        if not self.lmbda > 0:
            raise LrcodecError(f"lambda must be positive, got {self.lmbda}")
        if self.time_limit is None or self.time_limit < 0:
            raise LrcodecError("time_limit must be >= 0 seconds (0: none)")


# effort -> iterations of an overfitted encode, and its time budget: seconds per iteration
# and megapixel, at least OVERFIT_SECONDS_MIN an iteration (about four times what one takes
# on a 2-core CPU, so that only a slow machine or a huge image is cut short).
OVERFIT_EFFORTS = {1: 250, 2: 1000, 3: 2000, 4: 4000, 5: 10000}
OVERFIT_SECONDS, OVERFIT_SECONDS_MIN = 2.0, 0.1
# CompressAI's MSE zoo qualities 1-8: the lambda each was trained for (compressai.zoo; its
# variable-rate networks carry the same list); -q of an overfitted encode picks from it too.
ZOO_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


EXECUTORS = ("local", "ray")
RECONSTRUCTIONS = ("dither", "soft-mean")


@dataclass(frozen=True)
class EncodeSettings:
    """Everything but the pixels that one encode needs: the model, the quantizer and how much
    refinement (``effort`` 0 is the plain encode; ``refine`` overrides the effort's preset)."""

    model: str | None = None
    quality: int | None = None
    effort: int = 0  # see EFFORTS
    refine: RefineSettings | None = None
    target_bpp: float | None = None
    uq: bool = False
    seed: int = 0
    reconstruction: str = "dither"
    soft_alpha: int | None = None
    drop_alpha: bool = False
    max_pixels: int = MAX_PIXELS
    device: str = "auto"  # where the transforms run: auto (CUDA if present), cpu, cuda or cuda:N; a plain encode
    # of a model with a runtime export runs on the CPU without torch (lrcodec.runtime) unless "cuda"
    time_limit: float | None = None  # seconds for one image's refinement (0: no limit; None: the refinement's own)
    lmbda: float | None = None  # the refinement's R-D trade-off (None: the refinement's, else ``refine.lambda_for``)
    tune: str = "psnr"  # the distortion refinement weighs against the rate (TUNES)
    roi: str | bytes | None = None  # a region-of-interest mask: a greyscale image's path or bytes
    metadata: str = "all"  # what of the input's ICC profile, EXIF and XMP the file keeps (imageio.METADATA_CHOICES)

    def overfit_settings(self, pixels: int) -> OverfitSettings:
        """The overfitted encode these settings ask for (``model`` an overfitted profile):
        the effort's iterations within a budget that scales with the image's ``pixels``."""
        unsupported = {"--uq": self.uq, "--reconstruction soft-mean": self.reconstruction != "dither",
                       "--soft-alpha": self.soft_alpha is not None, "--target-bpp": self.target_bpp is not None,
                       "--tune ms-ssim": self.tune != "psnr", "--roi": self.roi is not None,
                       "lrcodec refine": self.refine is not None}
        for option, given in unsupported.items():
            if given:
                raise LrcodecError(f"{option} does not apply to the overfitted family")
        if self.effort not in OVERFIT_EFFORTS:
            raise LrcodecError("the overfitted family learns every image from scratch: give it an effort of 1 or more")
        if self.quality is not None and not 1 <= self.quality <= len(ZOO_LAMBDAS):
            raise LrcodecError(f"the overfitted family's qualities are 1-{len(ZOO_LAMBDAS)}, got {self.quality}")
        lmbda = (self.lmbda if self.lmbda is not None else ZOO_LAMBDAS[self.quality - 1] if self.quality
                 else OverfitSettings.lmbda)
        iterations = OVERFIT_EFFORTS[self.effort]
        limit = (self.time_limit if self.time_limit is not None
                 else iterations * max(OVERFIT_SECONDS * pixels / 1e6, OVERFIT_SECONDS_MIN))
        overfit = OverfitSettings(profile=self.model, iterations=iterations, lmbda=lmbda, time_limit=limit, seed=self.seed)
        overfit.check()
        return overfit

    def refine_settings(self) -> RefineSettings | None:
        """The refinement to run, or None for a plain encode."""
        refinement = self.refine if self.refine is not None else effort_settings(self.effort)
        steering = {"--lmbda": self.lmbda is not None, "--tune": self.tune != "psnr", "--roi": self.roi is not None}
        if refinement is None:
            for option, given in steering.items():
                if given:
                    raise LrcodecError(f"{option} steers refinement: it needs an effort above 0")
            return None
        if self.lmbda is not None:
            refinement = replace(refinement, lmbda=self.lmbda)
        if self.time_limit is not None:
            refinement = replace(refinement, time_limit=self.time_limit)
        if self.tune != "psnr":
            refinement = replace(refinement, tune=self.tune)
        refinement.check()
        return refinement


@dataclass
class TrainConfig:
    """One training run (``lrcodec.learn.train``; ``lrcodec train`` reads its defaults here)."""

    data: str = "../shared/data/train"
    out: str = "models/lrc-custom"  # the weights and card: <out>.safetensors, <out>.json
    lmbda: float = 0.0067
    arch: str | None = None  # None: mean-scale, or the init model's
    N: int | None = None  # None: 64, or the init model's
    M: int | None = None  # None: 96, or the init model's (a larger M widens the init model)
    context: dict | None = None  # more of the architecture than N, M (channel-context: the slice networks;
    # ELIC: its channel groups); None: the family's default
    steps: int = 10000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-3
    context_lr: float | None = None  # channel-context: lr of the slice networks (None: lr); new layers on trained transforms
    decay_start: float = 0.8  # fraction of steps after which the lr decays (cosine) to lr/20
    surrogate: str = "mixed"
    sigma_min: float = SIGMA_MIN
    alpha_max: float = 16.0  # soft-round: alpha rises linearly from 1 to alpha_max
    tau_end: float = 0.0  # sua: temperature held at tau_end after 90% of steps; 0 won the study (docs/training.md)
    sua_stop_gradient: bool = True  # sua: the partial stop-gradient (False: the ablation without it)
    seed: int = 0
    val_images: int = 8  # held out from the end of the sorted file list, never trained on
    checkpoint_every: int = 500
    checkpoint_dir: str = "runs"
    init: str | None = None  # start from these weights (lambda fine-tuning, widening)
    init_training: dict | None = None  # the init model's own training record, kept in the card
    threads: int | None = None
    bf16: bool | None = None  # CPU bf16 autocast; None: only where the CPU has bf16 instructions
    device: str = "auto"  # auto: CUDA when present
    max_minutes: float | None = None  # stop (with a checkpoint) after this wall time
    history: list = field(default_factory=list)
