# syntax=docker/dockerfile:1
# clawbridge image for `docker build` / `podman build` / `buildah bud`:
#   docker build -t <registry>/clawbridge:0.1.0 .
# Multi-stage: the release binary is built in the Rust image (Pingora's zlib-ng needs cmake), then
# copied onto distroless `cc` (glibc, libgcc_s, CA certificates, the `nonroot` user 65532; no shell,
# no package manager). The container runs as 65532 and needs no writable path: run it with a
# read-only root filesystem (`docker run --read-only`; the Helm chart sets readOnlyRootFilesystem).
#
# Both bases are pinned by digest: published digests of the tags named before the `@`, each found
# pinned in several independent public Dockerfiles (one a BuildKit log that pulled it). They were
# NOT pulled on the machine this project is developed on (it has no registry access), so verify
# them before you rely on them (and bump them together):
#   docker buildx imagetools inspect rust:1.95.0-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
# Both are Debian 12 (glibc 2.36): the binary built in the first runs on the second. Rust 1.95 is
# the oldest that builds Cargo.lock (parking_lot 0.13, via pingora-lru, needs 1.95).
# Offline alternative without any base image: `make image` (scripts/build-image.sh).
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The workspace is the binary's crate plus the demo gateway (a workspace member and dev-dependency).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY demo-gateway ./demo-gateway
RUN cargo build --release --locked -p clawbridge \
 && install -D -m 0755 target/release/clawbridge /out/usr/local/bin/clawbridge \
 && install -d -m 0700 /state

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/ /
# The device identity's state dir (key and device token); mount a volume here
# when the root filesystem is read-only (the chart does).
COPY --from=build --chown=65532:65532 /state /var/lib/clawbridge
ENV CLAWBRIDGE_STATE_DIR=/var/lib/clawbridge
USER 65532:65532
WORKDIR /home/nonroot
# 8080: proxy (chat route + everything forwarded to the gateway); 9464: /healthz /readyz /metrics.
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/clawbridge"]
LABEL org.opencontainers.image.title="clawbridge" \
      org.opencontainers.image.description="OpenAI /v1/chat/completions over an OpenClaw gateway's native WebSocket protocol" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/clawbridge/clawbridge" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
