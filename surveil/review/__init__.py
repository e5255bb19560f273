"""Incident review: the best snapshot and a short clip of every incident, kept on disk under the
state dir with bounded age and size (docs/review.md).

    ring.FrameRing     per camera: recent analysed frames as JPEG, bounded in seconds and bytes
    encoder            H.264 MP4 clips by the ffmpeg binary, one low-priority thread, bounded queue
    store.ReviewStore  incident records, snapshots and clips on disk; retention by age and size
    recorder.Review    what the pipeline calls: frames in, alerts through (with their URLs)

Nothing here raises into the alert path: a full disk costs the review, never an alert.
"""
