# Production image of the trythis server: the binary, the built site and the starter catalogue.
# Build the artifacts first (`scripts/build-site.sh`, or `TRYTHIS_PROFILE=release` for a release
# binary), then `docker build -t trythis .`. BASE lets machines without Docker Hub use the locally
# made base image (`--build-arg BASE=trythis/base:bookworm`).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG BIN=target/debug/trythis
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates iptables \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/trythis --shell /usr/sbin/nologin trythis \
 && mkdir -p /var/lib/trythis /srv/trythis
COPY ${BIN} /usr/local/bin/trythis
COPY target/site /srv/trythis/site
COPY catalog /srv/trythis/catalog
WORKDIR /srv/trythis
ENV TRYTHIS_LISTEN=0.0.0.0:3000 \
    TRYTHIS_DATA_DIR=/var/lib/trythis \
    TRYTHIS_SITE_ROOT=/srv/trythis/site \
    TRYTHIS_TTYD_PATH=/var/lib/trythis/bin/ttyd \
    TRYTHIS_RELAY_PATH=/var/lib/trythis/bin/trythis-relay
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000"]
# Root inside the container: it drives the host's Docker socket (mounted) either way.
CMD ["trythis", "serve"]
