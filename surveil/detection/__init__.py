"""Detection: frames in, one ``Detections`` per frame out.

- ``protocol``: the ``Detector`` interface and the post-processing every backend shares.
- ``factory``: the backend ``detector.backend`` asks for (``create_detector``, ``resolve_backend``).
- ``torch_detector``: the PyTorch backend (the GPU path); ``preprocessing``: its batched input path.
- ``runtimes``: the exported-graph backends (ONNX Runtime, OpenVINO; no torch) and where their graph comes from.
- ``graph``: the shipped graph's sidecar and its numpy/OpenCV resize (no torch); ``graph_export`` builds one (torch).
- ``checkpoints``, ``architectures``: loading models; ``export``: ``surveil export``.
- ``agreement``: how far two detectors agree (backend tests and benches).
"""
