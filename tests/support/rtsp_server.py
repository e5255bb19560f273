#!/usr/bin/python3
"""A real RTSP server for tests: relays an H.264 mp4 in an endless loop, without re-encoding.

Run it with Debian's interpreter (python3-gi, gir1.2-gst-rtsp-server-1.0)::

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --clip clip.mp4 [--path /cam]

The clip's access units are read once (qtdemux ! h264parse, SPS/PPS repeated before each
keyframe) and fed to every client's media through an ``appsrc`` with running timestamps; the
server's sinks pace them at the clip's frame rate. Every client gets its own media, starting at
the clip's first keyframe. "READY <port> <path>" is printed on stdout once the server listens.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

AU_CAPS = "video/x-h264,stream-format=byte-stream,alignment=au"


def load_access_units(clip: str) -> tuple[list[bytes], int, int]:
    """The clip's H.264 access units (Annex B) and its frame rate as (num, den)."""
    pipeline = Gst.parse_launch(
        f"filesrc name=src ! qtdemux ! h264parse config-interval=-1 ! {AU_CAPS} ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("src").set_property("location", clip)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[bytes] = []
    num, den = 25, 1
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        units.append(buf.extract_dup(0, buf.get_size()))
        ok, n, d = sample.get_caps().get_structure(0).get_fraction("framerate")
        if ok and n > 0 and d > 0:
            num, den = n, d
    pipeline.set_state(Gst.State.NULL)
    if not units:
        raise SystemExit(f"no H.264 access units in {clip}")
    return units, num, den


class LoopFeeder:
    """Pushes the access units into one media's appsrc, looping forever, on need-data."""

    def __init__(self, units: list[bytes], num: int, den: int) -> None:
        self.units = units
        self.duration = Gst.util_uint64_scale_int(Gst.SECOND, den, num)
        self.count = 0

    def need_data(self, appsrc: Gst.Element, _length: int) -> None:
        data = self.units[self.count % len(self.units)]
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = self.count * self.duration
        buf.dts = buf.pts
        buf.duration = self.duration
        self.count += 1
        appsrc.emit("push-buffer", buf)


def make_factory(units: list[bytes], num: int, den: int) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory.new()
    factory.set_launch(
        f"( appsrc name=src format=time caps={AU_CAPS},framerate={num}/{den} "
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(False)

    def configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = LoopFeeder(units, num, den)
        appsrc.connect("need-data", feeder.need_data)
        media.feeder = feeder  # keep it alive as long as the media

    factory.connect("media-configure", configure)
    return factory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", required=True, help="H.264 mp4 to relay in a loop")
    parser.add_argument("--path", default="/cam", help="mount point (default /cam)")
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()

    Gst.init(None)
    units, num, den = load_access_units(args.clip)
    server = GstRtspServer.RTSPServer.new()
    server.set_address(args.address)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, make_factory(units, num, den))
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()} {args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
