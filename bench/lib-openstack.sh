# bench/lib-openstack.sh: shell helpers shared by the side-by-side benchmarks against Debian's
# OpenStack services (bench/network-neutron.sh, bench/volume-cinder.sh). Sourced, not run.
# Gives: os_install PKG... (apt, services kept from starting), free_port, now, wait_200 URL START,
# rss_tree PID (MiB of a process and its descendants), mariadb_start DIR / mariadb_stop (a
# private MariaDB on a unix socket only: --skip-networking, data dir under DIR),
# ts_service_user PASSWORD (user "bench-svc", admin in project "service", on tinystack identity
# given by the OS_* variables).

export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH  # Debian's python3 (the services' modules)

# Installs the Debian packages that are missing; their postinst must not start the services
# (a system-wide MariaDB or uwsgi on the default ports is not what we measure).
os_install() {
  local need=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing ${need[*]} (apt)" >&2
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q "${need[@]}" >/dev/null
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# Waits (up to 120 s) for the first 200 on URL; prints seconds since START.
wait_200() {
  local url=$1 start=$2 code
  while python3 -c "import sys; sys.exit(0 if $(now) - $start < 120 else 1)"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)
    case $code in 200|300) python3 -c "print('%.2f' % ($(now) - $start))"; return 0 ;; esac
    sleep 0.01
  done
  echo "timeout"; return 1
}

# RSS in MiB of a process and all its descendants.
rss_tree() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1]); kids = {}
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            st = open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()
            kids.setdefault(int(st[1]), []).append(int(p))
        except OSError:
            pass
tot, todo = 0, [root]
while todo:
    p = todo.pop(); todo += kids.get(p, [])
    try:
        for l in open('/proc/%d/status' % p):
            if l.startswith('VmRSS:'): tot += int(l.split()[1])
    except OSError:
        pass
print('%.0f' % (tot / 1024))
PY
}

# A private MariaDB: data in DIR/mysql, socket DIR/mysqld.sock, no TCP listener at all.
# Sets MARIADB_PID and MARIADB_SOCK; user bench/benchpw may do anything.
mariadb_start() {
  local dir=$1
  mkdir -p "$dir/mysql"
  mariadb-install-db --no-defaults --user=root --datadir="$dir/mysql" --skip-test-db \
    > "$dir/mariadb-install.log" 2>&1
  MARIADB_SOCK=$dir/mysqld.sock
  mariadbd --no-defaults --user=root --datadir="$dir/mysql" --socket="$MARIADB_SOCK" \
    --skip-networking --pid-file="$dir/mysqld.pid" --log-error="$dir/mysqld.err" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --max-connections=500 > "$dir/mysqld.out" 2>&1 &
  MARIADB_PID=$!
  local _
  for _ in $(seq 300); do
    mariadb --socket="$MARIADB_SOCK" -u root -e 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb --socket="$MARIADB_SOCK" -u root -e \
    "CREATE USER 'bench'@'localhost' IDENTIFIED BY 'benchpw'; GRANT ALL ON *.* TO 'bench'@'localhost';"
}
mariadb_stop() {
  [ -n "${MARIADB_PID:-}" ] || return 0
  kill -TERM "$MARIADB_PID" 2>/dev/null || true
  local _
  for _ in $(seq 100); do kill -0 "$MARIADB_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$MARIADB_PID" 2>/dev/null || true
  wait "$MARIADB_PID" 2>/dev/null || true
  MARIADB_PID=
}

# The service user an OpenStack service's keystonemiddleware logs in with.
ts_service_user() {
  openstack project show service >/dev/null 2>&1 || openstack project create service >/dev/null
  openstack user create --password "$1" bench-svc >/dev/null
  openstack role add --user bench-svc --project service admin >/dev/null
}
