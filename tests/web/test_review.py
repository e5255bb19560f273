"""/review and its JSON endpoints on the web server: filters, files, byte ranges, 404s, the same auth."""

from __future__ import annotations

import http.client
import json

import pytest

from surveil.config import WebConfig
from surveil.review.store import CLIP, SNAPSHOT, ReviewStore
from surveil.service.status import CameraView
from surveil.web.server import WebServer
from tests.review.test_store import Events

TOKEN = "review-token-0123456789"


class Provider:
    def __init__(self, store: ReviewStore | None):
        self.store = store

    def camera_views(self):
        return [CameraView("gate", "up", "streaming", 1.0, 1)]

    def frame_version(self, camera):
        return None

    def annotated_frame(self, camera):
        return None

    def review_store(self):
        return self.store


def _record(incident_id: str, started: float, phase: str, camera: str, rule: str, clip: str = "ready") -> dict:
    return {
        "incident_id": incident_id, "camera": camera, "rule": rule, "rule_type": "zone_intrusion",
        "severity": "warning", "zone": "door", "line": None, "phase": phase, "started_ts": started,
        "updated_ts": started + 2, "ended_ts": started + 2 if phase == "end" else None, "duration_s": 2.0,
        "subjects": [{"track_id": 4, "class": "person", "score": 0.9, "box": [1, 2, 3, 4]}], "details": {},
        "snapshot": True, "clip": clip,
    }  # fmt: skip


@pytest.fixture
def served(tmp_path):
    store = ReviewStore(tmp_path, 3600, 10**9, Events())
    for record in (
        _record("a1", 100.0, "end", "gate", "door"),
        _record("b2", 200.0, "start", "gate", "fence", clip="recording"),
        _record("c3", 300.0, "end", "yard", "door"),
    ):
        store.put(record)
        store.write(record["incident_id"], SNAPSHOT, b"\xff\xd8jpeg-" + record["incident_id"].encode())
    store.write("a1", CLIP, bytes(range(256)) * 4)
    servers = []

    def start(store_given=store, **web) -> WebServer:
        server = WebServer("127.0.0.1", 0, Provider(store_given), config=WebConfig(**web)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def fetch(server: WebServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["c3", "b2", "a1"]),
        ("?camera=gate", ["b2", "a1"]),
        ("?rule=door", ["c3", "a1"]),
        ("?phase=end", ["c3", "a1"]),
        ("?camera=gate&rule=door&phase=end", ["a1"]),
        ("?phase=bogus", ["c3", "b2", "a1"]),  # an unknown phase filters nothing
        ("?limit=1", ["c3"]),
    ],
)
def test_incidents_json_filters(served, query, expected):
    status, headers, body = fetch(served(), f"/review/incidents.json{query}")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert [r["incident_id"] for r in json.loads(body)] == expected


def test_page_lists_incidents_with_snapshot_and_clip(served):
    status, headers, body = fetch(served(), "/review?camera=gate")
    page = body.decode()
    assert status == 200 and "media-src 'self'" in headers["Content-Security-Policy"]
    assert page.count('<article class="incident"') == 2
    assert '<video src="/review/incidents/a1/clip.mp4"' in page
    assert "clip: recording" in page  # b2 is still going
    assert '<img src="/review/incidents/b2/snapshot.jpg"' in page
    assert "#4 person 0.90" in page


@pytest.mark.parametrize(
    ("path", "status", "body_start"),
    [
        ("/review/incidents/a1.json", 200, b'{"incident_id": "a1"'),
        ("/review/incidents/a1/snapshot.jpg", 200, b"\xff\xd8jpeg-a1"),
        ("/review/incidents/b2/clip.mp4", 404, b"clip not written: recording"),
        ("/review/incidents/zz/snapshot.jpg", 404, b"no such incident"),
        ("/review/incidents/..%2f..%2fetc/snapshot.jpg", 404, b"no such incident"),
        ("/review/nothing", 404, b"no such incident"),
    ],
)
def test_items(served, path, status, body_start):
    got_status, _headers, body = fetch(served(), path)
    assert (got_status, body[: len(body_start)]) == (status, body_start)


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "length"),
    [
        (None, 200, None, 1024),
        ("bytes=0-99", 206, "bytes 0-99/1024", 100),
        ("bytes=1000-", 206, "bytes 1000-1023/1024", 24),
        ("bytes=-10", 206, "bytes 1014-1023/1024", 10),
        ("bytes=2000-3000", 416, "bytes */1024", 0),
    ],
)
def test_clip_byte_ranges(served, range_header, status, content_range, length):
    headers = {"Range": range_header} if range_header else {}
    got, response_headers, body = fetch(served(), "/review/incidents/a1/clip.mp4", headers)
    assert (got, response_headers.get("Content-Range"), len(body)) == (status, content_range, length)
    if status != 416:
        assert response_headers["Content-Type"] == "video/mp4" and response_headers["Accept-Ranges"] == "bytes"


def test_same_auth_as_the_live_view(served):
    server = served(auth_token=TOKEN)
    for path in ("/review", "/review/incidents.json", "/review/incidents/a1/clip.mp4"):
        assert fetch(server, path)[0] == 401
        assert fetch(server, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_review_off_answers_404_with_why(served):
    status, _, body = fetch(served(store_given=None), "/review")
    assert status == 404 and b"review.enabled: false" in body
