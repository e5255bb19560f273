"""Soak: the real daemon with several cameras for a long while; RSS, open fds and threads over time.

    .venv/bin/python -m bench.soak [--cameras 4] [--minutes 10] [--mqtt-port 1883]

Starts `surveil run` as a subprocess on a config derived from configs/demo.yaml with N file
cameras of the shipped PETS clip (real time, looping; the demo's rules on each), MQTT to a local
broker (started here when `mosquitto` is on PATH), and samples the process from /proc every
``--every`` seconds. Prints the first and last sample, the peak, and the growth; ends with
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
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


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
    config = soak_config(folder, args.cameras, port, free_port())
    daemon = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "daemon.log", "w"),  # noqa: SIM115 (the daemon owns it until the soak ends)
    )
    samples: list[tuple[float, dict[str, float]]] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.every)
            if daemon.poll() is not None:
                sys.exit(f"soak: the daemon exited with {daemon.returncode}; see {folder / 'daemon.log'}")
            samples.append((time.monotonic() - started, sample(daemon.pid)))
            t, s = samples[-1]
            print(
                f"{t:7.0f} s  rss {s['rss_mb']:7.1f} MB  fds {s['fds']:4.0f}  threads {s['threads']:3.0f}", flush=True
            )
    finally:
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
    print(
        f"soak cameras={args.cameras} minutes={args.minutes:g} rss_start_mb={first['rss_mb']:.1f} "
        f"rss_end_mb={last['rss_mb']:.1f} fds_start={first['fds']:.0f} fds_end={last['fds']:.0f} "
        f"threads_start={first['threads']:.0f} threads_end={last['threads']:.0f}"
    )


if __name__ == "__main__":
    main()
