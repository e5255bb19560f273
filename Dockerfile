# syntax=docker/dockerfile:1
# surveil in a container: one image per accelerator, from this one file.
#
#   docker build -t surveil:cpu .                          # CPU: OpenVINO + ONNX Runtime, no PyTorch (the shipped
#                                                          # model's graph, models/*.onnx, runs without it)
#   docker build -t surveil:cuda --build-arg VARIANT=cuda .  # NVIDIA GPUs: PyTorch's CUDA wheels (they bring the CUDA
#                                                          # libraries; the host needs the driver and the NVIDIA container toolkit)
#   docker run --rm -p 9108:9108 -v $PWD/site.yaml:/etc/surveil/site.yaml:ro surveil:cpu
#   docker run --rm --gpus all ... surveil:cuda
#
# The shipped model (models/) and configs (configs/, with the demo clip) are in the image under
# /opt/surveil; the entrypoint is `surveil run`, its config /etc/surveil/site.yaml (mount one, or
# pass `-c FILE`), its state (alert spool, model cache) in /var/lib/surveil. It runs as the
# unprivileged user `surveil` (uid 10001). Probes: GET /healthz (liveness) and /readyz (readiness)
# on the metrics port, 9108 (deploy/kubernetes/ uses them; the HEALTHCHECK below does too).

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: a virtual environment in /opt/venv
FROM ${PYTHON_IMAGE} AS build-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

FROM build-base AS build-cpu
# the runtime extra: OpenVINO + ONNX Runtime run the graph shipped beside the checkpoint; no PyTorch at all
# (a checkpoint without its graph is a start-up error that names the build command: python -m surveil.detection.graph build)
ENV SURVEIL_EXTRAS=runtime

FROM build-base AS build-cuda
# PyPI's x86-64 torch wheels are CUDA builds; the CUDA runtime comes with them as nvidia-* wheels
# (installed first, in a layer of their own: it survives changes to the source)
RUN pip install --no-cache-dir "torch>=2.6,<2.15" "torchvision>=0.21,<0.30"
ENV SURVEIL_EXTRAS=torch

# the extras come with the stage as ENV (an ARG would not reach this stage)
# hadolint ignore=DL3006
FROM build-${VARIANT} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY surveil ./surveil
# this checkout; its dependencies are pinned to ranges in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[${SURVEIL_EXTRAS}]" && python -m compileall -q /opt/venv

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="surveil" \
      org.opencontainers.image.description="Real-time multi-camera surveillance detection daemon (${VARIANT})" \
      org.opencontainers.image.licenses="Apache-2.0"
# OpenCV's headless wheel still wants libglib; curl is for the HEALTHCHECK
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0=2.* curl=7.* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 surveil \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/surveil --shell /usr/sbin/nologin surveil \
    && install -d -o surveil -g surveil -m 0750 /var/lib/surveil \
    && install -d -m 0755 /etc/surveil
COPY --from=build /opt/venv /opt/venv
COPY models /opt/surveil/models
COPY configs /opt/surveil/configs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STATE_DIRECTORY=/var/lib/surveil \
    SURVEIL_STATE_DIR=/var/lib/surveil \
    SURVEIL_METRICS_LISTEN=0.0.0.0:9108 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /var/lib/surveil
USER 10001:10001
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9108/healthz"]
ENTRYPOINT ["surveil", "run"]
CMD ["-c", "/etc/surveil/site.yaml"]
