"""Video in: cameras and recorded clips.

- ``source``: the capture thread of one camera (:class:`~surveil.video.source.CameraSource`).
- ``opening``: opening a camera's stream, file or device the way the daemon does.
- ``diagnose``: why a stream does not open, probed and named (``reason_kind``).
- ``pacing``: reconnect back-off, ``fps_limit``, realtime pacing of files, a file's frame rate.
- ``clips``: the one reader of recorded clips (:func:`~surveil.video.clips.read_clip`).
- ``motion``: the motion gate that spares the detector still frames.
"""
