#!/usr/bin/env python3
"""Benchmark a text-classify package with tract (`edgemass bench --texts`) and onnxruntime on the
same ONNX file and the same texts.

Texts are the first N Rotten Tomatoes reviews from the model cache. Each runtime times one text
at a time (per-text latency) and then all texts in batches padded to their longest (throughput).
Prints a Markdown table with 1 and 2 threads per runtime.

Usage: python3 models/bench_text.py --model PACKAGE/NAME.model.toml [--edgemass target/release/edgemass]
                                    [--texts 256] [--runs 100] [--batch 16]
Needs: pip install onnxruntime numpy tokenizers; the model cache filled by models/fetch.py.
"""

import argparse
import bz2
import csv
import io
import json
import os
import statistics
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def reviews(cache, count):
    with bz2.open(cache / "data" / "rotten_tomatoes_corpus_full.csv.bz2", "rt", encoding="utf-8") as f:
        rows = (r["text"] for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten"))
        return [" ".join(t.split()) for t, _ in zip(rows, range(count))]


def ort_bench(model_file, tokenizer, texts, threads, runs, batch):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def run(chunk):
        encodings = tokenizer.encode_batch(chunk)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        session.run(["scores"], feed)

    for text in texts[:3]:
        run([text])
    single = []
    for i in range(runs):
        t = time.perf_counter()
        run([texts[i % len(texts)]])
        single.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        run(texts[i:i + batch])
    batched_per_s = len(texts) / (time.perf_counter() - t)
    single.sort()
    return {
        "single_p50_ms": statistics.median(single),
        "single_p95_ms": single[min(len(single) - 1, int(0.95 * len(single)))],
        "single_per_s": 1e3 / statistics.mean(single),
        "batched_per_s": batched_per_s,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="text-classify manifest")
    parser.add_argument("--edgemass", default=str(ROOT / "target" / "release" / "edgemass"))
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    cache = Path(os.environ.get("EDGEMASS_MODEL_CACHE", ROOT / "models" / "cache"))
    manifest = Path(args.model)
    spec = tomllib.loads(manifest.read_text())
    model_file = manifest.parent / spec["file"]
    tokenizer = Tokenizer.from_file(str(manifest.parent / spec["text"]["tokenizer"]))
    tokenizer.enable_truncation(spec["text"]["max_length"])
    tokenizer.enable_padding()
    texts = reviews(cache, args.texts)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
        texts_file = f.name
    print(f"{spec['name']}: {len(texts)} Rotten Tomatoes reviews; one-at-a-time medians (p95) over "
          f"{args.runs} runs, batches of {args.batch}; onnxruntime {ort.__version__}")
    print()
    print("| runtime | threads | one text p50 ms | one text p95 ms | texts/s one at a time | texts/s in batches |")
    print("|---|---:|---:|---:|---:|---:|")
    try:
        for threads in (1, 2):
            tract = json.loads(subprocess.run(
                [args.edgemass, "bench", "--model", str(manifest), "--texts", texts_file,
                 "--runs", str(args.runs), "--batch", str(args.batch), "--threads", str(threads), "--json"],
                check=True, capture_output=True, text=True).stdout)
            print(f"| tract | {threads} | {tract['single_p50_ms']:.2f} | {tract['single_p95_ms']:.2f} | "
                  f"{tract['single_per_s']:.1f} | {tract['batched_per_s']:.1f} |")
            onnx = ort_bench(model_file, tokenizer, texts, threads, args.runs, args.batch)
            print(f"| onnxruntime | {threads} | {onnx['single_p50_ms']:.2f} | {onnx['single_p95_ms']:.2f} | "
                  f"{onnx['single_per_s']:.1f} | {onnx['batched_per_s']:.1f} |")
    finally:
        os.unlink(texts_file)


if __name__ == "__main__":
    main()
