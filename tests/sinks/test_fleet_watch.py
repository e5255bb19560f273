"""FleetWatch: when a daemon of the fleet goes offline, the others mark its unserved cameras down."""

import json

import pytest

from surveil.sinks.mqtt.fleet import FleetWatch

PREFIX = "site"


def watch(me="a", own=frozenset({"cam-a"})):
    return FleetWatch(
        PREFIX,
        me,
        lambda: set(own),
        lambda camera, reason, ts: (f"{PREFIX}/{camera}/status", reason.encode()),
        clock=lambda: 1.0,
    )


def fleet(instance, *cameras):
    return f"{PREFIX}/fleet/{instance}", json.dumps({"instance": instance, "cameras": list(cameras)}).encode()


def available(instance, state):
    return f"{PREFIX}/{instance}/available", state.encode()


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param(
            [fleet("b", "cam-b1", "cam-b2"), available("b", "online"), available("b", "offline")],
            ["cam-b1", "cam-b2"],
            id="an-instance-dies",
        ),
        pytest.param(
            [available("b", "offline"), fleet("b", "cam-b1")], ["cam-b1"], id="its-fleet-list-arrives-after-its-will"
        ),
        pytest.param([fleet("a", "cam-a"), available("a", "offline")], [], id="never-myself"),
        pytest.param([fleet("b", "cam-a", "cam-b1"), available("b", "offline")], ["cam-b1"], id="never-a-camera-i-own"),
        pytest.param(
            [fleet("b", "cam-x"), fleet("c", "cam-x"), available("b", "offline")],
            [],
            id="a-camera-a-live-instance-lists",
        ),
        pytest.param([fleet("b", "cam-b1"), available("b", "online")], [], id="online-changes-nothing"),
        pytest.param(
            [(f"{PREFIX}/fleet/b", b"not json"), available("b", "offline")], [], id="a-broken-fleet-list-is-ignored"
        ),
        pytest.param([("other/fleet/b", fleet("b", "cam-b1")[1]), available("b", "offline")], [], id="another-prefix"),
    ],
)
def test_down_statuses(messages, expected):
    w = watch()
    published = []
    for topic, payload in messages:
        published += w.observe(topic, payload)
    assert [topic for topic, _ in published] == [f"{PREFIX}/{camera}/status" for camera in expected]
    assert all(b"b" in payload for _, payload in published)  # the reason names the instance


def test_subscriptions_cover_availability_and_fleet_lists():
    assert watch().subscriptions == [f"{PREFIX}/+/available", f"{PREFIX}/fleet/+"]
