#!/usr/bin/env python3
"""Benchmark each model with tract (`edgemass bench`) and onnxruntime on the same file and input.

The input tensor comes from `edgemass tensor`, so both runtimes see identical values. Prints a
Markdown table: tract latency with 1 and 2 threads beside onnxruntime with 1 and 2 threads.

Usage: python3 models/bench.py [--edgemass target/release/edgemass] [--image PHOTO] [--runs N]
                              [--models A.model.toml B.model.toml ...] [--onnx NAME=FILE ...]
Needs: pip install onnxruntime numpy; the model cache filled by models/fetch.py.

A package whose file is not ONNX (the SSD's frozen TensorFlow graph) needs an ONNX copy of the
same cut graph for onnxruntime, made once with tf2onnx and given with --onnx, e.g.
    python3 -m tf2onnx.convert --graphdef models/cache/ssd-coco/frozen_inference_graph.pb \
        --inputs 'Preprocessor/sub:0[1,300,300,3]' --outputs concat:0,concat_1:0 --opset 13 \
        --output /tmp/ssd_cut.onnx
    python3 models/bench.py --models models/ssd-mobilenet-v2-coco.model.toml \
        --onnx ssd-mobilenet-v2-coco=/tmp/ssd_cut.onnx
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
MODELS = [ROOT / "models" / f"{name}.model.toml" for name in ["blazeface-256", "yolov8n-320", "ppocr-det"]]


def ort_latency(model_file, x, threads, runs):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edgemass", default=str(ROOT / "target" / "release" / "edgemass"))
    parser.add_argument("--image", default=str(ROOT / "models" / "cache" / "photos" / "bus.jpg"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--models", nargs="+", type=Path, default=MODELS,
                        help="model manifests (default: the three shipped detectors)")
    parser.add_argument("--onnx", nargs="+", default=[], metavar="NAME=FILE",
                        help="the ONNX file onnxruntime runs for package NAME (default: the package's own file)")
    args = parser.parse_args()
    onnx = dict(pair.split("=", 1) for pair in args.onnx)
    cache = Path(os.environ.get("EDGEMASS_MODEL_CACHE", ROOT / "models" / "cache"))
    print(f"input: {Path(args.image).name}; {args.runs} timed runs; medians (p95) in ms; onnxruntime {ort.__version__}")
    print()
    print("| model | input | load ms | tract 1 thread | tract 2 threads | frames/s (whole frame, 1 thread) | peak RSS MiB | ORT 1 thread | ORT 2 threads | tract / ORT (1 thread) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for manifest in args.models:
        spec = tomllib.loads(manifest.read_text())
        name = spec["name"]
        model_file = onnx.get(name) or manifest.parent / spec["file"].replace("{cache}", str(cache))
        def tract_bench(threads):
            return json.loads(subprocess.run(
                [args.edgemass, "bench", "--model", str(manifest), "--image", args.image, "--runs", str(args.runs),
                 "--threads", str(threads), "--json"],
                check=True, capture_output=True, text=True).stdout)
        tract = tract_bench(1)
        tract2 = tract_bench(2)
        with tempfile.TemporaryDirectory() as tmp:
            tensor = Path(tmp) / "x.npy"
            subprocess.run([args.edgemass, "tensor", "--model", str(manifest), "--image", args.image, "--out", str(tensor)],
                           check=True)
            x = np.load(tensor)
        one = ort_latency(model_file, x, 1, args.runs)
        two = ort_latency(model_file, x, 2, args.runs)
        size = f"{spec['input']['width']}x{spec['input']['height']}"
        print(f"| {name} | {size} | {tract['load_ms']:.0f} | {tract['inference_p50_ms']:.1f} ({tract['inference_p95_ms']:.1f}) "
              f"| {tract2['inference_p50_ms']:.1f} ({tract2['inference_p95_ms']:.1f}) "
              f"| {tract['frames_per_s']:.1f} | {tract['peak_rss_mib']:.0f} | {one[0]:.1f} ({one[1]:.1f}) | {two[0]:.1f} ({two[1]:.1f}) "
              f"| {tract['inference_p50_ms'] / one[0]:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
