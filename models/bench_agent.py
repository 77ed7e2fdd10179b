#!/usr/bin/env python3
"""Measures the whole agent, not the model alone: `edgemass run` with one camera looping photos
as fast as its frame rate allows, once per runtime, read from its own /metrics.

For each runtime this writes a config (the embedded broker, a folder source of the photos shrunk
to --width pixels wide, `fps` frames a second, one inference thread by default), starts the agent,
waits for the first inferred frame (the model is loaded and, with auto, the runtimes raced), then
counts inferred frames over --seconds and reads the inference p50. Prints a markdown table.

Usage: python3 models/bench_agent.py --edgemass target/debug/edgemass \
           --model models/ssd-mobilenet-v2-coco.model.toml [--runtimes tract onnxruntime auto]
"""

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ["bus.jpg", "zidane.jpg"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def value(text, name, labels=""):
    m = re.search(rf"^edgemass_{name}\{{[^}}]*{labels}[^}}]*\}} ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def shrink(photos, out, width):
    """The photos at `width` pixels wide, written as PNG with ffmpeg (no Python imaging needed)."""
    out.mkdir()
    for p in photos:
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(p), "-vf",
                        f"scale={width}:-2", str(out / (p.stem + ".png"))], check=True)


def run(args, runtime, images, work):
    http, mqtt = free_port(), free_port()
    config = work / f"{runtime}.toml"
    config.write_text(f"""
[device]
id = "bench-{runtime}"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
embedded_broker = true
[outbox]
path = "{work}/{runtime}-outbox.sqlite"
[http]
listen = "127.0.0.1:{http}"
[inference]
threads = {args.threads}
runtime = "{runtime}"
[[camera]]
name = "bench"
source = "images"
path = "{images}"
fps = {args.fps}
loop = true
model = "{Path(args.model).resolve()}"
""")
    log = open(work / f"{runtime}.log", "w")
    agent = subprocess.Popen([args.edgemass, "run", "--config", str(config), "--grace", "1"],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while True:
            if agent.poll() is not None:
                sys.exit(f"{runtime}: the agent exited ({agent.returncode}); see {log.name}")
            try:
                text = metrics(http)
                if (value(text, "inferred_frames_total") or 0) > 0:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit(f"{runtime}: no frame inferred in 300 s; see {log.name}")
            time.sleep(0.5)
        started, first = time.time(), value(text, "inferred_frames_total")
        time.sleep(args.seconds)
        text = metrics(http)
        frames = value(text, "inferred_frames_total") - first
        elapsed = time.time() - started
        chosen = re.search(r'^edgemass_runtime_info\{[^}]*runtime="([^"]+)",precision="([^"]+)"',
                           text, re.M)
        return {
            "runs on": f"{chosen.group(1)} {chosen.group(2)}" if chosen else "?",
            "fps": frames / elapsed,
            "p50": value(text, "inference_ms_p50"),
        }
    finally:
        agent.terminate()
        agent.wait()
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edgemass", default=str(ROOT / "target/debug/edgemass"))
    parser.add_argument("--model", required=True, help="a detection manifest")
    parser.add_argument("--runtimes", nargs="+", default=["tract", "onnxruntime", "auto"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=320, help="photo width fed to the camera")
    parser.add_argument("--cache", default=str(ROOT / "models/cache"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = work / "images"
        shrink([Path(args.cache) / "photos" / p for p in PHOTOS], images, args.width)
        print(f"{Path(args.model).name}: {', '.join(PHOTOS)} at {args.width} px wide, looped at "
              f"{args.fps:g} fps for {args.seconds:g} s, {args.threads} inference thread(s)")
        print()
        print("| `runtime` | runs on | frames/s | inference p50 ms |")
        print("|---|---|---:|---:|")
        for runtime in args.runtimes:
            r = run(args, runtime, images, work)
            print(f"| `{runtime}` | {r['runs on']} | {r['fps']:.1f} | {r['p50']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
