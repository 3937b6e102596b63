# Multi-stage: build with the Rust toolchain, run from a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
# The production image leaves out the fake APIs and `demo` (the `sandbox` cargo feature); compose's sandbox
# profile builds with --build-arg FEATURES=sandbox.
ARG FEATURES=""
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rollcall --no-default-features --features "$FEATURES" \
 && strip target/release/rollcall

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home rollcall
COPY --from=build /src/target/release/rollcall /usr/local/bin/rollcall
COPY config/rollcall.example.toml /etc/rollcall/rollcall.example.toml
COPY config/sandbox.toml /etc/rollcall/sandbox.toml
USER rollcall
ENV ROLLCALL__LOG__FORMAT=json ROLLCALL__HTTP__LISTEN=0.0.0.0:9187
EXPOSE 9187
# Debian's /bin/sh has no /dev/tcp and the image has no curl: the binary asks its own /healthz (http.listen,
# over loopback when it listens on 0.0.0.0). It needs the same config as `run`, but no database.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/rollcall", "--config", "/etc/rollcall/rollcall.toml", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/rollcall"]
CMD ["--config", "/etc/rollcall/rollcall.toml", "run"]
