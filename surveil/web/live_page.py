"""The live page: every camera's annotated picture scaled to its card, with its state, processed
vs offered frame rate and drop ratio, the time of its newest frame; the MQTT connection and spool;
the incidents in progress; a legend of the overlay. It refreshes itself from /status.json.
Every value is escaped; camera names only, never their URLs."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from surveil import __version__

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 1.5rem; background: #111; color: #eee; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; margin: 0 0 .75rem; }
h1 { font-size: 1.3rem; margin: 0; } h1 small { color: #888; font-weight: normal; }
.badge { font-weight: bold; padding: .05rem .45rem; border-radius: 3px; background: #555; color: #fff; }
.badge.ok, .state.up { background: #1d6b2f; } .badge.bad, .state.down { background: #8b1d1d; }
.badge.off, .state.starting { background: #555; }
.cameras { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 640px), 1fr)); gap: 1rem; }
.camera { background: #1c1c1c; padding: .75rem; border-radius: 6px; }
.camera h2 { font-size: 1.1rem; margin: 0 0 .4rem; }
.camera img { display: block; width: 100%; height: auto; aspect-ratio: 4 / 3; object-fit: contain; background: #000; }
.status { margin: 0 0 .5rem; color: #ccc; font-size: .95rem; line-height: 1.6; }
.state { font-weight: bold; padding: 0 .4rem; border-radius: 3px; color: #fff; }
.stale { color: #f88; font-weight: bold; }
.side { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 420px), 1fr)); gap: 1rem; margin-top: 1rem; }
.panel { background: #1c1c1c; padding: .75rem; border-radius: 6px; font-size: .92rem; }
.panel h2 { font-size: 1rem; margin: 0 0 .4rem; }
.legend { list-style: none; padding: 0; margin: 0; line-height: 1.7; }
.swatch { display: inline-block; width: 1.6em; height: .9em; vertical-align: middle; margin-right: .4em; }
#incidents { margin: 0; padding-left: 1.1rem; line-height: 1.6; }
a { color: #8cf; }
"""

_LEGEND = [
    ("border: 3px solid #00dc00", "tracked object: #id, class (when the model has several), detector score (0-1)"),
    ("border: 3px solid #ff0000", "object in an incident; a zone or line in red has one open"),
    ("border: 1px solid #00dc00", "thin box: a track not matched in this frame (predicted)"),
    ("border: 1px solid #a0a0a0", "thin grey: a raw detection not (yet) tracked — a low score or too new"),
    ("border: 3px solid #ffc800", "zone (name and counts); a line in blue, arrow = its forward direction"),
    ("border-bottom: 2px solid #00dc00", "trail: where a track went over the last ~3 s"),
]

_SCRIPT = """
const fmtTime = ts => ts ? new Date(ts * 1000).toLocaleTimeString() : '—';
function age(ts, now) { return ts ? Math.max(0, now - ts) : null; }
async function refresh() {
  let status;
  try {
    const response = await fetch('/status.json', {cache: 'no-store'});
    if (!response.ok) return;
    status = await response.json();
  } catch (e) { return; /* the daemon is restarting; try again */ }
  const now = status.now;
  document.getElementById('clock').textContent = fmtTime(now);
  for (const camera of status.cameras) {
    const section = document.querySelector(`section[data-camera="${CSS.escape(camera.name)}"]`);
    if (!section) continue;
    const state = section.querySelector('.state');
    state.textContent = camera.state; state.className = 'state ' + camera.state;
    section.querySelector('.fps').textContent = camera.fps.toFixed(1);
    section.querySelector('.offered').textContent = camera.offered_fps.toFixed(1);
    section.querySelector('.drop').textContent = Math.round(camera.drop_ratio * 100);
    const seconds = age(camera.last_frame_ts, now);
    const stamp = section.querySelector('.frame-time');
    stamp.textContent = camera.last_frame_ts ? `${fmtTime(camera.last_frame_ts)} (${seconds.toFixed(1)} s ago)` : 'none yet';
    stamp.className = 'frame-time' + (seconds !== null && seconds > 10 ? ' stale' : '');
    section.querySelector('.reason').textContent = camera.reason;
  }
  const mqtt = document.getElementById('mqtt');
  if (status.mqtt) {
    const m = status.mqtt;
    mqtt.textContent = !m.enabled ? 'off' : (m.connected ? 'connected' : 'disconnected');
    mqtt.className = 'badge ' + (!m.enabled ? 'off' : (m.connected ? 'ok' : 'bad'));
    document.getElementById('spool').textContent = m.spool;
  }
  const list = document.getElementById('incidents');
  const incidents = status.incidents || [];
  list.replaceChildren(...incidents.map(i => {
    const item = document.createElement('li');
    const who = (i.subjects || []).map(s => `#${s.track_id} ${s.class}`).join(', ');
    item.textContent = `${i.camera} · ${i.rule} (${i.rule_type}) since ${fmtTime(i.started_ts)}, ` +
      `${Math.round(now - i.started_ts)} s` + (who ? ` · ${who}` : '');
    return item;
  }));
  document.getElementById('no-incidents').hidden = incidents.length > 0;
}
refresh();
setInterval(refresh, 2000);
// the still frame first, so that the page finishes loading; then the stream (a multipart image never does)
window.addEventListener('load', () => {
  for (const img of document.querySelectorAll('img[data-live]')) img.src = img.dataset.live;
});
"""


def _section(item: dict[str, Any]) -> str:
    e = html.escape
    name = e(item["name"])
    return (
        f'<section class="camera" data-camera="{name}">\n'
        f"  <h2>{name}</h2>\n"
        f'  <p class="status"><span class="state {e(item["state"])}">{e(item["state"])}</span>\n'
        f'    <span class="fps">{item["fps"]:.1f}</span> fps analysed of <span class="offered">'
        f'{item.get("offered_fps", 0.0):.1f}</span> offered · <span class="drop">'
        f"{round(item.get('drop_ratio', 0.0) * 100)}</span> % dropped ·\n"
        f'    frame: <span class="frame-time">—</span> · <span class="reason">{e(item["reason"])}</span></p>\n'
        f'  <a href="{e(item["latest"])}"><img class="live" src="{e(item["latest"])}" data-live="{e(item["live"])}" '
        f'alt="live view of {name}"></a>\n'
        "</section>"
    )


def render_live_page(items: Sequence[dict[str, Any]], nonce: str) -> str:
    """The page for the cameras as ``/cameras.json`` lists them."""
    cameras = "\n".join(_section(item) for item in items) or "<p>No cameras are enabled.</p>"
    legend = "\n".join(
        f'<li><span class="swatch" style="{style}"></span>{html.escape(text)}</li>' for style, text in _LEGEND
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>surveil — live view</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>surveil live view <small>{html.escape(__version__)} · {len(items)} camera(s)</small></h1>\n"
        '<span>now <span id="clock">—</span></span>\n'
        '<span>MQTT <span id="mqtt" class="badge off">—</span> · spool <span id="spool">—</span> alert(s) waiting</span>\n'
        '<span><a href="/review">incidents</a> · <a href="/metrics">metrics</a> · <a href="/status.json">status.json</a></span>'
        "</header>\n"
        f'<div class="cameras">\n{cameras}\n</div>\n'
        '<div class="side">\n<div class="panel"><h2>Open incidents</h2><ul id="incidents"></ul>'
        '<p id="no-incidents">none</p></div>\n'
        f'<div class="panel"><h2>Legend</h2><ul class="legend">\n{legend}\n</ul></div>\n</div>\n'
        f'<script nonce="{nonce}">{_SCRIPT}</script>\n</body>\n</html>\n'
    )
