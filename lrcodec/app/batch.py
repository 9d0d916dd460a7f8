"""Encoding many images in one command: planning outputs, running workers, a summary (each
image by ``lrcodec.encoder``).

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import LrcodecError
from ..encoder import Outcome, encode_group, guarded
from ..settings import EXECUTORS, EncodeSettings

SUMMARY_FIELDS = ("input", "output", "status", "error", "width", "height", "bytes", "bpp", "psnr",
                  "base_bytes", "base_bpp", "base_psnr", "iterations", "seconds", "tune", "roi")


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


def _local_worker_init(threads: int) -> None:
    """A worker process's thread count, for torch (where installed) and onnxruntime."""
    import importlib.util

    os.environ["LRCODEC_THREADS"] = str(threads)  # read by lrcodec.runtime's sessions
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


Task = Callable[[str, bytes, EncodeSettings], Outcome]  # (name, input bytes, settings) -> outcome, never raising


def _local_task(source: str, settings: EncodeSettings, task: Task = guarded) -> Outcome:
    from ..imageio import read_bytes

    try:
        data = read_bytes(source)
    except LrcodecError as e:
        return Outcome(None, {"error": str(e)})
    return task(source, data, settings)


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


def _run_local(jobs: list[Job], settings: EncodeSettings, workers: int, task: Task = guarded) -> Iterator[tuple[Job, Outcome]]:
    if workers <= 1:
        from ..devices import resolve_device
        from ..imageio import read_bytes

        on_gpu = resolve_device(settings.device).type == "cuda"
        if task is guarded and on_gpu and settings.refine_settings() is not None and settings.target_bpp is None:
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
            yield job, _local_task(job.source, settings, task)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_local_worker_init,
                             initargs=(_threads_for(workers),)) as pool:
        futures = {pool.submit(_local_task, job.source, settings, task): job for job in jobs}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                outcome = Outcome(None, {"error": "its worker process died (out of memory?); rerun to retry"})
            yield futures[future], outcome


def _ray_task(source: str, data: bytes, settings: EncodeSettings, task: Task = guarded) -> Outcome:
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    _local_worker_init(max(1, int(cpus)))
    return task(source, data, settings)


def _run_ray(jobs: list[Job], settings: EncodeSettings, address: str | None, workers: int,
             retries: int = 3, task_function: Callable = _ray_task, task: Task = guarded) -> Iterator[tuple[Job, Outcome]]:
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
    if isinstance(settings.roi, str):  # workers need no shared filesystem: the mask travels as bytes
        settings = replace(settings, roi=read_bytes(settings.roi))
    gpu = settings.device.startswith("cuda")
    if gpu:  # Ray shows each task the one GPU it assigned, as cuda
        settings = replace(settings, device="cuda")
    remote = ray.remote(num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0, max_retries=retries)(task_function)
    pending = {}
    for job in jobs:
        try:
            data = read_bytes(job.source)
        except LrcodecError as e:
            yield job, Outcome(None, {"error": str(e)})
            continue
        pending[remote.remote(job.source, data, settings, task)] = job
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            outcome = ray.get(done[0])
        except ray.exceptions.RayError as e:  # retries used up
            outcome = Outcome(None, {"error": f"Ray task failed: {str(e).splitlines()[0]}"})
        yield job, outcome


def execute(jobs: list[Job], settings: EncodeSettings, *, workers: int = 1, executor: str = "local",
            address: str | None = None, task: Task = guarded) -> Iterator[tuple[Job, Outcome]]:
    """Each job's outcome of ``task`` (default: the encode), in the order they finish, on the
    executor chosen: ``workers`` local processes, or Ray tasks."""
    if executor not in EXECUTORS:
        raise LrcodecError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if executor == "ray":
        return _run_ray(jobs, settings, address, workers, task=task)
    return _run_local(jobs, settings, workers, task)


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
    for job, outcome in execute(todo, settings, workers=workers, executor=executor, address=address):
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
