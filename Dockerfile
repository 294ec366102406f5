# Atlas production image: the same code for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ATLAS_VAR_DIR=/var/lib/atlas
WORKDIR /app

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
RUN pip install --no-cache-dir '.[prod]'

COPY manage.py ./
COPY templates templates
COPY static static
RUN DEBUG=false SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput -v 0 \
    && useradd --system --home /var/lib/atlas atlas && mkdir -p /var/lib/atlas && chown atlas /var/lib/atlas

USER atlas
EXPOSE 8000
CMD ["gunicorn", "atlas.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
