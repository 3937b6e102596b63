# Multi-stage: build with the Rust toolchain, run from a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rollcall \
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
HEALTHCHECK --interval=30s --timeout=5s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/9187 || exit 1"]
ENTRYPOINT ["/usr/local/bin/rollcall"]
CMD ["--config", "/etc/rollcall/rollcall.toml", "run"]
