# syntax=docker/dockerfile:1
# Seam's image: the probes and the agent built in one stage (`cargo xtask build` installs the
# probe toolchain: rustup nightly + rust-src and bpf-linker against Debian's LLVM), and a small
# Debian runtime with only the binary, CA certificates and the shipped rules.
#
#   docker build -t seam:dev .
#
# Only Docker Hub's official images, crates.io and Debian's archive are fetched.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo xtask build \
 && install -D -m 0755 target/release/seam /out/usr/local/bin/seam

FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/bin/seam /usr/local/bin/seam
COPY rules/shipped /etc/seam/rules
# Seam loads eBPF programs: it runs as uid 0, with only the capabilities the DaemonSet grants
# (deploy/daemonset.yaml says which hook needs which).
USER 0:0
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/seam"]
CMD ["run", "--config", "/etc/seam/seam.toml"]
