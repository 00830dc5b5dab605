# backdrill in a container: PostgreSQL client programs of one major (PG_MAJOR, 15 by
# default) from the PGDG apt repository, a non-root user, `backdrill` as entrypoint.
#
#   docker build -t backdrill:0.1.0 .
#   docker build --build-arg PG_MAJOR=16 -t backdrill:0.1.0-pg16 .
#   docker run --rm -v /etc/backdrill:/etc/backdrill:ro backdrill:0.1.0 backup db
#
# Two stages: the first builds backdrill's wheel; the image installs that wheel without
# extras, the artifact scripts/smoke-wheel.sh tests (CI: .ci/run).
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:${PYTHON_VERSION}-slim-bookworm

ARG PG_MAJOR=15
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BACKDRILL_CONFIG=/etc/backdrill/backdrill.yaml

# pg_dump, pg_restore, pg_dumpall and psql of PG_MAJOR (PGDG signs its repository; apt
# reads the ASCII-armoured key directly, no gnupg needed), plus zstd for manual checks
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl zstd; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    . /etc/os-release; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" --version

COPY --from=wheel /dist/ /tmp/dist/
RUN pip install /tmp/dist/backdrill-*.whl && rm -rf /tmp/dist && backdrill --version

RUN groupadd --system --gid 10001 backdrill \
    && useradd --system --uid 10001 --gid backdrill --home-dir /var/lib/backdrill \
        --create-home --shell /usr/sbin/nologin backdrill
USER backdrill:backdrill
WORKDIR /var/lib/backdrill

EXPOSE 9187
# `backdrill status` follows Nagios (0 OK, 1 WARNING, 2 CRITICAL); Docker reserves exit
# code 2 and wants 0 healthy / 1 unhealthy, so WARNING counts as healthy here.
HEALTHCHECK --interval=5m --timeout=60s --start-period=30s --retries=1 \
    CMD backdrill --log-format json status >/dev/null 2>&1; [ $? -le 1 ] || exit 1

ENTRYPOINT ["backdrill"]
CMD ["--help"]
