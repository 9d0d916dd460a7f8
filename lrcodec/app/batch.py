"""Encoding many images in one command: planning outputs, running workers, a summary.

    jobs = plan(["photos/", "extra.png"], "out/")       # outputs keep subfolders
    for row in run(jobs, EncodeSettings(effort=2), workers=2):
        ...

Only the driver writes files, each atomically once its bytes have come back, so a killed or
failed run leaves no partial output, and rerunning it skips what is done. Workers (local
processes or Ray tasks) get the input's bytes and return the output's, so a Ray cluster needs
no shared filesystem. Each worker loads a model once and keeps it for later images.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import LrcodecError
from ..settings import EXECUTORS, EncodeSettings

SUMMARY_FIELDS = ("input", "output", "status", "error", "width", "height", "bytes", "bpp", "psnr",
                  "base_bytes", "base_bpp", "base_psnr", "iterations", "seconds")


@dataclass
class Outcome:
    """One image's result: the file's bytes (None if it failed) and a summary row."""

    data: bytes | None
    row: dict = field(default_factory=dict)


_models: dict = {}


def cached_model(name: str | None, quality: int | None, device: str = "cpu"):
    """A model loaded once per process (workers keep theirs for every later image)."""
    from ..devices import resolve_device
    from ..models import load_model, models_dir

    dev = resolve_device(device)
    key = (name, quality, str(models_dir()), str(dev))
    if key not in _models:
        _models[key] = load_model(name, quality).to(dev)
    return _models[key]


def cached_runtime(name: str | None, quality: int | None):
    """The model's runtime export (``lrcodec.runtime``; None: it runs with torch only), found
    once per process."""
    from ..models import models_dir
    from ..runtime import runtime_for

    key = ("runtime", name, quality, str(models_dir()))
    if key not in _models:
        _models[key] = runtime_for(name, quality, quiet=True)
    return _models[key]


def _open(data: bytes, name: str, settings: EncodeSettings):
    """(image, model, quantizer keywords) for one input."""
    from ..imageio import open_image

    return _model_for(open_image(data, name, settings.max_pixels), settings)


def _model_for(image, settings: EncodeSettings):
    """(image, model, quantizer keywords): a plain encode without torch where the model has a
    runtime export and CUDA is not asked for."""
    from ..codec import quantizer_options

    plain = settings.refine_settings() is None and settings.device != "cuda"
    model = (plain and cached_runtime(settings.model, settings.quality)) or cached_model(
        settings.model, settings.quality, settings.device)
    return image, model, quantizer_options(model, settings.uq, settings.seed, settings.reconstruction,
                                           settings.soft_alpha)


def _refined_outcome(result, image, model, seconds: float, **extra) -> Outcome:
    encoded = result.encoded
    return Outcome(encoded.data, {
        "width": image.width, "height": image.height, "model": model.name, "bytes": len(encoded.data),
        "bpp": encoded.bpp, "psnr": result.psnr, "base_bytes": len(result.base.data), "base_bpp": result.base.bpp,
        "base_psnr": result.base_psnr, "iterations": result.iterations, "kept_base": result.kept_base,
        "lmbda": result.lmbda, "seconds": seconds, **extra})


def encode_bytes(data: bytes, name: str, settings: EncodeSettings, progress=None) -> Outcome:
    """Encode (refining as ``settings`` say) an image given as file bytes."""
    t0 = time.perf_counter()
    return _encode(*_open(data, name, settings), settings, t0, progress)


def encode_pil(image, settings: EncodeSettings, progress=None) -> Outcome:
    """Encode (refining as ``settings`` say) a PIL image as it is (no orientation applied)."""
    t0 = time.perf_counter()
    return _encode(*_model_for(image, settings), settings, t0, progress)


def _encode(image, model, quantizer: dict, settings: EncodeSettings, t0: float, progress=None) -> Outcome:
    """The file of an opened image, with the metadata ``settings.metadata`` keeps (its size and
    bpp in the row are the whole file's)."""
    from ..format.bitstream import with_metadata
    from ..imageio import image_metadata
    from ..metrics import bits_per_pixel

    metadata = image_metadata(image, settings.metadata)
    outcome = _encode_pixels(image, model, quantizer, settings, t0, progress)
    if not metadata:
        return outcome
    data = with_metadata(outcome.data, metadata)
    return Outcome(data, {**outcome.row, "bytes": len(data),
                          "bpp": bits_per_pixel(8 * len(data), image.width * image.height)})


def _encode_pixels(image, model, quantizer: dict, settings: EncodeSettings, t0: float, progress=None) -> Outcome:
    from ..codec import encode_image

    refinement = settings.refine_settings()
    if refinement is None:
        if settings.target_bpp is not None:
            raise LrcodecError("--target-bpp needs refinement (an effort above 0)")
        encoded = encode_image(image, model, **quantizer, drop_alpha=settings.drop_alpha, progress=progress)
        return Outcome(encoded.data, {"width": image.width, "height": image.height, "model": model.name,
                                      "bytes": len(encoded.data), "bpp": encoded.bpp, "iterations": 0,
                                      "seconds": time.perf_counter() - t0})
    from ..learn.refine import find_lambda_for_bpp, refine_image

    options = dict(**quantizer, drop_alpha=settings.drop_alpha, progress=progress)
    if settings.target_bpp is not None:
        result, _ = find_lambda_for_bpp(image, model, settings.target_bpp, settings=refinement, **options)
        return _refined_outcome(result, image, model, time.perf_counter() - t0)
    return _refined_outcome(refine_image(image, model, refinement, **options), image, model,
                            time.perf_counter() - t0)


def encode_group(items: list[tuple[str, bytes]], settings: EncodeSettings) -> list[Outcome]:
    """Refine images of one size as one batch (on a GPU, one batch costs about what one image
    does); an image that fails alone is reported alone."""
    from ..learn.refine import refine_images

    t0 = time.perf_counter()
    opened, outcomes = [], [None] * len(items)
    for i, (name, data) in enumerate(items):
        try:
            opened.append((i, *_open(data, name, settings)))
        except LrcodecError as e:
            outcomes[i] = Outcome(None, {"error": str(e)})
    if opened:
        model, quantizer = opened[0][2], opened[0][3]
        try:
            results = refine_images([image for _, image, _, _ in opened], model, settings.refine_settings(),
                                    **quantizer, drop_alpha=settings.drop_alpha)
        except LrcodecError:  # find which image it was: one by one
            for i, *_ in opened:
                outcomes[i] = _guarded(items[i][0], items[i][1], settings)
        else:
            seconds = (time.perf_counter() - t0) / len(opened)
            for (i, image, _, _), result in zip(opened, results):
                outcomes[i] = _refined_outcome(result, image, model, seconds, batch=len(opened))
    return outcomes


# ------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Job:
    source: str
    target: str


def plan(inputs: Iterable[str], out_dir: str, suffix: str = ".lrc") -> list[Job]:
    """One job per image: files as named, folders searched recursively; the output keeps the
    path below the folder given, with ``suffix``. Two inputs that would write one output are
    an error before any work starts."""
    from ..imageio import expand_inputs

    jobs = [Job(str(path), str(Path(out_dir) / name.with_suffix(suffix))) for path, name in expand_inputs(inputs)]
    seen: dict[str, str] = {}
    for job in jobs:
        if job.target in seen:
            raise LrcodecError(f"{seen[job.target]} and {job.source} would both be written to {job.target}")
        seen[job.target] = job.source
    return jobs


# ------------------------------------------------------------------ executors


def _threads_for(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def _guarded(source: str, data: bytes, settings: EncodeSettings) -> Outcome:
    """encode_bytes with its failure turned into a row, so that one bad image stops nothing."""
    try:
        return encode_bytes(data, source, settings)
    except LrcodecError as e:
        return Outcome(None, {"error": str(e)})
    except Exception as e:  # an unforeseen input: reported as one line, the run goes on
        first = str(e).splitlines()[0] if str(e) else ""
        return Outcome(None, {"error": f"{type(e).__name__}: {first}"})


def _local_worker_init(threads: int) -> None:
    """A worker process's thread count, for torch (where installed) and onnxruntime."""
    import importlib.util

    os.environ["LRCODEC_THREADS"] = str(threads)  # read by lrcodec.runtime's sessions
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


def _local_task(source: str, settings: EncodeSettings) -> Outcome:
    from ..imageio import read_bytes

    return _guarded(source, read_bytes(source), settings)


GPU_BATCH_PIXELS = 8_000_000  # images of one size refined together on a GPU, up to this many pixels


def _gpu_batches(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by image size (from the file headers), each group up to GPU_BATCH_PIXELS."""
    from PIL import Image

    by_size: dict = {}
    for job in jobs:
        try:
            with Image.open(job.source) as im:
                size = im.size
        except Exception:  # unreadable: it fails on its own, reported as usual
            size = None
        by_size.setdefault(size, []).append(job)
    batches = []
    for size, group in by_size.items():
        per = 1 if size is None else max(1, GPU_BATCH_PIXELS // (size[0] * size[1]))
        batches += [group[i : i + per] for i in range(0, len(group), per)]
    return batches


def _run_local(jobs: list[Job], settings: EncodeSettings, workers: int) -> Iterator[tuple[Job, Outcome]]:
    if workers <= 1:
        from ..devices import resolve_device
        from ..imageio import read_bytes

        on_gpu = resolve_device(settings.device).type == "cuda"
        if on_gpu and settings.refine_settings() is not None and settings.target_bpp is None:
            for group in _gpu_batches(jobs):
                try:
                    items = [(job.source, read_bytes(job.source)) for job in group]
                except LrcodecError:
                    for job in group:
                        yield job, _local_task(job.source, settings)
                    continue
                yield from zip(group, encode_group(items, settings))
            return
        for job in jobs:
            yield job, _local_task(job.source, settings)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_local_worker_init,
                             initargs=(_threads_for(workers),)) as pool:
        futures = {pool.submit(_local_task, job.source, settings): job for job in jobs}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                outcome = Outcome(None, {"error": "its worker process died (out of memory?); rerun to retry"})
            yield futures[future], outcome


def _ray_task(source: str, data: bytes, settings: EncodeSettings) -> Outcome:
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    _local_worker_init(max(1, int(cpus)))
    return _guarded(source, data, settings)


def _run_ray(jobs: list[Job], settings: EncodeSettings, address: str | None, workers: int,
             retries: int = 3, task_function: Callable = _ray_task) -> Iterator[tuple[Job, Outcome]]:
    """Ray tasks, one per image; a task whose worker dies is retried up to ``retries`` times.
    Without an address, a local Ray instance with ``workers`` CPUs is started."""
    try:
        import ray
    except ImportError:
        raise LrcodecError("--executor ray needs Ray: pip install 'lrcodec[ray]'") from None
    from ..imageio import read_bytes

    if not ray.is_initialized():
        init = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        try:
            ray.init(**init, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise LrcodecError(f"cannot reach a Ray cluster at {address}: {str(e).splitlines()[0]}") from None
    gpu = settings.device == "cuda"
    task = ray.remote(num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0, max_retries=retries)(task_function)
    pending = {}
    for job in jobs:
        try:
            data = read_bytes(job.source)
        except LrcodecError as e:
            yield job, Outcome(None, {"error": str(e)})
            continue
        pending[task.remote(job.source, data, settings)] = job
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            outcome = ray.get(done[0])
        except ray.exceptions.RayError as e:  # retries used up
            outcome = Outcome(None, {"error": f"Ray task failed: {str(e).splitlines()[0]}"})
        yield job, outcome


def run(jobs: list[Job], settings: EncodeSettings, *, workers: int = 1, executor: str = "local",
        address: str | None = None, force: bool = False,
        on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the jobs and write each output atomically as it arrives; returns one summary row
    per job (status ok, skipped or failed). Outputs that exist are skipped unless ``force``."""
    from ..imageio import write_atomic

    if executor not in EXECUTORS:
        raise LrcodecError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    rows: list[dict] = []

    def finish(job: Job, outcome: Outcome, status: str) -> None:
        row = {"input": job.source, "output": job.target, "status": status, **outcome.row}
        rows.append(row)
        if on_done:
            on_done(row)

    todo = []
    for job in jobs:
        if Path(job.target).exists() and not force:
            finish(job, Outcome(None), "skipped")
        else:
            todo.append(job)
    if executor == "ray":
        results = _run_ray(todo, settings, address, workers)
    else:
        results = _run_local(todo, settings, workers)
    for job, outcome in results:
        if outcome.data is None:
            finish(job, outcome, "failed")
            continue
        try:
            Path(job.target).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(job.target, outcome.data, True)
        except (LrcodecError, OSError) as e:
            finish(job, replace(outcome, row={**outcome.row, "error": f"cannot write: {e}"}), "failed")
            continue
        finish(job, outcome, "ok")
    order = {job.source: i for i, job in enumerate(jobs)}
    return sorted(rows, key=lambda r: order[r["input"]])


def write_summary(path: str, rows: list[dict], settings: EncodeSettings) -> None:
    """The rows as JSON (with the settings) or, for a .csv name, as CSV."""
    import json

    from .. import JSON_SCHEMA_VERSION
    from ..imageio import write_atomic

    if path.lower().endswith(".csv"):
        import csv
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        config = asdict(settings)
        report = {"schema_version": JSON_SCHEMA_VERSION, "settings": config, "images": rows}
        text = json.dumps(report, indent=2, default=str) + "\n"
    write_atomic(path, text.encode(), True)
