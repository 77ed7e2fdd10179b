#!/usr/bin/env python3
"""Benchmark every image model the project fetches on each runtime edgemass has, side by side.

For each package: tract and onnxruntime, on the float file and (where the package has one) the
int8 file, at 1 and 2 threads, all through `edgemass bench` on the same photo; then what
`--runtime auto` picks at 1 and 2 threads. Prints a Markdown table of median inference times
(p95 in brackets) in ms, headed by the CPU it ran on.

Usage: python3 models/bench.py [--edgemass target/release/edgemass] [--image PHOTO] [--runs N]
                              [--models A.model.toml ...]
Needs: the model cache filled by `python3 models/fetch.py` (onnxruntime's library included).
"""

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu():
    """The CPU's model name and the int8-relevant instruction sets it has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown CPU")
    flags = set(fields.get("flags", "").split())
    features = set(fields.get("Features", "").split())
    extras = [f for f in ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"] if f in flags]
    extras += [f for f in ["asimddp"] if f in features]
    cores = text.count("processor\t:")
    return f"{name}, {cores} cores ({', '.join(extras) or 'no int8 dot-product extensions'})"


def bench(args, manifest, runtime, precision, threads):
    """One `edgemass bench --json`; None with the reason when that form cannot run."""
    cmd = [args.edgemass, "bench", "--model", str(manifest), "--image", args.image, "--runs", str(args.runs),
           "--threads", str(threads), "--runtime", runtime, "--precision", precision, "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return None, (result.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(result.stdout), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edgemass", default=str(ROOT / "target" / "release" / "edgemass"))
    parser.add_argument("--image", default=str(ROOT / "models" / "cache" / "photos" / "bus.jpg"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--models", nargs="+", type=Path,
                        default=sorted((ROOT / "models").glob("*.model.toml")),
                        help="model manifests (default: every image model under models/)")
    args = parser.parse_args()
    print(f"CPU: {cpu()}")
    print(f"input: {Path(args.image).name}; {args.runs} timed runs; median (p95) inference ms")
    print()
    print("| model | input | tract fp32 1t | tract fp32 2t | tract int8 1t | tract int8 2t "
          "| ORT fp32 1t | ORT fp32 2t | ORT int8 1t | ORT int8 2t | auto 1t | auto 2t |")
    print("|---|---|" + "---:|" * 10)
    for manifest in args.models:
        spec = tomllib.loads(manifest.read_text())
        if spec.get("task") != "detect":
            continue
        cells = []
        for runtime in ["tract", "onnxruntime"]:
            for precision in ["fp32", "int8"]:
                for threads in [1, 2]:
                    if precision == "int8" and "int8" not in spec:
                        cells.append("no int8 file")
                        continue
                    out, why = bench(args, manifest, runtime, precision, threads)
                    if out is None:
                        print(f"{spec['name']}: {runtime} {precision} {threads}t: {why}", file=sys.stderr)
                        cells.append("failed")
                    elif out["runtime"] != runtime:
                        cells.append(f"ran on {out['runtime']}")
                    else:
                        cells.append(f"{out['inference_p50_ms']:.1f} ({out['inference_p95_ms']:.1f})")
        for threads in [1, 2]:
            out, why = bench(args, manifest, "auto", "auto", threads)
            if out is None:
                print(f"{spec['name']}: auto {threads}t: {why}", file=sys.stderr)
                cells.append("failed")
            else:
                short = "ORT" if out["runtime"] == "onnxruntime" else out["runtime"]
                cells.append(f"{short} {out['precision']}: {out['inference_p50_ms']:.1f}")
        size = f"{spec['input']['width']}x{spec['input']['height']}"
        print(f"| {spec['name']} | {size} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
