# syntax=docker/dockerfile:1
# The operator image: a static (musl) binary on distroless/static, non-root,
# no shell. `make release` builds the same binary without Docker.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# BuildKit caches keep the crates and compiled dependencies between builds;
# only the operator's package and what it links are built (not upstash-sim,
# nor its axum routes and redis client).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p upstash-rotator --bin upstash-rotator \
 && cp target/x86_64-unknown-linux-musl/release/upstash-rotator /upstash-rotator

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /upstash-rotator /upstash-rotator
USER 65532:65532
ENV LOG_FORMAT=json
EXPOSE 8080
# The subcommand is the default argument, not part of the entrypoint: the
# chart passes `run` with its flags, `docker run IMAGE rotate …` works too.
ENTRYPOINT ["/upstash-rotator"]
CMD ["run"]
