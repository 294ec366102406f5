#!/bin/sh
# First start of the postgres service (an empty pgdata volume; the official image runs the
# scripts of /docker-entrypoint-initdb.d once, as the superuser): the owner role `atlas` and its
# two databases, Django's metadata `atlas` (POSTGRES_DB) and the warehouse `atlas_warehouse`.
# The roles service (manage.py warehouse_roles) does the rest at every start.
set -eu
: "${ATLAS_DB_PASSWORD:?ATLAS_DB_PASSWORD is not set (see .env.example)}"
psql -v ON_ERROR_STOP=1 -v pw="$ATLAS_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE atlas LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
ALTER DATABASE atlas OWNER TO atlas;
CREATE DATABASE atlas_warehouse OWNER atlas;
SQL
