"""Decoding without torch: a hyperprior model's exact path rebuilt in numpy from its weights,
and its synthesis g_s as an ONNX graph that onnxruntime runs.

A model's *decoder export* is two files beside its weights (``models/`` for the shipped ones,
the cache for a user's checkpoint):

* ``<stem>.decoder.json``: what the file's symbols depend on besides the weights (the integer
  h_s's layers by tensor name, z's prior by tensor name, the sigma table's lower bound, the
  model id) and the g_s halo of tiled synthesis;
* ``<stem>.g_s.onnx``: g_s, exported by ``torch.onnx`` with the tile's height and width free.

Both are written by ``lrcodec.models.export_decoder`` from a loaded model (which needs torch
and onnx: ``save_model`` does it when a model is made); decoding from
them needs numpy, safetensors, constriction and onnxruntime only. The exact path is the same
code as the torch decoder's (``lrcodec.format.exact``, ``lrcodec.families.coding``) fed with
the same weights, so it gives the same symbols bit for bit; g_s is float arithmetic either
way, whose pixels may differ in the last level (``tests/test_runtime.py`` bounds it, and
``bench/decode.py`` measures it over Kodak).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import LrcodecError
from .families.coding import ExactHyperprior
from .format.entropy import sigma_table
from .format.exact import FactorizedPrior, IntegerNetwork
from .models import G_S, EXPORT_VERSION, PORTABLE, SPEC, export_decoder, file_digest, models_dir, shipped_models

TORCH_ONLY = ".torch-only"  # beside a cache key: that checkpoint's architecture has no export


def cache_dir() -> Path:
    """Where exports of users' checkpoints are kept: ``$LRCODEC_CACHE``, else
    ``$XDG_CACHE_HOME/lrcodec``, else ``~/.cache/lrcodec``."""
    env = os.environ.get("LRCODEC_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrcodec"


def export_checkpoint(source: Path, quiet: bool = False) -> Path | None:
    """The cached export of a user's checkpoint (made now if missing: that needs torch, and is
    said on stderr), keyed by the checkpoint's bytes; None where its architecture decodes with
    torch only (remembered, so that it is loaded once to find out)."""
    key = file_digest(source)[:24]
    stem = cache_dir() / key
    spec = stem.with_name(key + SPEC)
    if spec.is_file() and stem.with_name(key + G_S).is_file():
        return spec
    if stem.with_name(key + TORCH_ONLY).is_file():
        return None
    from .models import load_model, weights_of

    model = load_model(str(source))
    stem.parent.mkdir(parents=True, exist_ok=True)
    if model.arch not in PORTABLE:
        stem.with_name(key + TORCH_ONLY).write_text(model.arch + "\n")
        return None
    if not quiet:
        print(f"lrcodec: exporting {source}'s decoder to {cache_dir()} (once; this step imports torch)", file=sys.stderr)
    from safetensors.torch import save

    from .imageio import write_atomic

    weights = stem.with_name(key + ".safetensors")
    write_atomic(str(weights), save(weights_of(model.net)), force=True)
    return export_decoder(model, stem)


# ---------------------------------------------------------------- reading one


@dataclass
class Decoder:
    """A model's decoder without torch: what ``lrcodec.codec`` decodes with in place of a
    ``LoadedModel``."""

    spec: dict
    exact: ExactHyperprior
    g_s_path: Path

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def arch(self) -> str:
        return self.spec["arch"]

    @property
    def model_id(self) -> bytes:
        return bytes.fromhex(self.spec["model_id"])

    @property
    def halos(self) -> tuple[None, int]:
        """(no analysis, g_s's tile halo in y positions), as ``LoadedModel.halos``."""
        return None, self.spec["g_s_halo"]

    def latent_shapes(self, height: int, width: int) -> tuple[tuple, tuple]:
        """Shapes of y and z for a padded image of height x width pixels."""
        return (1, self.spec["M"], height // 16, width // 16), (1, self.spec["N"], height // 64, width // 64)

    def y_units(self, shape: tuple) -> list:
        return self.exact.y_units(tuple(shape))

    @cached_property
    def session(self):
        """The onnxruntime session of g_s (made on first use; sessions run from any thread)."""
        try:
            import onnxruntime
        except ImportError:
            raise LrcodecError("decoding without torch needs onnxruntime: pip install onnxruntime") from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        try:
            return onnxruntime.InferenceSession(str(self.g_s_path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own error types: a missing or damaged graph
            raise LrcodecError(f"{self.g_s_path}: not a usable g_s graph ({str(e).splitlines()[0][:200]}); "
                               "export it again") from None

    def g_s(self, y_hat: np.ndarray) -> np.ndarray:
        """8-bit pixels (uint8, (1, 3, 16h, 16w)) of a y_hat tile (float32, (1, M, h, w)): the
        same rounding as the torch decoder's ``to_pixels``."""
        x = self.session.run(None, {"y_hat": np.ascontiguousarray(y_hat, dtype=np.float32)})[0]
        return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _weights(spec: dict, folder: Path) -> dict:
    """The float tensors the exact path reads (as stored: fp16 or fp32), checked against the
    digest the export was made from, so that replaced weights cannot decode wrongly."""
    from safetensors import safe_open

    path = folder / spec["weights"]  # <stem>.safetensors
    if not path.is_file():
        raise LrcodecError(f"the weights of decoder export {spec['name']} are missing: {path}")
    if file_digest(path) != spec["weights_sha256"]:
        raise LrcodecError(f"{path} is not the file decoder export {spec['name']} was made from; export it again")
    names = [n for layer in spec["h_s"] if layer["kind"] != "shuffle" for n in (f"{layer['name']}.weight", f"{layer['name']}.bias")]
    names += [n for layer in spec["prior"]["layers"] for n in layer if n] + [spec["prior"]["quantiles"]]
    with safe_open(str(path), framework="numpy") as f:
        return {n: f.get_tensor(n) for n in names}


_LOADED: dict[tuple, Decoder] = {}
_LOCK = threading.Lock()


def load_decoder(path: Path) -> Decoder:
    """The decoder of an export (``<stem>.decoder.json``, its weights ``<stem>.safetensors``);
    kept once loaded, keyed by the files' paths and modification times."""
    path = Path(path)
    weights = path.with_name(path.name[: -len(SPEC)] + ".safetensors")
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns, weights.stat().st_mtime_ns if weights.exists() else 0)
    except OSError:
        raise LrcodecError(f"decoder export not found: {path}") from None
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    try:
        spec = json.loads(path.read_text())
        if spec.get("export_version") != EXPORT_VERSION:
            raise LrcodecError(f"{path}: a decoder export of another lrcodec version; export it again")
        weights = _weights(spec, path.parent)
        prior = spec["prior"]
        parts = (FactorizedPrior.of_layers([[weights[n] if n else None for n in layer] for layer in prior["layers"]],
                                           weights[prior["quantiles"]]),
                 IntegerNetwork.of_spec(spec["h_s"], weights))
    except (KeyError, TypeError, ValueError) as e:
        raise LrcodecError(f"{path}: not a valid decoder export ({e})") from None
    exact = ExactHyperprior(parts, sigma_table(spec["sigma_min"]), spec["mean_scale"])
    decoder = Decoder(spec, exact, path.with_name(path.name[: -len(SPEC)] + G_S))
    with _LOCK:
        _LOADED[key] = decoder
    return decoder


def shipped_decoder(card: dict) -> Decoder | None:
    """The decoder of a shipped model, None where it has no export."""
    path = models_dir() / f"{card['name']}{SPEC}"
    return load_decoder(path) if path.is_file() else None


def find_decoder_by_id(model_id: bytes) -> Decoder | None:
    """The decoder of the shipped model (current or retired) whose id this is, None where that
    model has no export or no shipped model has the id."""
    for card in shipped_models(current_only=False):
        if card.get("model_id") == model_id.hex():
            decoder = shipped_decoder(card)
            if decoder is not None and decoder.model_id == model_id:
                return decoder
    return None


def decoder_for(name: str, quiet: bool = False) -> Decoder | None:
    """The decoder ``--model NAME|PATH`` names: a shipped model's export, or a checkpoint's
    (exported to the cache on first use); None where only torch decodes it (a zoo name, an
    architecture without an export)."""
    path = Path(name)
    if path.suffix or os.sep in name or path.exists():
        if not path.is_file():
            raise LrcodecError(f"model file not found: {name}")
        spec = export_checkpoint(path, quiet)
        return None if spec is None else load_decoder(spec)
    for card in shipped_models(current_only=False):
        if card["name"] == name:
            return shipped_decoder(card)
    return None
