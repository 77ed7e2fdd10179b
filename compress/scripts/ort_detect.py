#!/usr/bin/env python3
"""Run a detector ONNX file with onnxruntime on input tensors edgemass-compress prepared, and
write its raw outputs back, so both runtimes see identical inputs and edgemass decodes both the
same way.

Every INPUT_DIR/NAME.npy (one preprocessed image, batch 1) gives OUTPUT_DIR/NAME.OUTPUT.npy for
each model output. With --runs N, the first input is also timed: median of N runs after three
warm-up runs. Prints one JSON object.

Usage: python3 compress/scripts/ort_detect.py MODEL.onnx INPUT_DIR OUTPUT_DIR [--threads 2] [--runs 0]
Needs: pip install onnxruntime numpy.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ort_session import median_ms, session


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=0)
    args = parser.parse_args()

    sess = session(args.model, args.threads)
    name = sess.get_inputs()[0].name
    outputs = [o.name for o in sess.get_outputs()]
    files = sorted(Path(args.inputs).glob("*.npy"))
    out_dir = Path(args.outputs)
    out_dir.mkdir(parents=True, exist_ok=True)

    latency = None
    if args.runs and files:
        latency = median_ms(sess, None, {name: np.load(files[0])}, args.runs)

    for f in files:
        results = sess.run(None, {name: np.load(f)})
        for output, value in zip(outputs, results):
            np.save(out_dir / f"{f.stem}.{output}.npy", value.astype(np.float32))
    print(json.dumps({
        "latency_ms": latency,
        "images": len(files),
        "threads": args.threads,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
