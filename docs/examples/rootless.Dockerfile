# An image that runs strata as an unprivileged user (uid 1000), for CI containers and
# Kubernetes pods. Build it from the repository root:
#
#   strata build -f docs/examples/rootless.Dockerfile -t REGISTRY/strata:rootless --push .
#   (or docker buildx build -f docs/examples/rootless.Dockerfile ...)
#
# See docs/running-in-containers.md for the options the container needs.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked && cp target/release/strata /strata

FROM debian:bookworm-slim
# uidmap: newuidmap/newgidmap map the user's subordinate ids into the build's user namespace.
# git: git build contexts; ca-certificates: HTTPS registries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends uidmap libcap2-bin ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
# File capabilities instead of Debian's setuid bit: a setuid newuidmap runs as uid 0, which
# does not own the user namespace strata creates, so the kernel refuses its write to uid_map
# unless the container keeps CAP_SYS_ADMIN; with file capabilities it keeps the caller's uid.
RUN chmod u-s /usr/bin/newuidmap /usr/bin/newgidmap \
 && setcap cap_setuid=ep /usr/bin/newuidmap \
 && setcap cap_setgid=ep /usr/bin/newgidmap
# useradd gives the user the subordinate range 100000:65536 in /etc/subuid and /etc/subgid.
RUN useradd -m -u 1000 strata \
 && mkdir -p /home/strata/.local/share/strata && chown -R strata:strata /home/strata/.local
COPY --from=build /strata /usr/local/bin/strata
USER strata
WORKDIR /home/strata
# The store must be on a real filesystem (a volume), not on the container's overlay root:
# overlayfs cannot use another overlay as its upper directory.
VOLUME /home/strata/.local/share/strata
ENTRYPOINT ["strata"]
