# Two stages: build a static-enough release binary, then ship it on a distroless base.
# Not yet built in CI here (the development machines have no container engine).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY webhook ./webhook
# Cargo.toml names the e2e test target; cargo wants its file present.
COPY tests ./tests
RUN cargo build --release --locked --bin kreload

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kreload /usr/local/bin/kreload
USER 65532:65532
EXPOSE 9443 9090
ENTRYPOINT ["/usr/local/bin/kreload"]
CMD ["serve", "--tls-cert-file=/certs/tls.crt", "--tls-key-file=/certs/tls.key"]
