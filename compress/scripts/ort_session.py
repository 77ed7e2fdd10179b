"""What the onnxruntime helpers share: a CPU session with a set number of threads, and the
median latency of a fixed input after three warm-up runs.

Needs: pip install onnxruntime numpy.
"""

import statistics
import time

import onnxruntime as ort


def session(model, threads):
    """An onnxruntime CPU session of MODEL with THREADS intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def median_ms(sess, outputs, probe, runs):
    """The median of RUNS timed runs of SESS on PROBE, in ms, after three warm-up runs."""
    for _ in range(3):
        sess.run(outputs, probe)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(outputs, probe)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
