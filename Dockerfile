# syntax=docker/dockerfile:1
# meshkeeper: a static musl binary on a distroless, nonroot base image.
#
#   docker build -t meshkeeper:0.1.0 .
#
# scripts/build-static.sh builds the same binary without Docker.

ARG TARGET=x86_64-unknown-linux-musl

# --- builder -----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
ARG TARGET
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# musl-tools: musl-gcc, which ring and mimalloc's C parts are compiled with for the musl target.
# NB: apt versions are not pinned: the bookworm archive drops old point releases, so a pinned
# version would break the build when Debian ships a security update; the base image tag pins
# the distribution instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"

WORKDIR /src

# Dependencies first, in their own layer: copy only the manifests (every workspace member's
# Cargo.toml), stub the sources, build. This layer is rebuilt only when a manifest or
# Cargo.lock changes. A new workspace member needs its Cargo.toml copied here too.
COPY Cargo.toml Cargo.lock ./
COPY agent/Cargo.toml agent/Cargo.toml
COPY tests/kube-sim/Cargo.toml tests/kube-sim/Cargo.toml
RUN mkdir -p agent/src tests/kube-sim/src \
 && echo 'fn main() {}' > agent/src/main.rs \
 && touch agent/src/lib.rs tests/kube-sim/src/lib.rs \
 && cargo build --release --locked --target "${TARGET}" -p meshkeeper \
 && rm -rf agent/src tests/kube-sim/src

# The real sources. COPY keeps the files' original mtimes, which can be older than the stub
# build: touch them so cargo rebuilds our crates (dependencies stay cached).
COPY agent agent
COPY tests/kube-sim tests/kube-sim
RUN find agent tests/kube-sim -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --target "${TARGET}" -p meshkeeper \
 && cp "target/${TARGET}/release/meshkeeper" /meshkeeper

# --- runtime -----------------------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="meshkeeper" \
      org.opencontainers.image.description="Keeps an Istio / Anthos Service Mesh the way its install guide prescribes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/meshkeeper/meshkeeper" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=builder /meshkeeper /usr/local/bin/meshkeeper
# mimalloc hands freed pages back to the kernel at once (README "Scale"); the chart sets it too.
ENV MIMALLOC_PURGE_DELAY=0

# distroless "nonroot": uid/gid 65532; the chart's securityContext uses the same ids.
USER 65532:65532
# /metrics, /healthz, /readyz, /status
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/meshkeeper"]
CMD ["run"]
