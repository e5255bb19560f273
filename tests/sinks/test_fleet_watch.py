"""FleetWatch: when a daemon of the fleet goes offline, the others mark its unserved cameras down."""

import json

import pytest

from surveil.sinks.mqtt.fleet import FleetWatch, is_fleet_down, valid_camera_name

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


# ---------------------------------------------------------------- issue 18.5: forged, stale and unsettled messages


def fleet_body(instance, cameras, started=0.0, **extra):
    return json.dumps({"instance": instance, "cameras": cameras, "started": started, **extra}).encode()


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param(
            [(f"{PREFIX}/fleet/b", fleet_body("b", ["x/injected"])), available("b", "offline")],
            [],
            id="camera-with-a-slash",
        ),
        pytest.param([(f"{PREFIX}/fleet/b", fleet_body("b", ["#"])), available("b", "offline")], [], id="hash"),
        pytest.param([(f"{PREFIX}/fleet/b", fleet_body("b", ["+"])), available("b", "offline")], [], id="plus"),
        pytest.param(
            [(f"{PREFIX}/fleet/b", fleet_body("b", ["cam-b1", "x/injected"])), available("b", "offline")],
            [],
            id="one-bad-name-drops-the-whole-list",
        ),
        pytest.param(
            [(f"{PREFIX}/fleet/b", fleet_body("b", ["a" * 65])), available("b", "offline")], [], id="too-long-a-name"
        ),
        pytest.param([(f"{PREFIX}/fleet/b", fleet_body("b", [7])), available("b", "offline")], [], id="not-a-string"),
        pytest.param(
            [(f"{PREFIX}/fleet/b", fleet_body("c", ["cam-b1"])), available("b", "offline")],
            [],
            id="names-another-instance-than-its-topic",
        ),
        pytest.param(
            [(f"{PREFIX}/fleet/b", b'{"instance": "b", "cameras": "cam-b1"}'), available("b", "offline")],
            [],
            id="cameras-not-a-list",
        ),
        pytest.param(
            [(f"{PREFIX}/fleet/b", fleet_body("b", ["cam-b1"], started="x")), available("b", "offline")],
            [],
            id="started-not-a-number",
        ),
        pytest.param([fleet("ghost", "cam-g")], [], id="unknown-instance-without-availability"),
        pytest.param(
            [fleet("ghost", "cam-g"), (f"{PREFIX}/ghost/available", b"dead")],
            [],
            id="availability-neither-online-nor-offline",
        ),
        pytest.param(
            [fleet("ghost", "cam-b1"), fleet("b", "cam-b1"), available("b", "offline")],
            [],
            id="a-camera-an-unannounced-instance-lists-is-left-alone",
        ),
        pytest.param(
            [
                (f"{PREFIX}/fleet/b", fleet_body("b", ["cam-b1"], started=200.0)),
                (f"{PREFIX}/fleet/b", fleet_body("b", ["cam-old"], started=100.0)),  # stale generation
                available("b", "offline"),
            ],
            ["cam-b1"],
            id="a-stale-generation-is-ignored",
        ),
        pytest.param(
            [
                (f"{PREFIX}/fleet/b", fleet_body("b", ["cam-old"], started=100.0)),
                (f"{PREFIX}/fleet/b", fleet_body("b", ["cam-b1"], started=200.0)),
                available("b", "offline"),
            ],
            ["cam-b1"],
            id="a-newer-generation-supersedes",
        ),
        pytest.param(
            [fleet("b", "cam-b1"), available("b", "offline"), available("b", "offline"), fleet("b", "cam-b1")],
            ["cam-b1"],
            id="each-down-once",
        ),
        pytest.param(
            [(f"{PREFIX}/fleet/b/extra", fleet("b", "cam-b1")[1]), available("b", "offline")], [], id="deeper-topic"
        ),
    ],
)
def test_forged_and_stale_messages(messages, expected):
    w = watch()
    published = []
    for topic, payload in messages:
        published += w.observe(topic, payload)
    assert [topic for topic, _ in published] == [f"{PREFIX}/{camera}/status" for camera in expected]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def settling_watch(clock, settle_s=2.0):
    return FleetWatch(
        PREFIX,
        "a",
        lambda: {"cam-a"},
        lambda camera, reason, ts: (f"{PREFIX}/{camera}/status", reason.encode()),
        clock=lambda: 1.0,
        settle_s=settle_s,
        monotonic=clock,
    )


def test_a_restart_reading_a_stale_instance_first_publishes_no_down():
    """The stale instance's retained offline and list arrive before the live owner's list: no down, ever."""
    clock = Clock()
    w = settling_watch(clock)
    assert w.observe(*available("old", "offline")) == []
    assert w.observe(*fleet("old", "cam-x", "cam-gone")) == []  # stale list: cam-x moved to "live" since
    clock.now = 0.5
    assert w.observe(*fleet("live", "cam-x")) == []
    assert w.observe(*available("live", "online")) == []
    assert w.flush() == []  # not settled yet
    clock.now = 2.4
    assert w.flush() == []
    clock.now = 2.6  # quiet for settle_s: decided from everything known now
    assert [topic for topic, _ in w.flush()] == [f"{PREFIX}/cam-gone/status"]
    assert w.due_at() is None


def test_a_flood_of_messages_delays_downs_at_most_five_settle_periods():
    clock = Clock()
    w = settling_watch(clock, settle_s=1.0)
    w.observe(*fleet("b", "cam-b1"))
    w.observe(*available("b", "offline"))
    published = []
    for step in range(1, 100):
        clock.now = step * 0.5
        published += w.observe(*fleet("c", f"cam-c{step}"))
        if published:
            break
    assert [topic for topic, _ in published] == [f"{PREFIX}/cam-b1/status"]
    assert clock.now <= 5.0


def test_a_camera_marked_down_is_marked_again_after_a_live_instance_served_it():
    w = watch()
    assert len(w.observe(*fleet("b", "cam-x")) + w.observe(*available("b", "offline"))) == 1
    assert w.observe(*fleet("c", "cam-x")) == []  # c took it over (its owner corrects the status)
    assert [t for t, _ in w.observe(*available("c", "offline"))] == [f"{PREFIX}/cam-x/status"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"up": false, "reason": "its daemon (b) is offline"}', True),
        (b'{"up": false, "reason": "no frame for 10 s"}', False),
        (b'{"up": true, "reason": "its daemon (b) is offline"}', False),
        (b"not json", False),
        (b"[]", False),
    ],
)
def test_is_fleet_down(payload, expected):
    assert is_fleet_down(payload) is expected


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("gate", True),
        ("plaza-01", True),
        ("x/injected", False),
        ("#", False),
        ("+", False),
        ("", False),
        ("a b", False),
    ],
)
def test_camera_names_follow_the_config_rule(name, valid):
    assert valid_camera_name(name) is valid


def test_a_flood_of_invented_instances_is_bounded(monkeypatch):
    monkeypatch.setattr("surveil.sinks.mqtt.fleet.MAX_FLEET_INSTANCES", 5)
    w = watch()
    for n in range(20):
        w.observe(*fleet(f"ghost{n}", f"cam-g{n}"))
        w.observe(*available(f"ghost{n}", "offline"))
    published = w.observe(*fleet("b", "cam-b1")) + w.observe(*available("b", "offline"))
    assert len(w._fleets) <= 5 and len(w._offline) <= 5
    assert published == []  # b came after the bound: ignored, not a crash
