"""surveil's benchmarks: scripts run from the repository root as ``python -m bench.<name>``.

They import each other as ``bench.<name>`` and the daemon's code only through its public names;
``surveil bench`` (:mod:`surveil.tools.bench`) is the one harness for pipeline throughput against
the bare model, and :mod:`bench.gpu_bench` is its GPU front end. Clips are read with
:func:`surveil.video.clips.read_clip`. Figures are benchmark output, never test assertions.
"""
