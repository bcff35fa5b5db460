# Multi-stage build of a static, non-root dbworker image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Only the two binaries the image runs (cmd/bench is a development tool).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/worker ./cmd/publisher

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/publisher /usr/local/bin/
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/worker"]
