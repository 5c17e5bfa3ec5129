#!/bin/sh
# Grafana's entrypoint in docker-compose: never admin/admin.
#
# GRAFANA_ADMIN_PASSWORD from .env (reaching Grafana as GF_SECURITY_ADMIN_PASSWORD) wins.
# Without one, a random password is generated on first start and kept in the data volume,
# readable only by Grafana's user; the log says where to read it, never the password itself.
# Grafana applies the admin password only when it creates its database (first start).
set -eu

data="${GF_PATHS_DATA:-/var/lib/grafana}"
file="$data/admin-password"

if [ "${GF_SECURITY_ADMIN_PASSWORD:-}" = "admin" ]; then
  echo "streamer: GRAFANA_ADMIN_PASSWORD=admin is refused: choose another one in .env" >&2
  exit 1
fi
if [ -z "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
  if [ ! -s "$file" ]; then
    (umask 077 && tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24 >"$file")
  fi
  GF_SECURITY_ADMIN_PASSWORD="$(cat "$file")"
  export GF_SECURITY_ADMIN_PASSWORD
  cat >&2 <<MSG
################################################################################
# GRAFANA_ADMIN_PASSWORD is not set in .env: Grafana's admin password was
# generated on first start. Read it with:
#   docker compose exec grafana cat $file
################################################################################
MSG
fi
exec "$@"
