# Build
FROM rust:1-bookworm AS build
WORKDIR /src
# The Debian packages come from scripts/install-deps (one list for the
# README, scripts/test, .ci/run and this file).
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps build && rm -rf /var/lib/apt/lists/*
COPY . .
# The gateway, and the sample downstream app docker-compose.yml puts behind nginx.
RUN cargo build --release --locked --bin iam-gateway --example sample_app

# Run
FROM debian:bookworm-slim
COPY scripts/install-deps /tmp/install-deps
RUN /tmp/install-deps runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps \
 && useradd --system --home /var/lib/iam-gateway iamgw \
 && mkdir -p /var/lib/iam-gateway/secret && chown -R iamgw /var/lib/iam-gateway
COPY --from=build /src/target/release/iam-gateway /usr/local/bin/iam-gateway
COPY --from=build /src/target/release/examples/sample_app /usr/local/bin/sample-app
USER iamgw
WORKDIR /var/lib/iam-gateway
EXPOSE 8080 8081
ENTRYPOINT ["iam-gateway"]
CMD ["serve"]
