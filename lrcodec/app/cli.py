"""The ``lrcodec`` command: parses options, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 a runtime or data error (one ``Error: ...`` line on stderr),
2 a usage error. ``--debug`` shows tracebacks. Heavy modules are imported inside commands
so that ``lrcodec --help`` answers quickly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import JSON_SCHEMA_VERSION, __version__
from ..devices import DEVICE_HELP, check_device
from ..errors import LrcodecError
from ..families import ARCHITECTURES, ZOO
from ..settings import (DEFAULT_EFFORT, EFFORTS, EXECUTORS, METHODS, OVERFIT_EFFORTS, PRECISIONS, RECONSTRUCTIONS,
                        SSL_SHARPNESS, SSL_SHARPNESS_THREE_CLASS, SURROGATES, TUNES, EncodeSettings, RefineSettings,
                        TrainConfig)

E, R, T = EncodeSettings(), RefineSettings(), TrainConfig()  # every option's default is read from these

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _default_output(source: str, suffix: str) -> str:
    if source == "-":
        return "-"
    return str(Path(source).with_suffix(suffix))


def _say(message: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(message, err=True)


def model_options(f):
    """--model / --quality, shared by every command that picks a model."""
    f = click.option("--quality", "-q", type=int, default=None,
                     help="Rate point: 1 (smallest files) up to the number of shipped models; for a "
                          "CompressAI zoo name its quality (ranges: lrcodec models); for a variable-rate "
                          "network its rate level 1-8.")(f)
    f = click.option("--model", "-m", "model_name", default=None, metavar="NAME|PATH",
                     help=f"Shipped model name, CompressAI zoo name ({', '.join(ZOO)}) or checkpoint file "
                          f"(.safetensors, or a CompressAI state dict of any architecture: {', '.join(ARCHITECTURES)}). "
                          "Default: shipped model of --quality. overfit, overfit-500 or overfit-2000: no "
                          "weights, a decoder learned for each image (slow; docs/overfit.md).")(f)
    return f


def reconstruction_options(f):
    """--reconstruction / --soft-alpha, for the commands that quantize."""
    f = click.option("--soft-alpha", type=int, default=None, metavar="ALPHA",
                     help="Soft-rounding alpha of soft-mean reconstruction (default: the one the "
                          "model was trained with).")(f)
    f = click.option("--reconstruction", type=click.Choice(RECONSTRUCTIONS), default=E.reconstruction,
                     show_default=True,
                     help="UQ reconstruction: k + u, or the soft-rounding conditional mean r_alpha(k + u) "
                          "for models trained with soft rounding (implies --uq).")(f)
    return f


def output_options(f, many: bool = True):
    """-o / --force; ``many``: the command also takes several inputs into a folder."""
    f = click.option("--force", "-f", is_flag=True,
                     help="Overwrite existing outputs" + (" (with many inputs: redo them, not skip them)." if many else "."))(f)
    f = click.option("--output", "-o", default=None, metavar="PATH",
                     help="Output file, '-' for stdout" + (", or the folder for several inputs or a folder" if many else "")
                          + ". Default: the input's name with a new suffix.")(f)
    return f


def _check_binary_stdout(output: str) -> None:
    if output == "-" and sys.stdout.isatty():
        raise LrcodecError("refusing to write binary data to a terminal; use -o FILE or a pipe")


class _Group(click.Group):
    """Runs a command and turns LrcodecError (and stray failures) into one-line errors."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LrcodecError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as e:  # a bug or an unforeseen input: still one line unless --debug
            if ctx.obj and ctx.obj.get("debug"):
                raise
            if isinstance(e, ModuleNotFoundError) and e.name in ("torch", "compressai"):
                click.echo(f"Error: this command needs {e.name}, which this decode-only install leaves out: "
                           "pip install lrcodec", err=True)
                sys.exit(1)
            first = str(e).splitlines()[0] if str(e) else ""
            click.echo(f"Error: {type(e).__name__}: {first} (rerun with --debug for details)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx, debug):
    """lrcodec: a learned image codec (hyperprior models, range coding, latent refinement).

    \b
    Example:
      lrcodec encode photo.png            # writes photo.lrc
      lrcodec decode photo.lrc -o out.png
      lrcodec encode - -o - < a.png | lrcodec decode - -o b.png
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    import warnings

    def one_line_warning(message, category, *args, **kwargs):
        click.echo(f"Warning: {message}", err=True)

    warnings.showwarning = one_line_warning
    # The command's own size limit (--max-pixels) guards against decompression bombs; Pillow's
    # warning for images between its limit and twice it would only repeat it.
    warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")


def batch_options(f):
    """Options of the commands that take many inputs."""
    f = click.option("--summary", default=None, metavar="FILE",
                     help="Write one row per image (bytes, bpp, PSNR, seconds, status) as JSON, or CSV "
                          "for a .csv name.")(f)
    f = click.option("--address", default=None, metavar="ADDR",
                     help="Ray cluster to run on (default: a local Ray instance with --jobs CPUs).")(f)
    f = click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
                     help="local: --jobs worker processes here; ray: one Ray task per image.")(f)
    f = click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
                     help="Images in parallel (worker processes; the CPU threads are split between them).")(f)
    f = device_option("Where the transforms and refinement run (auto: CUDA if present; a plain encode of a "
                      "hyperprior model runs on the CPU without torch unless cuda is asked for). The symbols are "
                      "always decided on the CPU's exact path, so files decode anywhere.")(f)
    return f


def device_option(help: str):
    return click.option("--device", default=E.device, show_default=True, metavar=DEVICE_HELP,
                        callback=lambda ctx, param, value: _usage(check_device, value), help=help)


def _usage(check, value):
    """A library check's LrcodecError as click's usage error."""
    try:
        return check(value)
    except LrcodecError as e:
        raise click.BadParameter(str(e)) from None


max_pixels_option = click.option("--max-pixels", type=click.IntRange(1), default=E.max_pixels, show_default=True,
                                 help="The largest image (or file) in pixels that is read.")


def quantizer_cli_options(f):
    """--uq / --seed / --reconstruction / --soft-alpha / --drop-alpha / --max-pixels."""
    f = max_pixels_option(f)
    f = click.option("--drop-alpha", is_flag=True, default=E.drop_alpha,
                     help="Code the colours only of an image with alpha (which is otherwise kept, losslessly).")(f)
    f = reconstruction_options(f)
    f = click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=E.seed, show_default=True,
                     help="Dither seed for --uq (and the sampler's seed in refinement).")(f)
    f = click.option("--uq", is_flag=True, default=E.uq, help="Universal quantization with a dither from --seed.")(f)
    return f


def _batch_mode(inputs: tuple[str, ...], output: str | None) -> bool:
    return len(inputs) > 1 or any(Path(i).is_dir() for i in inputs) or bool(output and Path(output).is_dir())


def _encode_many(inputs, output, settings, force, jobs, executor, address, summary, quiet) -> None:
    """Encode files and folders into the folder ``output``; one bad file does not stop the rest."""
    from .batch import plan, run, write_summary

    if not output or output == "-":
        raise LrcodecError("several inputs or a folder need an output folder: -o DIR")
    if "-" in inputs:
        raise LrcodecError("'-' (stdin) takes a single input")
    jobs_planned = plan(inputs, output)
    failed = []

    def on_done(row, bar=None):
        if row["status"] == "failed":
            failed.append(row)
            message = row["error"] if row["error"].startswith(row["input"]) else f"{row['input']}: {row['error']}"
            click.echo(f"\nError: {message}", err=True)
        if bar is not None:
            bar.update(1)

    if quiet:
        rows = run(jobs_planned, settings, workers=jobs, executor=executor, address=address, force=force,
                   on_done=on_done)
    else:
        with click.progressbar(length=len(jobs_planned), label="encoding", file=sys.stderr,
                               show_pos=True, show_eta=True) as bar:
            rows = run(jobs_planned, settings, workers=jobs, executor=executor, address=address, force=force,
                       on_done=lambda row: on_done(row, bar))
    if summary:
        write_summary(summary, rows, settings)
    done = [r for r in rows if r["status"] == "ok"]
    skipped = sum(r["status"] == "skipped" for r in rows)
    total = sum(r["bytes"] for r in done)
    _say(f"{len(done)} encoded ({total} bytes), {skipped} skipped (exist; --force redoes them), "
         f"{len(failed)} failed -> {output}", quiet)
    if failed:
        sys.exit(1)


def _encode_one(input, output, settings, force, summary, quiet) -> None:
    from ..encoder import encode_bytes
    from .batch import write_summary
    from ..imageio import read_bytes, write_atomic
    from .progress import ProgressBar

    output = output or _default_output(input, ".lrc")
    _check_binary_stdout(output)
    if output != "-" and Path(output).exists() and not force:
        raise LrcodecError(f"output {output} exists (use --force to overwrite)")
    progress = ProgressBar.for_terminal("encode", quiet)
    try:
        outcome = encode_bytes(read_bytes(input), "stdin" if input == "-" else input, settings, progress)
    finally:
        if progress:
            progress.close()
    write_atomic(output, outcome.data, force)
    r = outcome.row
    if summary:
        write_summary(summary, [{"input": input, "output": output, "status": "ok", **r}], settings)
    size = f"{r['width']}x{r['height']}, model {r['model']}, {r['seconds']:.1f} s"
    if "decoder_bytes" in r:
        _say(f"{input} -> {output}: {r['bytes']} bytes ({r['decoder_bytes']} of them the decoder), {r['bpp']:.4f} bpp, "
             f"PSNR {r['psnr']:.2f} dB after {r['iterations']} iterations ({size})", quiet)
    elif "base_bpp" in r:
        note = " (refinement did not help; plain encode kept)" if r["kept_base"] else ""
        _say(f"{input} -> {output}: {r['bytes']} bytes, {r['base_bpp']:.4f} -> {r['bpp']:.4f} bpp, PSNR "
             f"{r['base_psnr']:.2f} -> {r['psnr']:.2f} dB after {r['iterations']} iterations ({size}){note}", quiet)
    else:
        _say(f"{input} -> {output}: {r['bytes']} bytes, {r['bpp']:.4f} bpp ({size})", quiet)


def _checked(settings: EncodeSettings) -> EncodeSettings:
    """The settings, with bad combinations refused before any work; an overfitted encode also
    gets the allocator setting that makes its iterations 3-4x faster (this process is ours)."""
    from ..format.overfit import is_overfit

    if is_overfit(settings.model):
        from ..learn.overfit import keep_freed_memory

        settings.overfit_settings(1)
        keep_freed_memory()
    else:
        settings.refine_settings()
    return settings


def _encode(inputs, output, settings: EncodeSettings, force, jobs, executor, address, summary, quiet) -> None:
    """One input into one file (or stdout), or many into a folder."""
    _checked(settings)
    if _batch_mode(inputs, output):
        _encode_many(inputs, output, settings, force, jobs, executor, address, summary, quiet)
    else:
        _encode_one(inputs[0], output, settings, force, summary, quiet)


def _effort_help() -> str:
    levels = ", ".join(f"{e}: {s.iterations} iterations in at most {s.time_limit:.0f} s" for e, s in EFFORTS.items() if s)
    overfit = ", ".join(f"{e}: {n}" for e, n in OVERFIT_EFFORTS.items())
    return (f"0: plain encode; higher: SSL refinement ({levels}; a large image gets the iterations that fit). "
            f"The default is {DEFAULT_EFFORT}; README's effort table gives what each level buys. The overfitted "
            f"family's iterations: {overfit}.")


lambda_option = click.option(
    "--lmbda", type=click.FloatRange(0, min_open=True), default=None,
    help="Rate-distortion trade-off the refinement optimizes (default: the model's; for a checkpoint without one, "
         "the lambda of the CompressAI zoo quality whose Kodak rate is nearest this image's plain encode).")


def _metadata_kinds(ctx, param, value: str) -> str:
    kinds = value.split(",")
    if value in ("all", "none") or (kinds and all(k in ("icc", "exif", "xmp") for k in kinds)):
        return value
    raise click.BadParameter("all, none, or icc, exif and xmp joined by commas (icc,exif)")


def tuning_options(f):
    """--tune / --roi: what refinement weighs against the rate, and where."""
    f = click.option("--roi", default=None, metavar="MASK",
                     help="Region of interest: a greyscale image of the input's shape (any size); brighter pixels "
                          "get more of the bits (white weighs 10x black). Needs an effort above 0; the file "
                          "decodes as any other. docs/tuning.md.")(f)
    f = click.option("--tune", type=click.Choice(TUNES), default=E.tune, show_default=True,
                     help="The distortion refinement minimizes with the rate: psnr (MSE) or ms-ssim (structure; "
                          "about the same rate at a quality level). Needs an effort above 0.")(f)
    return f


metadata_option = click.option(
    "--metadata", default=EncodeSettings.metadata, show_default=True, callback=_metadata_kinds,
    metavar="all|none|icc|exif|xmp",
    help="What of the input's ICC profile, EXIF (its orientation set to 1: the pixels are upright) and XMP "
         "the file keeps and decode writes back (kinds joined by commas: icc,exif).")


def time_limit_option(default_help: str):
    return click.option("--time-limit", type=click.FloatRange(0), default=None, metavar="SECONDS",
                        help=f"Seconds one image's refinement may take: fewer iterations where they do not fit "
                             f"(0: no limit; default: {default_help}).")


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@output_options
@model_options
@click.option("--effort", "-e", type=click.IntRange(0, max(EFFORTS)), default=DEFAULT_EFFORT, show_default=True,
              help=_effort_help())
@time_limit_option("the effort's")
@lambda_option
@tuning_options
@quantizer_cli_options
@metadata_option
@batch_options
@click.option("--quiet", is_flag=True, help="No progress and no summary on stderr.")
def encode(inputs, output, force, model_name, quality, effort, time_limit, lmbda, tune, roi, uq, seed, reconstruction,
           soft_alpha, drop_alpha, max_pixels, metadata, device, jobs, executor, address, summary, quiet):
    """Encode images into lrcodec files: one file, or files and folders into -o DIR.

    \b
    Examples:
      lrcodec encode photo.png -o photo.lrc --quality 2
      lrcodec encode photo.png --effort 0            # plain encode, fastest
      lrcodec encode photos/ more.png -o encoded/ --jobs 2 --summary run.csv
    """
    settings = EncodeSettings(model=model_name, quality=quality, effort=effort, uq=uq, seed=seed,
                              reconstruction=reconstruction, soft_alpha=soft_alpha, drop_alpha=drop_alpha,
                              max_pixels=max_pixels, device=device, time_limit=time_limit, lmbda=lmbda,
                              metadata=metadata, tune=tune, roi=roi)
    _encode(inputs, output, settings, force, jobs, executor, address, summary, quiet)


@main.command()
@click.argument("input", metavar="INPUT")
@lambda f: output_options(f, many=False)
@model_options
@max_pixels_option
@click.option("--drop-alpha", is_flag=True,
              help="Write the colours only of a file with alpha (which PNG, WebP, AVIF and TIFF keep; JPEG cannot).")
@click.option("--quiet", is_flag=True, help="No progress and no summary on stderr.")
def decode(input, output, force, model_name, quality, max_pixels, drop_alpha, quiet):
    """Decode an lrcodec file into an image (PNG unless the output name says otherwise).

    The model is found from the file's model id; --model is needed only for models that
    are not shipped (zoo names, checkpoint files). A hyperprior model decodes without torch;
    a checkpoint is exported for that once, with torch, into the cache. A file with alpha
    decodes to RGBA (LA for grey).

    \b
    Example: lrcodec decode photo.lrc -o photo.png
    """
    from ..codec import decode_image
    from ..format.overfit import is_overfit
    from ..imageio import image_bytes, read_bytes, write_atomic
    from .progress import ProgressBar

    output = output or _default_output(input, ".png")
    _check_binary_stdout(output)
    data = read_bytes(input)
    model = None
    if model_name and is_overfit(model_name):
        raise LrcodecError("an overfitted file carries its own decoder: decode it without --model")
    if model_name:
        from ..runtime import runtime_for

        model = runtime_for(model_name, quality, quiet)
        if model is None:  # a zoo name, a rate level or an architecture that decodes with torch only
            from ..models import load_model

            model = load_model(model_name, quality)
    progress = ProgressBar.for_terminal("decode", quiet)
    try:
        image = decode_image(data, model, max_pixels, progress, drop_alpha)
        if progress:
            progress("writing", 0, 1)
        encoded = image_bytes(image, output)
    finally:
        if progress:
            progress.close()
    write_atomic(output, encoded, force)
    _say(f"{input} -> {output}: {image.width}x{image.height} {image.mode}", quiet)


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@output_options
@model_options
@click.option("--method", type=click.Choice(METHODS), default=R.method, show_default=True,
              help="Soft-rounding sampler (SGA+ methods, SGA/atanh, baselines).")
@click.option("--three-class", is_flag=True, default=R.three_class, help="Three-class rounding (ssl, linear, cosine).")
@click.option("--iterations", type=click.IntRange(0), default=R.iterations, show_default=True)
@click.option("--lr", type=float, default=R.lr, show_default=True)
@click.option("--lr-drop", type=click.FloatRange(0, 1, min_open=True), default=R.lr_drop, show_default=True,
              help="Fraction of the iterations after which the lr falls to a tenth (1: never).")
@click.option("--a", "a", type=float, default=R.a,
              help=f"SSL sharpness (default {SSL_SHARPNESS}; {SSL_SHARPNESS_THREE_CLASS} with --three-class).")
@click.option("--tmax", type=float, default=R.tmax, show_default=True, help="Temperature upper bound.")
@click.option("--decay", type=float, default=R.decay, show_default=True, help="Temperature decay rate.")
@click.option("--patience", type=click.IntRange(0), default=R.patience, show_default=True,
              help=f"Stop after this many true-loss evaluations (every {R.eval_every} iterations) without a better one.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=R.precision, show_default=True,
              help="Synthesis inside the loop (auto: bfloat16 where the hardware has it natively).")
@lambda_option
@click.option("--target-bpp", type=float, default=None, help="Search lambda for this rate (several refinements).")
@time_limit_option("none")
@tuning_options
@quantizer_cli_options
@metadata_option
@batch_options
@click.option("--quiet", is_flag=True, help="No progress and no summary on stderr.")
def refine(inputs, output, force, model_name, quality, method, three_class, iterations, lr, lr_drop, a, tmax,
           decay, patience, precision, lmbda, target_bpp, time_limit, tune, roi, uq, seed, reconstruction, soft_alpha,
           drop_alpha, max_pixels, metadata, device, jobs, executor, address, summary, quiet):
    """Encode with per-image latent refinement, every knob exposed (`encode --effort` has presets).

    The output is an ordinary lrcodec file for `lrcodec decode`.

    \b
    Examples:
      lrcodec refine photo.png --method ssl --iterations 500 -o photo.lrc
      lrcodec refine kodak/ -o refined/ --iterations 100 --jobs 2 --summary refined.json
    """
    refinement = RefineSettings(method=method, three_class=three_class, iterations=iterations, lr=lr, a=a,
                                tmax=tmax, decay=decay, lr_drop=lr_drop, patience=patience, lmbda=lmbda,
                                precision=precision)
    settings = EncodeSettings(model=model_name, quality=quality, refine=refinement, target_bpp=target_bpp, uq=uq,
                              seed=seed, reconstruction=reconstruction, soft_alpha=soft_alpha,
                              drop_alpha=drop_alpha, max_pixels=max_pixels, device=device, time_limit=time_limit,
                              metadata=metadata, tune=tune, roi=roi)
    _encode(inputs, output, settings, force, jobs, executor, address, summary, quiet)


@main.command(name="eval")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@model_options
@click.option("--effort", "-e", type=click.IntRange(0, max(EFFORTS)), default=DEFAULT_EFFORT, show_default=True,
              help="As encode's: the files measured are the ones encode writes.")
@click.option("--method", default=None, type=click.Choice(METHODS),
              help="Research: refine with this sampler for --iterations instead of an effort's preset.")
@click.option("--iterations", type=click.IntRange(0), default=R.iterations, show_default=True,
              help="With --method: the refinement's iterations.")
@time_limit_option("the effort's")
@lambda_option
@tuning_options
@click.option("--uq", is_flag=True, default=E.uq, help="Universal quantization.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=E.seed, show_default=True,
              help="Dither seed for --uq (and the sampler's seed in refinement).")
@reconstruction_options
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
              help="Images in parallel processes (threads shared fairly).")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True)
@click.option("--address", default=None, metavar="ADDR", help="Ray cluster to run on.")
@device_option("Where the transforms and refinement run (auto: CUDA if present).")
@click.option("--json", "json_out", default=None, metavar="OUT", help="Write per-image results and averages as JSON.")
@click.option("--csv", "csv_out", default=None, metavar="OUT", help="Write per-image results as CSV.")
def evaluate(paths, model_name, quality, effort, method, iterations, time_limit, lmbda, tune, roi, uq, seed,
             reconstruction, soft_alpha, jobs, executor, address, device, json_out, csv_out):
    """Measure bpp (from real files), PSNR, MS-SSIM and timings on images or folders: each file
    is what `encode` with the same options writes, decoded as `decode` does.

    \b
    Example: lrcodec eval ../shared/data/kodak --quality 3 --json kodak.json
    """
    from .evaluate import collect_images, evaluate_paths
    from ..imageio import write_atomic

    files = collect_images(list(paths))
    refine = None if method is None else RefineSettings(method=method, iterations=iterations)
    settings = EncodeSettings(model=model_name, quality=quality, effort=effort, refine=refine, lmbda=lmbda, tune=tune,
                              roi=roi, uq=uq, seed=seed, reconstruction=reconstruction, soft_alpha=soft_alpha,
                              device=device, time_limit=time_limit)
    _checked(settings)
    with click.progressbar(length=len(files), label="evaluating", file=sys.stderr) as bar:
        rows = evaluate_paths(files, settings, jobs, executor, address, on_done=lambda: bar.update(1))
    keys = ["bpp", "psnr", "ms_ssim", "encode_s", "decode_s"]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    click.echo(f"{'image':20} {'bytes':>8} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8} {'enc s':>7} {'dec s':>7}")
    for r in rows + [{"image": "mean", "bytes": sum(r["bytes"] for r in rows) / len(rows), **mean}]:
        click.echo(f"{r['image'][:20]:20} {r['bytes']:>8.0f} {r['bpp']:>7.4f} {r['psnr']:>7.2f} "
                   f"{r['ms_ssim']:>8.4f} {r['encode_s']:>7.2f} {r['decode_s']:>7.2f}")
    if json_out:
        from dataclasses import asdict

        options = {"effort": effort, "method": method or ("base" if effort == 0 else "ssl"), "iterations": iterations, "tune": tune, "roi": roi,
                   "uq": uq, "reconstruction": reconstruction, "soft_alpha": soft_alpha}
        report = {"schema_version": JSON_SCHEMA_VERSION, "images": rows, "mean": mean, "options": options,
                  "settings": asdict(settings)}
        write_atomic(json_out, (json.dumps(report, indent=2, default=str) + "\n").encode(), True)
    if csv_out:
        import csv
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(csv_out, buf.getvalue().encode(), True)


@main.command()
@click.argument("input", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(input, as_json):
    """Show the header of an lrcodec file (and which shipped model made it).

    \b
    Example: lrcodec info photo.lrc --json
    """
    from ..format import alpha
    from ..format.bitstream import METADATA_KINDS, OVERFIT_VERSION, parse_header, records
    from ..format.overfit import profile_of_id
    from ..imageio import read_bytes
    from ..metrics import bits_per_pixel
    from ..models import shipped_models

    data = read_bytes(input)
    header = parse_header(data, max_pixels=2**64)
    d = {"schema_version": JSON_SCHEMA_VERSION, **header.describe()}
    section = records(data, header)
    d["metadata"] = {kind: len(raw) for kind, raw in section.items() if kind in METADATA_KINDS}  # kind -> bytes
    d["alpha"] = alpha.describe(section["alpha"]) if "alpha" in section else None  # its coding (format 5)
    d["file_bytes"] = len(data)
    d["bpp"] = bits_per_pixel(8 * len(data), header.width * header.height)
    # current or retired: a retired model still decodes its files
    d["model"] = next((c["name"] for c in shipped_models(current_only=False) if c.get("model_id") == d["model_id"]), None)
    if header.version == OVERFIT_VERSION:  # the decoder is in the file: its profile, and its share of the bytes
        found = profile_of_id(header.model_id)
        d["model"] = found and found.name
        d.update(macs_per_pixel=found and round(found.macs_per_pixel), decoder_bytes=header.z_length,
                 latent_bytes=header.y_length)
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            click.echo(f"{k:14} {v}")


@main.command()
@click.argument("folder", type=click.Path(file_okay=False), default=".")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port on 127.0.0.1 (0: any free one).")
def serve(folder, port):
    """Show a folder's .lrc files in a browser: serves the viewer page on localhost, which decodes
    them itself (files dropped on it too). Nothing is uploaded; Ctrl-C stops it.

    \b
    Example: lrcodec serve photos/   (then open the address it prints)
    """
    from .serve import server

    httpd = server(Path(folder), port=port)
    click.echo(f"lrcodec: serving {Path(folder).resolve()} at http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C stops)",
               err=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json):
    """List the shipped models: the current set (quality 1 = lowest rate), then retired models,
    which are kept so that their files still decode, and the CompressAI zoo names."""
    from ..families import ZOO
    from ..models import shipped_models

    current = shipped_models()
    retired = [c for c in shipped_models(current_only=False) if c not in current]
    if as_json:
        # "shipped": the name of "current" before retired models existed, kept for old scripts.
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, "current": current, "shipped": current,
                               "retired": retired, "zoo": list(ZOO)}, indent=2))
        return
    click.echo(f"{'q':>2} {'name':24} {'id':16} {'arch':10} {'N':>4} {'M':>4} {'lambda':>8} {'kodak bpp':>9} {'PSNR':>6}")
    for q, c in [(str(i), c) for i, c in enumerate(current, 1)] + [("-", c) for c in retired]:
        k = c.get("kodak", {})
        click.echo(f"{q:>2} {c['name']:24} {c.get('model_id', ''):16} {c.get('arch', ''):10} {c.get('N', 0):>4} "
                   f"{c.get('M', 0):>4} {c.get('lmbda', 0):>8.4f} {k.get('bpp', float('nan')):>9.4f} "
                   f"{k.get('psnr', float('nan')):>6.2f}")
    if retired:
        click.echo("-: retired (decodes its files; not chosen by --quality)")
    click.echo("CompressAI zoo, from torch's hub cache ($TORCH_HOME; --model NAME -q Q):")
    for name, (arch, qualities) in ZOO.items():
        click.echo(f"   {name:26} {arch:25} -q 1..{qualities}")


@main.command()
@click.option("--data", default=T.data, show_default=True, help="Folder of training images.")
@click.option("--lmbda", type=float, default=T.lmbda, show_default=True, help="Rate-distortion trade-off.")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default=T.arch,
              help="Architecture [default: mean-scale, or the --init model's].")
@click.option("--N", "N", type=int, default=T.N, help="Transform channels [default: 64, or the --init model's].")
@click.option("--M", "M", type=int, default=T.M,
              help="Latent channels [default: 96, or the --init model's; more widens it: train the new "
                   "channels with --surrogate noise first, see docs/training.md].")
@click.option("--steps", type=int, default=T.steps, show_default=True)
@click.option("--batch-size", type=int, default=T.batch_size, show_default=True)
@click.option("--crop", type=int, default=T.crop, show_default=True)
@click.option("--lr", type=float, default=T.lr, show_default=True)
@click.option("--context-lr", type=float, default=T.context_lr,
              help="channel-context: lr of the slice networks [default: --lr].")
@click.option("--decay-start", type=float, default=T.decay_start, show_default=True,
              help="Fraction of the steps after which the lr decays (cosine) to lr/20.")
@click.option("--surrogate", type=click.Choice(SURROGATES), default=T.surrogate, show_default=True)
@click.option("--sigma-min", type=float, default=T.sigma_min, show_default=True,
              help="Lower bound of the scale in training and in the coder.")
@click.option("--alpha-max", type=float, default=T.alpha_max, show_default=True, help="soft-round: final alpha.")
@click.option("--tau-end", type=float, default=T.tau_end, show_default=True,
              help="sua: final temperature (0: hard rounding; docs/training.md).")
@click.option("--sua-stop-gradient/--no-sua-stop-gradient", default=T.sua_stop_gradient, show_default=True,
              help="sua: the partial stop-gradient of zero-centred quantization (off: an ablation).")
@click.option("--init", default=T.init, metavar="NAME|PATH",
              help="Start from these weights (lambda fine-tuning, widening with a larger --M).")
@click.option("--resume", default=None, metavar="CKPT", help="Continue a run exactly from its checkpoint.")
@click.option("--checkpoint-every", type=int, default=T.checkpoint_every, show_default=True)
@click.option("--max-minutes", type=float, default=T.max_minutes, help="Stop with a checkpoint after this long.")
@click.option("--stop-at", type=int, default=None, help="End this invocation at this step (schedule unchanged).")
@click.option("--seed", type=int, default=T.seed, show_default=True)
@device_option("Where training runs (auto: CUDA if present).")
@click.option("--out", default=T.out, show_default=True,
              help="Where the weights and model card go (checkpoints: runs/NAME/).")
def train(**options):
    """Train a hyperprior model.

    \b
    Example: lrcodec train --lmbda 0.0067 --steps 20000 --out models/my-model
    """
    from ..learn.train import train as run

    resume, stop_at = options.pop("resume"), options.pop("stop_at")
    path = run(TrainConfig(**options), resume=resume, stop_at=stop_at)
    _say(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
