#!/usr/bin/env python3
"""Score a text-classify ONNX file with onnxruntime on the same held-out rows and the same
latency input that `edgemass-compress run` gives tract, and print one JSON object.

The rows are JSON lines `{"ids": [...], "label": 0|1}` already tokenized by edgemass-compress, so
both runtimes see identical inputs. Latency is the median of --runs runs at batch 1 on a fixed
sequence of --sequence token ids ([CLS] 2000 2001 … [SEP]), after three warm-up runs.

Usage: python3 compress/scripts/ort_text.py MODEL.onnx ROWS.jsonl [--sequence 64] [--threads 2] [--runs 30]
Needs: pip install onnxruntime numpy.
"""

import argparse
import json

import numpy as np
import onnxruntime as ort

from ort_session import median_ms, session


def feed(rows):
    length = max(len(r) for r in rows)
    ids = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("rows")
    parser.add_argument("--sequence", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    sess = session(args.model, args.threads)
    probe = feed([[101] + [2000 + i for i in range(args.sequence - 2)] + [102]])
    latency = median_ms(sess, ["scores"], probe, args.runs)

    with open(args.rows, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    right = 0
    for i in range(0, len(rows), 32):
        chunk = rows[i : i + 32]
        scores = sess.run(["scores"], feed([r["ids"] for r in chunk]))[0]
        right += sum(int(np.argmax(s) == r["label"]) for s, r in zip(scores, chunk))
    print(json.dumps({
        "latency_ms": latency,
        "accuracy": right / max(len(rows), 1),
        "examples": len(rows),
        "threads": args.threads,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
