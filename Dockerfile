# Atlas production image: the same code for web, worker and beat (docker-compose.yml).
# CI has no Docker: .ci/image-smoke replays this file (COPY, ENV, WORKDIR, RUN, USER, CMD,
# HEALTHCHECK) in a clean directory with .ci/dockerfile_plan.py, which knows only the RUN forms
# used here and refuses any other, so the image and its CI job cannot drift apart.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ATLAS_VAR_DIR=/var/lib/atlas STATIC_ROOT=/app/staticfiles PORT=8000
WORKDIR /app

# A system user owning only Atlas's data directory (a named volume in docker-compose.yml).
RUN useradd --system --no-create-home --home-dir /var/lib/atlas atlas \
    && mkdir -p /var/lib/atlas && chown atlas:atlas /var/lib/atlas

# Dependencies first, exactly the lock file's versions with their hashes checked
# (requirements/prod.lock, from pyproject.toml by uv): a code change reuses this layer.
# It holds the spark extra (WAREHOUSE_URL=sc://...: pyspark[connect], about 710 MB installed, 460 MB
# of them Spark's jars: no thin pyspark-client release exists for the pinned Spark 4.3.0).
COPY requirements/prod.lock requirements/prod.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/prod.lock

# Atlas's apps: exactly settings.ATLAS_APPS (atlas/tests/test_image.py fails otherwise),
# installed as a package, not editable (setuptools comes from the lock file).
COPY pyproject.toml README.md ./
COPY atlas atlas
COPY pipelines pipelines
COPY quality quality
COPY compliance compliance
COPY lineage lineage
COPY alerts alerts
COPY privacy privacy
COPY retention retention
COPY demo demo
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

COPY manage.py gunicorn.conf.py ./
COPY deploy/healthcheck.py healthcheck.py
COPY templates templates
COPY static static
# Static files live in the image (STATIC_ROOT, served by whitenoise with hashed names),
# never on a volume: an upgrade brings its own manifest.
RUN SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput -v 0 \
    && chown atlas:atlas /var/lib/atlas

USER atlas
EXPOSE 8000
# /healthz of the web process. docker-compose.yml gives worker and beat checks of their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "healthcheck.py", "/healthz"]
CMD ["gunicorn", "atlas.wsgi", "--config", "gunicorn.conf.py"]
