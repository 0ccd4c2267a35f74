#!/bin/bash
# pg-local.sh: a private PostgreSQL cluster for tests, started by hand on 127.0.0.1 (no
# systemd, no pg_ctlcluster). initdb/postgres refuse to run as root, so everything runs as
# the Debian package's 'postgres' user. Trust authentication on loopback only.
# Usage: scripts/pg-local.sh start|stop|url   (env: PG_DIR, default /var/tmp/ts-pg; PG_PORT,
# default 16432). start prints the URL to use, e.g. TS_TEST_PG_URL=$(scripts/pg-local.sh start)
set -u
D=${PG_DIR:-/var/tmp/ts-pg}
PORT=${PG_PORT:-16432}
URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
B=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$B" ] || { echo "pg-local: PostgreSQL server binaries not found" >&2; exit 1; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-start}" in
start)
  if [ ! -s "$D/data/PG_VERSION" ]; then
    mkdir -p "$D"
    [ "$(id -u)" = 0 ] && chown postgres: "$D"
    as_pg "$B/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null ||
      { echo "pg-local: initdb failed" >&2; exit 1; }
  fi
  if ! as_pg "$B/pg_ctl" -D "$D/data" status >/dev/null 2>&1; then
    as_pg "$B/pg_ctl" -D "$D/data" -l "$D/pg.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { echo "pg-local: start failed, see $D/pg.log" >&2; exit 1; }
  fi
  echo "$URL"
  ;;
stop)
  if [ -s "$D/data/PG_VERSION" ]; then as_pg "$B/pg_ctl" -D "$D/data" -m fast -w stop >/dev/null || exit 1; fi
  ;;
url) echo "$URL" ;;
*) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
