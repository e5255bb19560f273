"""Soak: the real daemon with several cameras for a long while; RSS, open fds and threads over time.

    .venv/bin/python -m bench.soak [--cameras 4] [--minutes 10] [--mqtt-port 1883]

Starts `surveil run` as a subprocess on a config derived from configs/demo.yaml with N file
cameras of the shipped PETS clip (real time, looping; the demo's rules on each), MQTT to a local
broker (started here when `mosquitto` is on PATH), a live-view client that opens
`/cameras/cam0/live.mjpeg`, reads it for ``--reconnect`` seconds, drops it and opens it again, and a
scraper of `/metrics` every 5 s; samples the process from /proc every ``--every`` seconds. Prints
each sample (with the load average), the first and last, the peak, the growth, and what the two
clients got (streams opened / refused, bytes, scrapes ok / failed); ends with
    soak cameras=N minutes=M rss_start_mb=… rss_end_mb=… fds_start=… fds_end=… threads_start=… threads_end=…
Leaks show as steady growth after the warm-up (models, buffers and caches fill in the first minute).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isa() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags)


def sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


class Clients:
    """A live-view client reconnecting every `reconnect` seconds and a /metrics scraper, on daemon threads."""

    def __init__(self, port: int, reconnect: float) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.reconnect = reconnect
        self.stop = threading.Event()
        self.counts = {"streams": 0, "stream_errors": 0, "stream_bytes": 0, "scrapes": 0, "scrape_errors": 0}

    def start(self) -> None:
        threading.Thread(target=self._viewer, daemon=True).start()
        threading.Thread(target=self._scraper, daemon=True).start()

    def _viewer(self) -> None:
        while not self.stop.is_set():
            ends = time.monotonic() + self.reconnect
            try:
                with urllib.request.urlopen(f"{self.base}/cameras/cam0/live.mjpeg", timeout=10) as stream:
                    self.counts["streams"] += 1
                    while time.monotonic() < ends and not self.stop.is_set():
                        self.counts["stream_bytes"] += len(stream.read1(65536))
            except OSError as exc:  # by kind: refused before the daemon listens, 503, a timeout under load
                self.counts["stream_errors"] += 1
                kind = f"stream_error_{getattr(exc, 'code', None) or exc.__class__.__name__}"
                self.counts[kind] = self.counts.get(kind, 0) + 1
                self.stop.wait(2)

    def _scraper(self) -> None:
        while not self.stop.wait(5):
            try:
                with urllib.request.urlopen(f"{self.base}/metrics", timeout=10) as page:
                    page.read()
                self.counts["scrapes"] += 1
            except OSError:
                self.counts["scrape_errors"] += 1


def soak_config(folder: Path, cameras: int, mqtt_port: int, metrics_port: int) -> Path:
    demo = yaml.safe_load((REPO / "configs/demo.yaml").read_text().replace("${", "$"))  # no env substitution here
    template = demo["cameras"][0]
    clip = str(REPO / "configs/media/pets2009-s2l1.mp4")
    config = {
        "cameras": [{**template, "name": f"cam{i}", "url": clip} for i in range(cameras)],
        "detector": {**demo["detector"], "weights": str(REPO / "models/pedestrian-mnv2.pt")},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "spool_path": "spool.sqlite3"},
        "alerts": {"jsonl_path": "alerts.jsonl"},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "state_dir": str(folder),
        "logging": {"level": "WARNING"},
    }
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--reconnect", type=float, default=10.0, help="seconds the live-view client stays connected")
    parser.add_argument("--mqtt-port", type=int, default=None, help="an existing broker (default: start mosquitto)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="surveil-soak-"))
    broker = None
    port = args.mqtt_port
    if port is None:
        if not shutil.which("mosquitto"):
            sys.exit("soak: no mosquitto on PATH; give --mqtt-port of a running broker")
        port = free_port()
        broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics_port = free_port()
    config = soak_config(folder, args.cameras, port, metrics_port)
    print(f"cpu isa: {isa()}; load at start: {os.getloadavg()[0]:.2f} (shared machine)", flush=True)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "daemon.log", "w"),  # noqa: SIM115 (the daemon owns it until the soak ends)
    )
    samples: list[tuple[float, dict[str, float]]] = []
    started = time.monotonic()
    clients = Clients(metrics_port, args.reconnect)
    clients.start()
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.every)
            if daemon.poll() is not None:
                sys.exit(f"soak: the daemon exited with {daemon.returncode}; see {folder / 'daemon.log'}")
            samples.append((time.monotonic() - started, sample(daemon.pid)))
            t, s = samples[-1]
            print(
                f"{t:7.0f} s  rss {s['rss_mb']:7.1f} MB  fds {s['fds']:4.0f}  threads {s['threads']:3.0f}  "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        clients.stop.set()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        if broker is not None:
            broker.terminate()
    first, last = samples[0][1], samples[-1][1]
    warm = next((s for t, s in samples if t >= 60), last)  # after the model and buffers have filled
    peak = max(s["rss_mb"] for _, s in samples)
    print(f"exit status {daemon.returncode}; peak RSS {peak:.1f} MB; logs and alerts in {folder}")
    print(
        f"after warm-up (60 s): rss {warm['rss_mb']:.1f} MB, fds {warm['fds']:.0f}, threads {warm['threads']:.0f}; "
        f"growth since: rss {last['rss_mb'] - warm['rss_mb']:+.1f} MB, fds {last['fds'] - warm['fds']:+.0f}, "
        f"threads {last['threads'] - warm['threads']:+.0f}"
    )
    print("clients: " + " ".join(f"{k}={v}" for k, v in clients.counts.items()))
    print(
        f"soak cameras={args.cameras} minutes={args.minutes:g} rss_start_mb={first['rss_mb']:.1f} "
        f"rss_end_mb={last['rss_mb']:.1f} fds_start={first['fds']:.0f} fds_end={last['fds']:.0f} "
        f"threads_start={first['threads']:.0f} threads_end={last['threads']:.0f}"
    )


if __name__ == "__main__":
    main()
