# Strongroom's server image: `strongroom serve` as a non-root user, its data (the master key file, and the
# SQLite database when no STRONGROOM_DATABASE_URL is set) on the volume /var/lib/strongroom.
#   docker build -t strongroom .
#   docker run -d -p 8000:8000 -v strongroom-data:/var/lib/strongroom strongroom
# The scale-out shape (two replicas behind nginx, PostgreSQL, Redis) is compose.yaml.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# the pinned requirements first: this layer is rebuilt only when they change
COPY requirements.txt requirements-build.txt ./
RUN python -m venv /opt/strongroom \
 && /opt/strongroom/bin/pip install --no-cache-dir --disable-pip-version-check \
      -r requirements-build.txt -r requirements.txt
COPY pyproject.toml ./
COPY strongroom ./strongroom
RUN /opt/strongroom/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 strongroom \
 && useradd --system --uid 10001 --gid strongroom --home-dir /var/lib/strongroom --no-create-home \
      --shell /usr/sbin/nologin strongroom \
 && install -d -o strongroom -g strongroom -m 0700 /var/lib/strongroom
COPY --from=build /opt/strongroom /opt/strongroom
ENV PATH=/opt/strongroom/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STRONGROOM_DATA_DIR=/var/lib/strongroom \
    STRONGROOM_HOST=0.0.0.0 \
    STRONGROOM_PORT=8000 \
    STRONGROOM_LOG_FORMAT=json
USER strongroom:strongroom
WORKDIR /var/lib/strongroom
VOLUME ["/var/lib/strongroom"]
EXPOSE 8000
# /readyz: 200 when the database (and Redis, when configured) answer, else 503
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/readyz' % os.environ.get('STRONGROOM_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["strongroom"]
CMD ["serve"]
