# Build
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang1-14 libclang-common-14-dev && rm -rf /var/lib/apt/lists/*
COPY . .
# The gateway, and the sample downstream app docker-compose.yml puts behind nginx.
RUN cargo build --release --locked --bin iam-gateway --example sample_app

# Run
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 libxml2 libxmlsec1 libxmlsec1-openssl libxslt1.1 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/iam-gateway iamgw \
 && mkdir -p /var/lib/iam-gateway/secret && chown -R iamgw /var/lib/iam-gateway
COPY --from=build /src/target/release/iam-gateway /usr/local/bin/iam-gateway
COPY --from=build /src/target/release/examples/sample_app /usr/local/bin/sample-app
USER iamgw
WORKDIR /var/lib/iam-gateway
EXPOSE 8080 8081
ENTRYPOINT ["iam-gateway"]
CMD ["serve"]
