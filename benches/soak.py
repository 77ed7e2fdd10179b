#!/usr/bin/env python3
"""Broker-kill soak: the agent at full rate on a looping video while mosquitto is killed with
SIGKILL and restarted, then a report of what was lost and what grew.

The video alternates photos with faces (bus.jpg, zidane.jpg) and an empty background every
second, so the face detector (blazeface-256) keeps producing `new` and `end` events. The camera
asks for more frames per second than the model can take (`--fps`), so it runs at the model's
rate. Every `--kill-every` seconds the broker is killed with SIGKILL, stays down `--down`
seconds and starts again. At the end the agent is stopped with SIGTERM: it drains, flushes its
outbox and prints how many events it produced and how many the broker acknowledged, and the two
must be equal. Also reported: the outbox's high-water mark (from /metrics) and the agent's RSS
after the warm-up and at the end.

Usage (from the repository root, after `cargo build --release` and `python3 models/fetch.py`; a
debug build is taken when there is no release one):
  python3 benches/soak.py [--minutes 10] [--kill-every 30] [--down 3] [--fps 30]
Needs: mosquitto and ffmpeg on PATH. Exit status 0 when nothing was lost and RSS grew under 5 %.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("EDGEMASS_MODEL_CACHE", ROOT / "models" / "cache"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds):
    until = time.time() + seconds
    while time.time() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def make_video(path):
    """Face photo, empty background, the other face photo, background: one second each, 640x480."""
    frames = [
        CACHE / "photos" / "bus.jpg",
        CACHE / "backgrounds" / "brick.png",
        CACHE / "photos" / "zidane.jpg",
        CACHE / "backgrounds" / "brick.png",
    ]
    for f in frames:
        if not f.is_file():
            sys.exit(f"soak: {f} is missing; run python3 models/fetch.py first")
    args = ["ffmpeg", "-loglevel", "error", "-y"]
    for f in frames:
        args += ["-loop", "1", "-t", "1", "-i", str(f)]
    scaled = "".join(
        f"[{i}:v]scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,"
        f"setsar=1,fps=30,format=yuv420p[v{i}];"
        for i in range(len(frames))
    )
    joined = "".join(f"[v{i}]" for i in range(len(frames)))
    args += [
        "-filter_complex", f"{scaled}{joined}concat=n={len(frames)}:v=1:a=0[out]",
        "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast", str(path),
    ]
    subprocess.run(args, check=True)


class Broker:
    """mosquitto on loopback, killed with SIGKILL and started again on the same port."""

    def __init__(self, work, port):
        self.port = port
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        self.log = open(work / "mosquitto.log", "ab")
        self.child = None

    def start(self):
        self.child = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=self.log
        )
        if not wait_for_port(self.port, 10):
            sys.exit("soak: mosquitto did not start")

    def kill(self):
        self.child.send_signal(signal.SIGKILL)
        self.child.wait()


def metrics(port):
    """The samples of /metrics as (name, labels, value)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = []
    for line in body.splitlines():
        if line and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            name, _, labels = head.partition("{")
            out.append((name, dict(re.findall(r'(\w+)="([^"]*)"', labels)), float(value)))
    return out


def value(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(
        v for n, have, v in samples
        if n == name and all(have.get(k) == want for k, want in labels.items())
    )


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between kills")
    parser.add_argument("--down", type=float, default=3.0, help="seconds the broker stays down")
    parser.add_argument("--warm-up", type=float, default=30.0, help="seconds before the first kill")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second asked of the video")
    parser.add_argument(
        "--binary",
        help="the edgemass binary (default: target/release/edgemass, else target/debug/edgemass)",
    )
    args = parser.parse_args()
    if args.binary is None:
        built = [ROOT / "target" / p / "edgemass" for p in ("release", "debug")]
        args.binary = str(next((b for b in built if b.is_file()), built[0]))
    if not Path(args.binary).is_file():
        sys.exit(f"soak: {args.binary} is missing; build it with `cargo build --release`")

    work = Path(tempfile.mkdtemp(prefix="edgemass-soak-"))
    video = work / "faces.mp4"
    make_video(video)
    broker = Broker(work, free_port())
    broker.start()
    http = free_port()
    config = work / "soak.toml"
    config.write_text(
        f"""[device]
id = "soak"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
embedded_broker = false
stats_interval_s = 10
keep_alive_s = 5

[outbox]
path = "{work / 'outbox.sqlite'}"

[http]
listen = "127.0.0.1:{http}"

[[camera]]
name = "door"
source = "video"
path = "{video}"
fps = {args.fps}
loop = true
model = "{ROOT / 'models' / 'blazeface-256.model.toml'}"
"""
    )
    stderr = open(work / "agent.stderr", "w")
    agent = subprocess.Popen(
        [args.binary, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "EDGEMASS_LOG": "info"},
    )
    if not wait_for_port(http, 30):
        sys.exit(f"soak: the agent did not serve /metrics; see {work / 'agent.stderr'}")

    started = time.time()
    end = started + args.minutes * 60
    next_kill = started + args.warm_up
    rss_start = None
    kills = 0
    print(f"soak: {args.binary}, {args.minutes:g} min, broker SIGKILL every "
          f"{args.kill_every:g} s (down {args.down:g} s), work in {work}", flush=True)
    while time.time() < end:
        if agent.poll() is not None:
            sys.exit(f"soak: the agent exited with {agent.returncode}; see {work / 'agent.stderr'}")
        now = time.time()
        if now >= next_kill:
            if rss_start is None:
                rss_start = rss_kib(agent.pid)
            broker.kill()
            kills += 1
            time.sleep(args.down)
            broker.start()
            next_kill += args.kill_every
            m = metrics(http)
            print(f"  {now - started:5.0f} s: kill {kills}, "
                  f"events {value(m, 'edgemass_events_total'):.0f}, "
                  f"acked {value(m, 'edgemass_events_acked_total'):.0f}, "
                  f"outbox {value(m, 'edgemass_outbox_depth'):.0f}, "
                  f"RSS {rss_kib(agent.pid) / 1024:.1f} MiB", flush=True)
        time.sleep(0.2)

    if rss_start is None:
        rss_start = rss_kib(agent.pid)
    rss_end = rss_kib(agent.pid)
    m = metrics(http)
    high_water = value(m, "edgemass_queue_high_water", queue="outbox")
    frames = value(m, "edgemass_inferred_frames_total")
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=120)
    except subprocess.TimeoutExpired:
        agent.kill()
        sys.exit("soak: the agent did not stop within 120 s of SIGTERM")
    broker.kill()
    stderr.close()
    log = (work / "agent.stderr").read_text()
    done = re.search(r"stopped: (\d+) event\(s\) produced, (\d+) acknowledged, (\d+) left", log)
    if not done:
        sys.exit(f"soak: no closing line in {work / 'agent.stderr'}")
    produced, acked, left = (int(g) for g in done.groups())
    growth = 100.0 * (rss_end - rss_start) / rss_start
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log)
    warnings = sum(1 for line in plain.splitlines() if " WARN " in line or " ERROR " in line)
    print(f"""
| figure | value |
|---|---:|
| run | {args.minutes:g} min, {kills} broker kills (SIGKILL, down {args.down:g} s each) |
| frames inferred | {frames:.0f} ({frames / (args.minutes * 60):.1f}/s) |
| events produced | {produced} |
| events acknowledged | {acked} |
| left in the outbox | {left} |
| outbox high-water mark | {high_water:.0f} |
| RSS after {args.warm_up:g} s / at the end | {rss_start / 1024:.1f} / {rss_end / 1024:.1f} MiB ({growth:+.1f} %) |
| warning and error lines in the log | {warnings} |
""")
    ok = produced == acked and left == 0 and growth < 5.0
    print("soak: " + ("passed" if ok else "FAILED") + f" (log and config in {work})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
