"""The README's measured tables, written from the tools' JSON outputs (no hand-copied numbers).

    hyperisp bench --model isp --megapixels 12 --json > experiments/results/bench_isp_12mp.json
    hyperisp bench --model denoise --megapixels 12 --json > experiments/results/bench_denoise_12mp.json
    python experiments/readme_tables.py bench experiments/results/bench_isp_12mp.json \
        experiments/results/bench_denoise_12mp.json --write README.md

    hyperisp eval denoise ... --json > experiments/results/eval_denoise_shipped.json
    python experiments/readme_tables.py eval experiments/results/eval_denoise_shipped.json --write README.md

Prints the markdown table; ``--write FILE`` replaces the lines between
``<!-- table:NAME:start -->`` and ``<!-- table:NAME:end -->`` in FILE, NAME being "bench" or
"eval-" plus the evaluated task (``--block`` overrides it).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


METHOD_NAMES = {"menon": "Menon 2007", "libraw": "LibRaw AHD (rawpy)", "nlm": "OpenCV NLM", "bm3d": "BM3D",
                "noisy": "noisy input", "sigma15": "σ=15", "sigma25": "σ=25", "sigma50": "σ=50", "sidd": "SIDD pair",
                "sidd_mean_fixed": "SIDD, mean offset removed"}


def bench_table(reports: list[dict]) -> str:
    """`hyperisp bench --json` reports -> rows: model, case, s/MP, GFLOP/s (% of peak), peak RSS, note."""
    lines = ["| model | case | s / MP | GFLOP/s (of matmul peak) | peak RSS | note |", "|---|---|---|---|---|---|"]
    for report in reports:
        for case in report["cases"]:
            gflops = "-"
            if case["gflop_per_s"] is not None:
                share = f" ({100 * case['peak_fraction']:.1f} %)" if case["peak_fraction"] else ""
                gflops = f"{case['gflop_per_s']:.1f}{share}"
            lines.append(f"| {report['model']} | {case['name']} | {case['s_per_mp']:.2f} | {gflops} | "
                         f"{case['peak_rss_mb'] / 1024:.2f} GB | {case['note']} |")
    first = reports[0]
    peaks = [f"{r['matmul_peak_gflops']:.0f}" for r in reports if r.get("matmul_peak_gflops")]
    repeats = first.get("repeats")
    lines += ["", f"({first['megapixels']:.1f} MP output, {first['device']}, {first['threads']} threads"
              + (f"; networks: median of {repeats} warm runs" if repeats else "")
              + (f"; fp32 matmul peak {' / '.join(peaks)} GFLOP/s, measured in each model's run" if peaks else "")
              + ")"]
    return "\n".join(lines)


def eval_table(report: dict) -> str:
    """`hyperisp eval --json` report -> PSNR (dB) per method and level, plus mean CPU s/MP."""
    levels = list(dict.fromkeys(row["level"] for row in report["rows"]))
    methods = list(dict.fromkeys(row["method"] for row in report["rows"]))
    model = next(m for m in methods if m != "noisy")  # hyperisp eval lists the model first, after the noisy input
    psnr = {(row["method"], row["level"]): row for row in report["rows"]}
    lines = ["| method | " + " | ".join(METHOD_NAMES.get(level, level) for level in levels) + " | CPU s/MP |",
             "|---|" + "---|" * (len(levels) + 1)]
    full = {level: max(row["images"] for row in report["rows"] if row["level"] == level) for level in levels}
    for method in methods:
        rows = [psnr.get((method, level)) for level in levels]
        partial = {row["images"] for row, level in zip(rows, levels) if row and row["images"] < full[level]}
        label = METHOD_NAMES.get(method, method) + (f" ({max(partial)} images)" if partial else "")  # run on a subset
        if method == model and report.get("ensemble", 1) > 1:  # the model's self-ensemble (baselines run once)
            label += f" ({report['ensemble']} views)"
        speeds = [row["cpu_s_per_mp"] for row in rows if row and row["cpu_s_per_mp"]]
        speed = f"{sum(speeds) / len(speeds):.2f}" if speeds else "-"
        lines.append(f"| {label} | " + " | ".join(f"{row['psnr']:.2f}" if row else "-" for row in rows)
                     + f" | {speed} |")
    lines += ["", f"(`{report['command']}`)"] if report.get("command") else []
    return "\n".join(lines)


def write_block(path: Path, name: str, text: str) -> None:
    start, end = f"<!-- table:{name}:start -->", f"<!-- table:{name}:end -->"
    readme = path.read_text()
    if start not in readme or end not in readme:
        raise SystemExit(f"error: {path}: no {start} ... {end} block to replace")
    head, rest = readme.split(start, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["bench", "eval"])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--write", type=Path, default=None, help="file whose table block is replaced")
    parser.add_argument("--block", default=None, help="block name (default: bench, or eval-TASK)")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.reports]
    if args.kind == "bench":
        text, name = bench_table(reports), "bench"
    else:
        if len(reports) != 1:
            raise SystemExit("error: eval takes one report")
        task = reports[0].get("task") or reports[0]["command"].split()[2]
        text, name = eval_table(reports[0]), f"eval-{task}"
    print(text)
    if args.write:
        write_block(args.write, args.block or name, text)


if __name__ == "__main__":
    main()
