# syntax=docker/dockerfile:1
# The operator image: a static (musl) binary on distroless/static, non-root,
# no shell. `make release` builds the same binary without Docker.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or
# Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/upstash-sim.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl --bin upstash-rotator \
 && rm -rf src

COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl --bin upstash-rotator \
 && cp target/x86_64-unknown-linux-musl/release/upstash-rotator /upstash-rotator

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /upstash-rotator /upstash-rotator
USER 65532:65532
ENV LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/upstash-rotator", "run"]
