"""Print the Markdown tables that README.md shows, from the committed bench/results JSON files,
so every number in README can be traced to a result file and the command that made it.

    python bench/tables.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lrcodec.evaluate import bd_rates
from lrcodec.models import shipped_models

RESULTS = Path(__file__).resolve().parent / "results"


def fmt(x, digits=2):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def psnr_at(curve: dict, bpp: float, extrapolate: bool = False):
    """A curve's PSNR at this rate, linear in log-rate between its points; outside them None,
    or with ``extrapolate`` the line through the nearest end segment."""
    points = sorted(zip(curve["bpp"], curve["psnr"]))
    segments = list(zip(points, points[1:]))
    for (r0, q0), (r1, q1) in segments:
        if r0 <= bpp <= r1:
            return q0 + (q1 - q0) * math.log(bpp / r0) / math.log(r1 / r0)
    if not (extrapolate and segments):
        return None
    (r0, q0), (r1, q1) = segments[0] if bpp < points[0][0] else segments[-1]
    return q0 + (q1 - q0) * math.log(bpp / r0) / math.log(r1 / r0)


CLAIMS = [  # (paper, claim, run, coding, reference runs, reference coding)
    ("(yardstick)", "another seed: data order and noise alone", "mixed, seed 1", "hard rounding",
     ("mixed",), "hard rounding"),
    ("SUA", "SUA trains better than the existing surrogates", "sua", "hard rounding",
     ("noise", "ste", "mixed", "uq", "soft-round"), "hard rounding"),
    ("SUA", "a scale bound of 0.11 beats a tiny one (0.01)", "sua", "hard rounding",
     ("sua, sigma_min 0.01",), "hard rounding"),
    ("SUA", "the same, on `mixed`", "mixed", "hard rounding",
     ("mixed, sigma_min 0.01",), "hard rounding"),
    ("SUA", "zero-centre quantization with partial stop-gradient helps", "sua", "hard rounding",
     ("sua, no stop-gradient",), "hard rounding"),
    ("SUA", "final temperature: 0.2 (the study's base) against 0 and 0.5", "sua", "hard rounding",
     ("sua, tau_end 0", "sua, tau_end 0.5"), "hard rounding"),
    ("UQ", "UQ alone costs PSNR on a noise-trained model", "noise", "UQ coding", ("noise",), "hard rounding"),
    ("UQ", "soft rounding with soft-mean reconstruction is about level with noise + rounding",
     "soft-round", "UQ, soft-mean", ("noise",), "hard rounding"),
]


def surrogate_claims(runs: list[dict]) -> None:
    """The papers' claims against the study: the run's R-D loss against the best reference run
    at each λ, and its PSNR against the reference's curve over the λ points at the run's bpp."""
    lmbdas = sorted({r["lmbda"] for r in runs})
    by = {(r["label"], r["lmbda"]): r["kodak"] for r in runs}
    print("\n| paper | claim | compared | " + " | ".join(f"λ = {l}: R-D loss; PSNR at equal bpp" for l in lmbdas) + " |")
    print("|---|---|---|" + "---|" * len(lmbdas))
    for paper, claim, run, coding, references, ref_coding in CLAIMS:
        cells = []
        for lmbda in lmbdas:
            mine = by.get((run, lmbda), {}).get(coding)
            refs = [(label, by[(label, lmbda)][ref_coding]) for label in references if (label, lmbda) in by]
            if mine is None or not refs:
                cells.append("not run")
                continue
            label, ref = min(refs, key=lambda lr: lr[1]["rd_loss"])
            curve = {key: [by[(label, l)][ref_coding][key] for l in lmbdas if (label, l) in by]
                     for key in ("bpp", "psnr")}
            at = psnr_at(curve, mine["bpp"], extrapolate=True)
            inside = psnr_at(curve, mine["bpp"]) is not None
            psnr = "n/a" if at is None else f"{mine['psnr'] - at:+.2f} dB" + ("" if inside else "*")
            vs = f" vs {label}" if len(references) > 1 else ""
            cells.append(f"{100 * (mine['rd_loss'] / ref['rd_loss'] - 1):+.2f} %{vs}; {psnr}")
        refs = " / ".join(references) if len(references) < 3 else "best other"
        print(f"| {paper} | {claim} | {run} ({coding}) against {refs} ({ref_coding}) | " + " | ".join(cells) + " |")
    print("\n\\* extrapolated: the run's bpp lies outside the reference's two points.")


def main() -> None:
    kodak = RESULTS / "kodak.json"
    if kodak.exists():
        d = json.loads(kodak.read_text())
        print(f"From `{d['command']}` ({len(d['images'])} images, {d['date']}):\n")
        anchors = [a for a in ("WebP", "AVIF 4:4:4", "AVIF 4:4:4 speed 4") if a in d["curves"]]
        print("| model | N, M | λ | training steps (hours) | bpp | PSNR (dB) | MS-SSIM | "
              + " | ".join(f"PSNR − {a} at this bpp" for a in anchors) + " |")
        print("|---|---|---|---|---|---|---|" + "---|" * len(anchors))
        rows = {r["codec"]: r for r in d["rows"]}
        for m in d["models"]:
            r = rows[m["name"]]
            hours = " + ".join(f"{h} {'GPU' if dev == 'cuda' else dev.upper()}"
                               for dev, h in m.get("training_hours_by_device", {}).items())
            hours = hours or m.get("training_hours", "n/a")
            gaps = [psnr_at(d["curves"][a], r["bpp"]) for a in anchors]
            gaps = " | ".join("n/a" if g is None else f"{r['psnr'] - g:+.2f} dB" for g in gaps)
            print(f"| {m['name']} | {m['N']}, {m['M']} | {m['lmbda']} | {m['training_steps']} ({hours}) | {fmt(r['bpp'], 4)} | {fmt(r['psnr'])} | {fmt(r['ms_ssim'], 4)} | {gaps} |")
        print("\n| anchor | BD-rate of lrcodec (PSNR) | BD-rate of lrcodec (MS-SSIM dB) |")
        print("|---|---|---|")
        for name, v in d["bd_rate_of_lrcodec_vs"].items():
            print(f"| {name} | {fmt(v['bd_rate_psnr_pct'], 1)} % | {fmt(v['bd_rate_ms_ssim_pct'], 1)} % |")
        published = [c for c in d["curves"] if c.endswith("(CompressAI, published)")]
        print()  # the bar's anchors against fully trained models, for scale
        for name in published:
            bds = ", ".join(f"{a} {fmt(bd_rates(d['curves'][a], d['curves'][name])['bd_rate_psnr_pct'], 1)} %"
                            for a in anchors)
            print(f"BD-rate (PSNR) of the published {name.split(' (')[0]} curve itself: {bds}.")
        print("\n| model | lrcodec coder: over ideal | CompressAI coder: over ideal | lrcodec code+decode s | CompressAI compress / decompress s |")
        print("|---|---|---|---|---|")
        for s in d["coder_speed_and_efficiency"]:
            a, b = s["lrcodec"], s["compressai"]
            print(f"| {s['model']} | {fmt(a['overhead_vs_exact_ideal_pct'], 3)} % | {fmt(b['overhead_vs_exact_ideal_pct'], 3)} % "
                  f"| {fmt(a['encode_s'], 3)} / {fmt(a['decode_s'], 3)} | {fmt(b['encode_s'], 3)} / {fmt(b['decode_s'], 3)} |")
        memory = "; ".join(f"{size.split('_')[-1]}: {v['encode_peak_rss_mb']:.0f} / {v['decode_peak_rss_mb']:.0f} MB"
                           for size, v in d["memory"].items() if isinstance(v, dict))
        refine = "; ".join(f"{size}: {v['refine_peak_rss_mb']:.0f} MB" for size, v in d["memory"].items()
                           if isinstance(v, dict) and "refine_peak_rss_mb" in v)
        print(f"\n`lrcodec --help`: {fmt(d['startup_help_s'], 3)} s. Peak RSS, encode / decode: {memory}"
              + (f"; refine (not tiled): {refine}." if refine else "."))
        print(f"Not measured: {'; '.join(d['not_measured']) or 'nothing'}.")
        uq = d["uq_coding"]
        points = ", ".join(f"{b:.3f} bpp / {q:.2f} dB" for b, q in zip(uq["curve"]["bpp"], uq["curve"]["psnr"]))
        print(f"\nUniversal quantization (`--uq`) on the same models: BD-rate "
              f"{fmt(uq['bd_rate_vs_hard_rounding_pct'], 1)} % against hard rounding ({points}).")
        if "determinism" in d:
            det = d["determinism"]
            print(f"Determinism: {det['checked']}: {len(det['mismatches'])} mismatches.")
        compare = RESULTS / "compare-previous.json"
        if compare.exists():
            c = json.loads(compare.read_text())
            bd = c["bd_rate_current_vs_baseline"]
            print(f"Against the set of {c['baseline']['rev']} (`{c['command']}`): BD-rate "
                  f"{fmt(bd['bd_rate_psnr_pct'], 1)} % (PSNR), {fmt(bd['bd_rate_ms_ssim_pct'], 1)} % (MS-SSIM).")
    portability = RESULTS / "portability.json"
    if portability.exists():
        d = json.loads(portability.read_text())
        t = d["summary"]
        print(f"\nFrom `{d['command']}` ({d['date']}): {t['files']} files ({len(d['images'])} images x "
              f"{len(d['models'])} models) encoded here, decoded with {d['decoded_with']}: "
              f"{t['decode_failures']} decode failures, {t['latent_mismatches']} latent mismatches in "
              f"{t['files'] * t['variants']} decodes; pixel values differing from this machine's decode: "
              f"{fmt(t['pixels_differing_pct'], 4)} %, at most {t['max_pixel_difference']} level(s).")
        costs = ", ".join(f"{n.split('-')[-1]} {m['rate_cost_exact_vs_float_pct']:+.4f} %" for n, m in d["models"].items())
        print(f"Rate of the exact entropy parameters against the float network's sigma and mu: {costs}.")
    efforts = RESULTS / "refine.json"
    if efforts.exists():
        d = json.loads(efforts.read_text())
        s, m = d.get("summary", {}), d["machine"]
        if s.get("images_done"):
            print(f"\nFrom `{d['command']}` ({d['date']}; {m['cpu']}, {m['threads']} threads, {m['flags']}): "
                  f"{len(s['images_done'])} of 24 Kodak images done, {len(d['models'])} models:\n")
            mid = d["models"][len(d["models"]) // 2]
            print(f"| effort | iterations | BD-rate vs plain encode | R-D loss below plain | s per image ({mid}) | s per image (all models) |")
            print("|---|---|---|---|---|---|")
            for level in ["0", *map(str, d["levels"])]:
                secs = s["seconds_per_image"][level]
                its = d["presets"][level]["iterations"] if level != "0" else 0
                bd = fmt(s["bd_rate_vs_plain_pct"][level], 1) + " %" if level != "0" else "-"
                print(f"| {level} | {its} | {bd} | {fmt(s['rd_loss_gain_pct'][level], 2)} % | {fmt(secs[mid], 1)} | "
                      f"{fmt(min(secs.values()), 1)}-{fmt(max(secs.values()), 1)} |")
        if "speed" in d:
            sp = d["speed"]
            per = ", ".join(f"{n.split('-')[-1]} {fmt(v['float32'], 3)} / {fmt(v['bfloat16'], 3)}"
                            for n, v in sp["s_per_iteration"].items())
            print(f"\nSeconds per iteration on {sp['image']} ({sp['image_size'][0]}x{sp['image_size'][1]}), "
                  f"float32 / bfloat16 synthesis: {per}.")
            if "rd_loss_gain_pct" in sp:
                gains = ", ".join(f"{n.split('-')[-1]} {fmt(v['float32'], 2)} / {fmt(v['bfloat16'], 2)} %"
                                  for n, v in sp["rd_loss_gain_pct"].items())
                print(f"R-D loss gain at effort {sp['effort']} there, float32 / bfloat16: {gains}.")
        if "throughput" in d:
            t = d["throughput"]
            jobs = ", ".join(f"--jobs {k}: {fmt(v['images_per_hour'], 0)} images/hour ({fmt(v['seconds'], 1)} s)"
                             for k, v in t["jobs"].items())
            print(f"\nFolder of {len(t['images'])} Kodak images, {t['model']}, effort {t['effort']}: {jobs}.")
    schedules = RESULTS / "refine-schedules.json"
    if schedules.exists():
        d = json.loads(schedules.read_text())
        print("\nFrom `python bench/schedules.py` (SSL, lrc-mshp-q3, full Kodak images; gain = real-file R-D loss "
              "below the plain encode):\n")
        by_name: dict = {}
        for key, run in d["runs"].items():
            by_name.setdefault(key.rsplit("/", 1)[1], {})[key.split("/")[1]] = run
        common = sorted(set.intersection(*(set(v) for v in by_name.values())))
        print(f"| schedule | iterations | lr | T decay | lr/10 after | gain on {' + '.join(common)} | "
              "gain on all its images (n) |")
        print("|---|---|---|---|---|---|---|")
        for name, per in sorted(by_name.items(), key=lambda kv: -sum(kv[1][i]["gain_pct"] for i in common)):
            cfg = next(iter(per.values()))["settings"]
            drop = cfg.get("lr_drop", 1.0)
            print(f"| {name} | {cfg['iterations']} | {cfg.get('lr', 0.005)} | {cfg.get('decay', 0.001):.4g} | "
                  f"{drop if drop < 1 else 'never'}{' (patience ' + str(cfg['patience']) + ')' if cfg.get('patience') else ''} | "
                  f"{fmt(sum(per[i]['gain_pct'] for i in common) / len(common), 2)} % | "
                  f"{fmt(sum(r['gain_pct'] for r in per.values()) / len(per), 2)} % ({len(per)}) |")
    refine = RESULTS / "refine-methods.json"
    if refine.exists():
        d = json.loads(refine.read_text())
        print(f"\nFrom `{d['command']}` (images {', '.join(d['images'])}, crop {d['crop']}, {d['iterations']} iterations):\n")
        current = {c["name"]: c.get("model_id") for c in shipped_models()}
        if any(d.get("model_ids", {}).get(n) != current.get(n) for n in d["models"]):
            print("These refinement numbers were measured with earlier weights of these models than the ones "
                  "in models/ now; `make bench-refine-methods` refreshes them.\n")
        print("| method | BD-rate vs base encode | true-loss reduction at 100 / 250 / 500 iterations |")
        print("|---|---|---|")
        for m, v in d["bd_rate_vs_base_pct"].items():
            g = d["true_loss_reduction_at_iterations"][m]
            gains = " / ".join(fmt(100 * g[k], 1) + " %" for k in ("100", "250", "500", "1000") if k in g)
            print(f"| {m} | {fmt(v, 1)} % | {gains} |")
        for name, s in d["speed_full_image"].items():
            print(f"\n{name}: {fmt(s['s_per_iteration'], 3)} s per iteration on {s['image']} ({s['size'][0]}x{s['size'][1]}, {s['threads']} threads)")
            if "ssl_true_loss_reduction" in s:
                g = s["ssl_true_loss_reduction"]
                print(f"  SSL on the full image, true-loss reduction after {' / '.join(g)} iterations: "
                      f"{' / '.join(fmt(100 * v, 1) + ' %' for v in g.values())}; "
                      f"{fmt(s['bpp'][0], 4)} -> {fmt(s['bpp'][1], 4)} bpp, {fmt(s['psnr'][0])} -> {fmt(s['psnr'][1])} dB")
    sur = RESULTS / "surrogates.json"
    if sur.exists():
        d = json.loads(sur.read_text())
        print(f"\nFrom `{d['command']}` ({d['protocol']} protocol, {d['runs_done']} of {d['runs_planned']} runs, "
              f"{d['date']}; config {json.dumps(d['config'])}):\n")
        print("| λ | run | steps | bpp | PSNR (dB) | R-D loss (hard rounding) | vs best | R-D loss, UQ coding | "
              "R-D loss, UQ soft-mean |")
        print("|---|---|---|---|---|---|---|---|---|")
        best = {}
        for r in d["runs"]:
            best[r["lmbda"]] = min(best.get(r["lmbda"], math.inf), r["kodak"]["hard rounding"]["rd_loss"])
        for r in sorted(d["runs"], key=lambda r: (r["lmbda"], r["kodak"]["hard rounding"]["rd_loss"])):
            k = r["kodak"]
            extra = " | ".join(fmt(k[v]["rd_loss"], 4) if v in k else "" for v in ("UQ coding", "UQ, soft-mean"))
            h = k["hard rounding"]
            print(f"| {r['lmbda']} | {r['label']} | {r['steps']} | {fmt(h['bpp'], 4)} | {fmt(h['psnr'])} | "
                  f"{fmt(h['rd_loss'], 4)} | {100 * (h['rd_loss'] / best[r['lmbda']] - 1):+.2f} % | {extra} |")
        surrogate_claims(d["runs"])
    fam = RESULTS / "families.json"
    if fam.exists():
        d = json.loads(fam.read_text())
        print(f"\nFrom `{d['command']}` ({d['images']} Kodak images, {d['date']}):\n")
        print("| model | bpp | PSNR (dB) | R-D loss | encode / decode s | refinement gain at effort 2 (s per image) |")
        print("|---|---|---|---|---|---|")
        for r in d["pairs"]:
            for label in ("context", "base"):
                k, t, g = r[label + "_kodak"], r[label + "_speed"], r.get(label + "_refinement")
                gain = f"{fmt(g['rd_loss_gain_pct'])} % ({fmt(g['seconds_per_image'], 1)} s)" if g else "n/a"
                change = f" ({r['rd_loss_change_pct']:+.2f} %)" if label == "context" else ""
                print(f"| {Path(r[label]).stem} | {fmt(k['bpp'], 4)} | {fmt(k['psnr'])} | {fmt(k['rd_loss'], 4)}{change} | "
                      f"{fmt(t['encode_s'])} / {fmt(t['decode_s'])} | {gain} |")
    crops = RESULTS / "crops.json"
    if crops.exists():
        d = json.loads(crops.read_text())
        print(f"\nFrom `{d['command']}` ({d['image']}, crop {tuple(d['box'])}, {d['date']}):\n")
        print("| codec | setting | bytes | bpp | PSNR whole image (dB) | PSNR crop (dB) |")
        print("|---|---|---|---|---|---|")
        for r in d["rows"]:
            setting = f"{r['model']}, effort {r['effort']}" if "model" in r else f"quality {r['quality']}"
            print(f"| {r['codec']} | {setting} | {r['bytes']} | {fmt(r['bpp'], 4)} | {fmt(r['psnr_whole_image'])} | "
                  f"{fmt(r['psnr_crop'])} |")


if __name__ == "__main__":
    main()
