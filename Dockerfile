# The reproduction in a CUDA image. Build: `docker compose build` (or `make docker-build`).
# The project is installed by the README's own target, `make install` (one recipe: the pinned
# pyproject.toml), so the image and a researcher's checkout run the same versions.
# CI lints this file with hadolint (`make lint`); it does not build it (no Docker engine there).
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# EGL for headless rendering (ModelNet40, moderngl): the NVIDIA driver's through the "graphics" capability on a
# GPU, Mesa's llvmpipe on a CPU (data_prep.render.SYSTEM_PACKAGES lists the same packages; libegl-mesa0 is only
# a recommendation of libegl1, so it is named). PyAV's wheels bundle FFmpeg, so decoding needs nothing from apt.
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    RUFF_NO_CACHE=true \
    PATH=/app/.venv/bin:$PATH

# Unpinned apt packages: the base image tag pins the distribution release (see .hadolint.yaml).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv make ca-certificates \
        libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri \
    && rm -rf /var/lib/apt/lists/*

# A non-root user; `docker compose` runs as the invoking user (HOST_UID/HOST_GID) so results are theirs.
RUN useradd --create-home --uid 1001 --user-group repro \
    && mkdir -p /app /data /results \
    && chown repro:repro /app /data /results
WORKDIR /app
USER 1001

COPY --chown=repro:repro . .
RUN make install \
    && rm -rf /tmp/.cache \
    && ln -s /data data \
    && ln -s /results results

VOLUME ["/data", "/results"]
HEALTHCHECK --interval=5m --timeout=60s --start-period=30s CMD ["repro", "doctor"]
ENTRYPOINT ["repro"]
CMD ["--help"]
