"""Cookie bombs against the real daemon: analysed fps undisturbed and under attack, web threads niced or not.

    .venv/bin/python -m bench.web_hostile [--rounds 3] [--window 8]

Starts `surveil run` twice, on the shipped PETS clip (real time, looping, ``fps_limit: 4``, a
quarter of what the detector does here) with `models/pedestrian-mnv2-s8.pt` under OpenVINO on one
thread and a token on the web view: once as shipped (the server's threads run
``surveil.web.limits.WEB_NICE`` nicer) and once with ``WEB_NICE = 0``. Each round measures an
undisturbed window, a window of cookie bombs (the Cookie headers of tests/support/hostile_http.py,
one connection after the other, as fast as the server answers) and an undisturbed window again;
the ratio is the attacked fps over the lower undisturbed one. Also the daemon's CPU (user, system)
in each window, from /proc. Prints every phase (mean and range over the rounds), the CPU flags and
the load average: the machine is shared, so compare the two variants of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
TOKEN = "bench-web-hostile-token-0123"
BOMBS = [b"a=" + b"\\" * 65536, b"a=" + b"\\" * 8000, b'a="' + b"\\\\" * 3900 + b'"']
VARIANTS = {  # name -> code run before the CLI in the daemon's process
    "niced (shipped)": "",
    "not niced": "import surveil.web.limits as limits; limits.WEB_NICE = 0; ",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isa() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags)


def cpu_seconds(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def processed(port: int) -> float | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as page:
            body = page.read().decode()
    except OSError:
        return None
    prefix = 'surveil_frames_processed_total{camera="plaza"'
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(prefix))


def bombs(port: int, stop: threading.Event) -> None:
    count = 0
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                head = b"GET /cameras.json HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % BOMBS[count % len(BOMBS)]
                sock.sendall(head)
                sock.recv(4096)
        except OSError:
            pass
        count += 1


def start(folder: Path, prelude: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = {
        "cameras": [
            {
                "name": "plaza",
                "url": str(REPO / "configs/media/pets2009-s2l1.mp4"),
                "realtime": True,
                "loop": True,
                "fps_limit": 4,
            }
        ],
        "detector": {
            "weights": str(REPO / "models/pedestrian-mnv2-s8.pt"),
            "backend": "openvino",
            "device": "cpu",
            "threads": 1,
        },
        "mqtt": {"enabled": False},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "web": {"auth_token": TOKEN},
        "logging": {"level": "WARNING"},
        "state_dir": str(folder),
    }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    code = prelude + f"from surveil.cli import main; raise SystemExit(main(['run', '-c', {str(path)!r}]))"
    log = open(folder / "daemon.log", "w")  # noqa: SIM115 (the daemon owns it until it ends)
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(900):
        if process.poll() is not None:
            sys.exit(f"web_hostile: the daemon exited with {process.returncode}; see {folder / 'daemon.log'}")
        if (processed(port) or 0) >= 10:
            return process, port
        time.sleep(0.1)
    sys.exit("web_hostile: the daemon analysed no frames in 90 s")


def window(process: subprocess.Popen, port: int, seconds: float, attack: bool) -> tuple[float, float, float]:
    """(analysed fps, daemon user cores, daemon system cores) over one window."""
    stop = threading.Event()
    attacker = threading.Thread(target=bombs, args=(port, stop), daemon=True)
    count0, cpu0, time0 = processed(port), cpu_seconds(process.pid), time.monotonic()
    if attack:
        attacker.start()
    time.sleep(seconds)
    stop.set()
    if attack:
        attacker.join(timeout=30)
    count1, cpu1, time1 = processed(port), cpu_seconds(process.pid), time.monotonic()
    if count0 is None or count1 is None:
        sys.exit("web_hostile: /metrics did not answer")
    spent = time1 - time0
    return (count1 - count0) / spent, (cpu1[0] - cpu0[0]) / spent, (cpu1[1] - cpu0[1]) / spent


def phase(name: str, values: list[float]) -> str:
    return f"{name} mean {sum(values) / len(values):.2f} range {min(values):.2f}-{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0, help="seconds per window")
    args = parser.parse_args()
    print(f"cpu isa: {isa()}; cores {os.cpu_count()}; load {os.getloadavg()} (shared machine)", flush=True)
    for variant, prelude in VARIANTS.items():
        folder = Path(tempfile.mkdtemp(prefix="surveil-web-hostile-"))
        process, port = start(folder, prelude)
        ratios, before, under, user, system = [], [], [], [], []
        try:
            for _ in range(args.rounds):
                quiet = window(process, port, args.window, attack=False)
                attacked = window(process, port, args.window, attack=True)
                after = window(process, port, args.window, attack=False)
                ratios.append(attacked[0] / min(quiet[0], after[0]))
                before.append(min(quiet[0], after[0]))
                under.append(attacked[0])
                user.append(attacked[1])
                system.append(attacked[2])
        finally:
            process.terminate()
            process.wait(timeout=30)
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"{variant}: "
            + "; ".join(
                [
                    phase("fps undisturbed", before),
                    phase("fps under bombs", under),
                    phase("ratio", ratios),
                    phase("daemon user cores under bombs", user),
                    phase("system cores", system),
                ]
            )
            + f"; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
