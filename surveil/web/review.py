"""The incident review on the daemon's web server (same auth as the live view):

    /review                                    HTML: recent incidents, filterable by camera, rule and phase
    /review/incidents.json                     the same as JSON (?camera=&rule=&phase=&limit=)
    /review/incidents/<id>.json                one incident (``clip``: recording, pending, ready, dropped, failed, none)
    /review/incidents/<id>/snapshot.jpg        its best snapshot (404 until there is one)
    /review/incidents/<id>/clip.mp4            its H.264 clip (404 until written; byte ranges for seeking)

The server asks its ViewProvider for ``review_store()`` (a surveil.review.store.ReviewStore, or None
when ``review.enabled`` is false)."""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from surveil.review.store import CLIP, SNAPSHOT, ReviewStore

PHASES = ("start", "update", "end")
MAX_LIST = 500
_ITEM = re.compile(r"^/review/incidents/([^/]+?)(\.json|/snapshot\.jpg|/clip\.mp4)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Responder(Protocol):
    headers: Any

    def _send(
        self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None: ...

    def _send_text(self, status: HTTPStatus, text: str, headers: dict[str, str] | None = None) -> None: ...


def serve(handler: Responder, store: ReviewStore | None, path: str, query: Mapping[str, list[str]]) -> None:
    """Answer one /review request."""
    if store is None:
        return handler._send_text(HTTPStatus.NOT_FOUND, "incident review is off (review.enabled: false)\n")
    wanted = _filters(query)
    if path in ("/review", "/review/"):
        nonce = secrets.token_urlsafe(12)
        csp = f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self'; media-src 'self'"
        body = render_review(store, wanted, nonce).encode()
        return handler._send(HTTPStatus.OK, "text/html; charset=utf-8", body, {"Content-Security-Policy": csp})
    if path == "/review/incidents.json":
        items = store.incidents(**wanted, limit=_limit(query))
        return handler._send(HTTPStatus.OK, "application/json", json.dumps(items).encode())
    match = _ITEM.match(path)
    record = store.get(match.group(1)) if match else None
    if match is None or record is None:
        return handler._send_text(HTTPStatus.NOT_FOUND, "no such incident\n")
    incident_id, what = match.groups()
    if what == ".json":
        return handler._send(HTTPStatus.OK, "application/json", json.dumps(record).encode())
    name = SNAPSHOT if what.endswith(".jpg") else CLIP
    found = store.file(incident_id, name)
    if found is None:
        why = "no snapshot yet\n" if name == SNAPSHOT else f"clip not written: {record.get('clip', 'none')}\n"
        return handler._send_text(HTTPStatus.NOT_FOUND, why, {"Retry-After": "5"})
    try:
        data = found.read_bytes()
    except OSError:  # deleted by retention a moment ago
        return handler._send_text(HTTPStatus.NOT_FOUND, "no such file\n")
    if name == SNAPSHOT:
        return handler._send(HTTPStatus.OK, "image/jpeg", data)
    return _send_ranged(handler, data, "video/mp4")


def _send_ranged(handler: Responder, data: bytes, content_type: str) -> None:
    """The whole body, or the one byte range asked for (what a <video> asks to seek)."""
    match = _RANGE.match(handler.headers.get("Range", "").strip())
    size = len(data)
    headers = {"Accept-Ranges": "bytes"}
    if match is None or match.groups() == ("", ""):
        return handler._send(HTTPStatus.OK, content_type, data, headers)
    first, last = match.groups()
    start, end = (size - int(last), size - 1) if not first else (int(first), int(last) if last else size - 1)
    start, end = max(0, start), min(end, size - 1)
    if start > end:
        headers["Content-Range"] = f"bytes */{size}"
        return handler._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "text/plain", b"", headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    handler._send(HTTPStatus.PARTIAL_CONTENT, content_type, data[start : end + 1], headers)


def _filters(query: Mapping[str, list[str]]) -> dict[str, str | None]:
    def one(name: str) -> str | None:
        value = (query.get(name) or [""])[0].strip()
        return value[:100] or None

    phase = one("phase")
    return {"camera": one("camera"), "rule": one("rule"), "phase": phase if phase in PHASES else None}


def _limit(query: Mapping[str, list[str]]) -> int:
    value = (query.get("limit") or ["100"])[0]
    return max(1, min(MAX_LIST, int(value))) if value.isdigit() else 100


# ---------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; background: #111; color: #eee; }
h1 { font-size: 1.3rem; margin: 0 0 1rem; } h1 small { color: #888; font-weight: normal; }
form { margin: 0 0 1rem; display: flex; gap: .75rem; align-items: end; flex-wrap: wrap; }
label { display: flex; flex-direction: column; font-size: .85rem; color: #bbb; }
select, button { font: inherit; background: #222; color: #eee; border: 1px solid #444; padding: .2rem .4rem; }
.incidents { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); gap: 1rem; }
.incident { background: #1c1c1c; padding: .75rem; border-radius: 6px; }
.incident h2 { font-size: 1rem; margin: 0 0 .4rem; }
.media { display: grid; grid-template-columns: 1fr 1fr; gap: .5rem; }
.media img, .media video { width: 100%; background: #000; aspect-ratio: 4 / 3; object-fit: contain; }
.none { display: flex; align-items: center; justify-content: center; background: #000; color: #888;
        aspect-ratio: 4 / 3; font-size: .9rem; }
.meta { font-size: .85rem; color: #bbb; margin: .4rem 0 0; }
.phase { font-weight: bold; padding: 0 .4rem; border-radius: 3px; background: #555; color: #fff; }
.phase.start, .phase.update { background: #8b1d1d; } .phase.end { background: #1d4f6b; }
a { color: #8cf; }
"""

_SCRIPT = """
for (const time of document.querySelectorAll('time[datetime]')) {
  time.title = time.textContent; time.textContent = new Date(time.dateTime).toLocaleString();
}
"""


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    return f'<time datetime="{iso}">{time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))}</time>'


def _select(name: str, options: list[str], chosen: str | None) -> str:
    items = ['<option value="">all</option>'] + [
        f'<option value="{html.escape(o)}"{" selected" if o == chosen else ""}>{html.escape(o)}</option>'
        for o in options
    ]
    return f'<label>{name}<select name="{name}">{"".join(items)}</select></label>'


def _incident(record: dict[str, Any]) -> str:
    base = f"/review/incidents/{quote(record['incident_id'], safe='')}"
    e = html.escape
    snapshot = (
        f'<img src="{base}/snapshot.jpg" alt="snapshot of incident {e(record["incident_id"])}">'
        if record.get("snapshot")
        else '<div class="none">no snapshot</div>'
    )
    clip_state = record.get("clip", "none")
    clip = (
        f'<video src="{base}/clip.mp4" controls preload="metadata" muted playsinline></video>'
        if clip_state == "ready"
        else f'<div class="none">clip: {e(clip_state)}</div>'
    )
    subjects = ", ".join(f"#{s['track_id']} {e(s['class'])} {s['score']:.2f}" for s in record.get("subjects", []))
    where = record.get("zone") or record.get("line") or ""
    return (
        f'<article class="incident" data-incident="{e(record["incident_id"])}">\n'
        f"  <h2>{e(record['camera'])} · {e(record['rule'])} <small>({e(record['rule_type'])}"
        f"{' · ' + e(where) if where else ''})</small></h2>\n"
        f'  <div class="media">{snapshot}{clip}</div>\n'
        f'  <p class="meta"><span class="phase {e(record["phase"])}">{e(record["phase"])}</span> '
        f"{e(record['severity'])} · started {_when(record['started_ts'])} · "
        f"{'ended ' + _when(record.get('ended_ts')) if record.get('ended_ts') else 'in progress'} · "
        f"{record.get('duration_s', 0):.1f} s</p>\n"
        f'  <p class="meta">subjects: {subjects or "—"} · <a href="{base}.json">json</a></p>\n'
        "</article>"
    )


def render_review(store: ReviewStore, wanted: dict[str, str | None], nonce: str) -> str:
    every = store.incidents(limit=10**9)
    cameras = sorted({r["camera"] for r in every})
    rules = sorted({r["rule"] for r in every})
    shown = store.incidents(**wanted, limit=MAX_LIST // 5)
    items = "\n".join(_incident(r) for r in shown) or "<p>No incidents match.</p>"
    json_link = "/review/incidents.json" + (
        "?" + urlencode({k: v for k, v in wanted.items() if v}) if any(wanted.values()) else ""
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>surveil — incidents</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>Incidents <small>{len(shown)} shown of {len(every)} kept · <a href="/">live view</a></small></h1>\n'
        f'<form method="get" action="/review">{_select("camera", cameras, wanted["camera"])}'
        f"{_select('rule', rules, wanted['rule'])}{_select('phase', list(PHASES), wanted['phase'])}"
        f'<button type="submit">filter</button> <a href="{html.escape(json_link)}">as JSON</a></form>\n'
        f'<div class="incidents">\n{items}\n</div>\n'
        f'<script nonce="{nonce}">{_SCRIPT}</script>\n</body>\n</html>\n'
    )
