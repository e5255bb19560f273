"""free_port draws servers' ports from below the kernel's ephemeral range, where no outgoing connection
can take them while a server is down."""

from __future__ import annotations

import socket

import pytest

from tests.support import polling


@pytest.mark.parametrize(("ephemeral", "lowest"), [((32768, 60999), 24768), ((5000, 6000), 1024), ((9024, 9999), 1024)])
def test_free_port_lies_below_the_ephemeral_range(monkeypatch, ephemeral, lowest):
    monkeypatch.setattr(polling, "ephemeral_range", lambda: ephemeral)
    ports = {polling.free_port() for _ in range(50)}
    assert all(lowest <= port < ephemeral[0] for port in ports)
    assert len(ports) > 1  # drawn, not one fixed port


def test_free_port_skips_a_port_in_use(monkeypatch):
    class Scripted:  # draws the busy port twice, then a free one
        def __init__(self, ports):
            self.ports = list(ports)

        def randrange(self, start, stop):
            return self.ports.pop(0)

    with socket.socket() as taken, socket.socket() as probe:
        taken.bind(("127.0.0.1", 0))
        probe.bind(("127.0.0.1", 0))
        busy, other = taken.getsockname()[1], probe.getsockname()[1]
        probe.close()
        monkeypatch.setattr(polling, "_draw", Scripted([busy, busy, other]))
        assert polling.free_port() == other


def test_the_ephemeral_range_is_read_from_the_kernel_or_defaults(tmp_path, monkeypatch):
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("40000\t50000\n")
    monkeypatch.setattr(polling, "EPHEMERAL_RANGE", ranges)
    assert polling.ephemeral_range() == (40000, 50000)
    monkeypatch.setattr(polling, "EPHEMERAL_RANGE", tmp_path / "missing")
    assert polling.ephemeral_range() == (32768, 60999)
