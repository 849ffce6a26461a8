# ledgerd and ledgerctl in a small image.
#
#   docker build -t creditledger/ledgerd .
#   docker run --rm -p 127.0.0.1:8080:8080 -e LEDGER_ADMIN_TOKEN=... creditledger/ledgerd \
#       --http-addr 0.0.0.0:8080 --nats-url nats://... --store eventstore --eventstore-url 'esdb://...'
#
# Only classic-builder features are used (no BuildKit cache mounts), so the image builds
# with docker-compose v1, docker compose v2 and plain `docker build` alike.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer stays cached while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries (CGO off: the SQLite driver is pure Go), no paths or symbols of the build
# machine in them.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/ledgerd ./cmd/ledgerd \
 && go build -trimpath -ldflags="-s -w" -o /out/ledgerctl ./cmd/ledgerctl \
 && mkdir -p /out/data

# distroless/static: no shell or package manager to attack, but CA certificates (TLS to
# EventStoreDB, the payment webhook) and time zone data, and a non-root user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ledgerd /out/ledgerctl /usr/local/bin/
# The data directory (embedded NATS files, read models) belongs to the non-root user; a
# named volume mounted here starts with this ownership.
COPY --from=build --chown=65532:65532 /out/data /data
ENV LEDGER_DATA_DIR=/data
VOLUME /data
WORKDIR /data
USER 65532:65532
# HTTP API, and the embedded NATS server when no --nats-url is given.
EXPOSE 8080 4222
ENTRYPOINT ["/usr/local/bin/ledgerd"]
