"""The notify protocol against a real unix datagram socket, as systemd listens on one."""

import os
import socket

import pytest

from surveil.service.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_ready_watchdog_stopping_reach_the_socket(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
    assert notifier.enabled and notifier.watchdog_interval_s == 2.0
    notifier.ready("watching 2 cameras")
    notifier.watchdog()
    notifier.stopping()
    messages = [sock.recv(4096).decode() for _ in range(3)]
    assert messages == ["READY=1\nSTATUS=watching 2 cameras", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_address():
    name = f"surveil-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [({}, None), ({"WATCHDOG_USEC": "0"}, None), ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, None)],
)
def test_disabled_outside_systemd_or_for_other_pid(env, interval):
    notifier = Notifier(env)
    assert notifier.watchdog_interval_s == interval
    if "NOTIFY_SOCKET" not in env:
        assert not notifier.enabled and notifier.ready() is False
