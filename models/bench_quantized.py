#!/usr/bin/env python3
"""Time a float ONNX model and its quantized forms in onnxruntime, and compare their outputs.

Inputs are made exactly as `edgemass-compress quantize --sample NAME=DIMS[:LO..HI]` makes them
(SplitMix64 seeded by the input's position; floats default to [-1, 1), integers to [0, 1000)),
so the numbers line up with the tract figures `quantize --bench` prints for the same files.
With --ort-dynamic, onnxruntime's own quantize_dynamic (per-channel) of the float model is
timed as well. Prints a Markdown table: size, median latency, worst cosine similarity and largest
absolute error over all outputs against the float model.

Usage: python3 models/bench_quantized.py FLOAT.onnx [LABEL=QUANTIZED.onnx ...]
           [--sample input_ids=1x64:1000..30522 ...] [--runs 50] [--threads 1] [--ort-dynamic]
           [--no-fusion]
Needs: pip install onnxruntime numpy.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort

MASK = (1 << 64) - 1
TYPES = {
    "tensor(float)": (np.float32, False),
    "tensor(double)": (np.float64, False),
    "tensor(int64)": (np.int64, True),
    "tensor(int32)": (np.int32, True),
}


def draws(seed, count):
    """SplitMix64 in [0, 1), as in compress/src/onnx/tract.rs."""
    state = seed
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        out[i] = (z >> 11) / float(1 << 53)
    return out


def parse_sample(spec):
    name, rest = spec.rsplit("=", 1)
    shape, _, span = rest.partition(":")
    dims = [int(d) for d in shape.split("x")]
    bounds = tuple(float(v) for v in span.split("..")) if span else None
    return name, dims, bounds


def make_inputs(session, specs):
    feed = {}
    for position, arg in enumerate(session.get_inputs()):
        dtype, integer = TYPES[arg.type]
        if arg.name in specs:
            dims, bounds = specs[arg.name]
        else:
            dims, bounds = [int(d) for d in arg.shape], None
        lo, hi = bounds or ((0.0, 1000.0) if integer else (-1.0, 1.0))
        values = lo + draws(position, int(np.prod(dims))) * (hi - lo)
        values = np.floor(values) if integer else values
        feed[arg.name] = values.astype(dtype).reshape(dims)
    return feed


def session(path, threads, optimize=True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(sess, feed, runs):
    for _ in range(2):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def compare(reference, outputs):
    cosine, error = 1.0, 0.0
    for a, b in zip(reference, outputs):
        a = a.astype(np.float64).ravel()
        b = b.astype(np.float64).ravel()
        error = max(error, float(np.max(np.abs(a - b))))
        denominator = np.linalg.norm(a) * np.linalg.norm(b)
        cosine = min(cosine, float(a @ b / denominator) if denominator else 1.0)
    return cosine, error


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("float_model")
    parser.add_argument("forms", nargs="*", help="LABEL=PATH of a quantized form")
    parser.add_argument("--sample", action="append", default=[], help="NAME=DIMS[:LO..HI]")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ort-dynamic", action="store_true",
                        help="also time onnxruntime's own quantize_dynamic (per-channel)")
    parser.add_argument("--no-fusion", action="store_true",
                        help="disable onnxruntime's graph optimizations (op-by-op reference)")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)

    specs = {}
    for spec in args.sample:
        name, dims, bounds = parse_sample(spec)
        specs[name] = (dims, bounds)
    forms = [("float", args.float_model)]
    forms += [tuple(f.split("=", 1)) for f in args.forms]
    with tempfile.TemporaryDirectory() as tmp:
        if args.ort_dynamic:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            path = os.path.join(tmp, "ort-dynamic.onnx")
            quantize_dynamic(args.float_model, path, per_channel=True,
                             weight_type=QuantType.QInt8)
            forms.append(("ort-dynamic", path))
        optimize = not args.no_fusion
        reference_session = session(args.float_model, args.threads, optimize)
        feed = make_inputs(reference_session, specs)
        reference = reference_session.run(None, feed)
        print(f"onnxruntime {ort.__version__}, {args.threads} thread(s), median of {args.runs} runs"
              + ("" if optimize else ", graph optimizations off"))
        print("| form | bytes | ms | cosine | max abs error |")
        print("|---|---:|---:|---:|---:|")
        for label, path in forms:
            sess = session(path, args.threads, optimize)
            cosine, error = compare(reference, sess.run(None, feed))
            ms = median_ms(sess, feed, args.runs)
            print(f"| {label} | {os.path.getsize(path)} | {ms:.2f} | {cosine:.6f} | {error:.3e} |")


if __name__ == "__main__":
    main()
