# Two stages: a release build, then the binary on a distroless base (glibc, no shell).
# The same image can be built without a container engine: hack/image.sh assembles it from
# scratch with umoci (same user, entrypoint, ports and default command as below).
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore), so a change to the crate layout needs no edit here.
COPY . .
RUN cargo build --release --locked --bin kreload

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kreload /kreload
USER 65532:65532
WORKDIR /
# mimalloc gives memory freed after a burst of large reviews back to the system at once,
# instead of on later allocations (README, "Admission server limits").
ENV MIMALLOC_PURGE_DELAY=0
# 9443: HTTPS admission webhook. 9090: /livez, /readyz, /metrics.
EXPOSE 9443 9090
ENTRYPOINT ["/kreload"]
# With WORKDIR /, serve's default certificate paths are /certs/tls.crt and /certs/tls.key.
CMD ["serve"]
