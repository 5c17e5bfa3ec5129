# syntax=docker/dockerfile:1
# streamer: synthetic end-to-end monitor for live video platforms.
#   docker build -t streamer .
#   docker run --rm -p 9091:9090 --env-file .env streamer           # monitor (the default)
#   docker run --rm streamer probe --help                           # any other subcommand
# No system FFmpeg: the PyAV wheels carry their own FFmpeg libraries. libsrt (SRT ingest,
# which those wheels lack) comes from Debian and is loaded through ctypes.

ARG PYTHON_IMAGE=python:3.11-slim

# --- stage 1: wheels of the project and of every dependency --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# --- stage 2: runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="streamer" \
      org.opencontainers.image.description="Synthetic end-to-end monitor for live video platforms" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    METRICS_ADDR=0.0.0.0:9090 \
    STREAMER_CACHE_DIR=/cache

# SRT ingest: libsrt, used through ctypes (the PyAV wheels have no SRT).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsrt1.5-openssl \
    && rm -rf /var/lib/apt/lists/*

# Install from the build stage's wheels only (no index), without keeping them in a layer.
# The versions are pinned by the wheels that stage 1 resolved.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels streamer

# Non-root user with a fixed numeric id (Kubernetes' runAsNonRoot can check it); the clip
# cache is the only place the monitor writes to.
RUN groupadd --system --gid 10001 streamer \
    && useradd --system --uid 10001 --gid streamer --home-dir /home/streamer --create-home \
       --shell /usr/sbin/nologin streamer \
    && mkdir -p /cache \
    && chown streamer:streamer /cache
VOLUME ["/cache"]

USER 10001:10001
WORKDIR /home/streamer
EXPOSE 9090

# /healthz answers 200 while the monitor loop makes progress and 503 when it is stuck;
# urlopen raises on 503 and on connection errors. The port follows METRICS_ADDR.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('METRICS_ADDR', '0.0.0.0:9090').rsplit(':', 1)[-1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

ENTRYPOINT ["streamer"]
CMD ["monitor"]
