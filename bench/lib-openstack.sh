# bench/lib-openstack.sh: shell helpers shared by the side-by-side benchmarks against Debian's
# OpenStack services (bench/network-neutron.sh, bench/volume-cinder.sh). Sourced, not run.
# Gives: os_install PKG... (apt, services kept from starting), free_port, now, wait_200 URL START,
# rss_tree PID (MiB of a process and its descendants), mariadb_start DIR / mariadb_stop (a
# private MariaDB on a unix socket only: --skip-networking, data dir under DIR), mariadb_db NAME,
# ts_service_user PASSWORD (user "bench-svc", admin in project "service", on tinystack identity
# given by the OS_* variables), and the steps of a side-by-side run: sbs_args, sbs_install,
# sbs_cleanup, ts_side, os_conf_auth, uwsgi_start, ref_side, sbs_report (below).

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

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENT=$BENCH/api_client.py  # the client and the report of both sides

# RSS in MiB of a process and all its descendants.
rss_tree() { python3 "$CLIENT" rss "$1"; }

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
# A database NAME in it; sets DB_URL, its SQLAlchemy URL for the service's [database] connection.
mariadb_db() {
  mariadb --socket="$MARIADB_SOCK" -u root -e "CREATE DATABASE $1 CHARACTER SET utf8"
  DB_URL="mysql+pymysql://bench:benchpw@localhost/$1?unix_socket=$MARIADB_SOCK&charset=utf8"
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

# ---- the steps of a side-by-side run --------------------------------------------------------
# A script runs tinystack's service, then the reference OpenStack service (REF), each driven by
# "$CLIENT" SVC, and writes its results section. Its variables: W (the work dir), TS_COUNTS and
# REF_COUNTS (the client's counts for each side), OUT (the results file).

# Arguments: [BUILD_DIR] [--no-REF]. Sets BUILD and TS (the tinystack binary; BUILD_DIR defaults
# to $TS_BUILD, else build, relative to the repository) and WITH_REF (0 with --no-REF: tinystack
# alone, a quick check of the client and the set-up).
sbs_args() {
  local no=--no-$1 a
  shift
  BUILD= WITH_REF=1 NO_REF=$no
  for a in "$@"; do
    case $a in
      "$no") WITH_REF=0 ;;
      -*) echo "unknown option $a (only $no)" >&2; exit 2 ;;
      *) BUILD=$a ;;
    esac
  done
  BUILD=${BUILD:-${TS_BUILD:-build}}
  case $BUILD in /*) ;; *) BUILD=$(dirname "$BENCH")/$BUILD ;; esac
  TS=$BUILD/tinystack
  [ -x "$TS" ] || { echo "no $TS: build first" >&2; exit 2; }
}

# Installs the reference's packages PKG... with mariadb-server and wrk; wrk alone with --no-REF.
sbs_install() {
  if [ "$WITH_REF" = 1 ]; then os_install "$@" mariadb-server wrk; else os_install wrk; fi
}

# The EXIT trap: stops the reference server (REF_PID: uwsgi and its workers), tinystack
# (TS_PID) and MariaDB, and removes W unless KEEP is set.
sbs_cleanup() {
  [ -n "${REF_PID:-}" ] && { kill -TERM "$REF_PID" 2>/dev/null || true; }
  [ -n "${TS_PID:-}" ] && { kill -TERM "$TS_PID" 2>/dev/null || true; }
  sleep 2
  [ -n "${REF_PID:-}" ] && { pkill -KILL -P "$REF_PID" 2>/dev/null || true; kill -KILL "$REF_PID" 2>/dev/null || true; wait "$REF_PID" 2>/dev/null || true; }
  [ -n "${TS_PID:-}" ] && { kill -KILL "$TS_PID" 2>/dev/null || true; wait "$TS_PID" 2>/dev/null || true; }
  mariadb_stop
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}

# ts_side SVC PORT [INIT_OPTION...]: `tinystack serve` with identity and SVC (on PORT) from W/ts,
# and the client against it into W/ts.json. Sets ID_PORT, TS_PID, TS_COLD (seconds from the
# start to the first 200 on PORT), LOAD_TS, the OS_* variables of its admin, TOKEN and PROJECT.
# With --no-REF it prints the client's figures and ends the script.
ts_side() {
  local svc=$1 port=$2 start
  shift 2
  ID_PORT=$(free_port)
  "$TS" init --data "$W/ts" --admin-password benchpw --set identity.port=$ID_PORT --set "$svc.port=$port" \
    --set DEFAULT.enabled_services=identity,$svc "$@" >/dev/null
  LOAD_TS=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$(now)
  "$TS" serve --data "$W/ts" > "$W/ts.log" 2>&1 &
  TS_PID=$!
  TS_COLD=$(wait_200 "http://127.0.0.1:$port/" "$start")
  export OS_AUTH_URL=http://127.0.0.1:$ID_PORT/v3 OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin OS_PASSWORD=benchpw \
    OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne
  unset OS_CLOUD OS_CLIENT_CONFIG_FILE
  read -r TOKEN PROJECT < <(openstack token issue -f value -c id -c project_id | paste -sd' ')

  echo "tinystack $svc service on :$port (cold start $TS_COLD s)"
  # shellcheck disable=SC2086
  python3 "$CLIENT" "$svc" "http://127.0.0.1:$port" "$TOKEN" "$PROJECT" "$TS_PID" "$W" $TS_COUNTS > "$W/ts.json"
  if [ "$WITH_REF" = 0 ]; then
    echo "tinystack alone ($NO_REF): $(cat "$W/ts.json")"
    exit 0
  fi
}

# The [keystone_authtoken], [oslo_concurrency] and [oslo_messaging_notifications] sections of a
# service's config with its state in DIR: keystonemiddleware logs in as bench-svc/svcpw
# (ts_service_user svcpw) to tinystack's identity service; locks in DIR/lock; no notifications.
os_conf_auth() {
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$ID_PORT
auth_url = http://127.0.0.1:$ID_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = bench-svc
password = svcpw
region_name = RegionOne
[oslo_concurrency]
lock_path = $1/lock
[oslo_messaging_notifications]
driver = noop
EOF
}

# uwsgi_start NAME INI DIR PORT PYARGV [SED_ARG...]: the reference API as its Debian init
# script starts it: uwsgi_python3 with the package's uwsgi INI (changed: log to
# DIR/log/NAME.log, run as root, chdir DIR, and by the SED_ARGs), on 127.0.0.1:PORT with
# --pyargv PYARGV, TMPDIR DIR/tmp. Waits for its first 200; sets LOAD_REF (before the start),
# REF_PID, REF_COLD (seconds to that 200) and REF_NPROC (uwsgi's processes).
uwsgi_start() {
  local name=$1 ini=$2 dir=$3 port=$4 pyargv=$5 start
  shift 5
  sed -e "s|^logto = .*|logto = $dir/log/$name.log|" -e 's/^uid = .*/uid = root/' -e 's/^gid = .*/gid = root/' \
    "$@" -e "s|^chdir = .*|chdir = $dir|" "$ini" > "$dir/uwsgi.ini"
  LOAD_REF=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$(now)
  TMPDIR=$dir/tmp uwsgi_python3 --http-socket 127.0.0.1:$port --ini "$dir/uwsgi.ini" --pyargv "$pyargv" \
    > "$dir/uwsgi.out" 2>&1 &
  REF_PID=$!
  REF_COLD=$(wait_200 "http://127.0.0.1:$port/" "$start") || {
    echo "$name did not answer" >&2; tail -30 "$dir/log/$name.log" >&2; exit 1; }
  echo "$name on :$port (cold start $REF_COLD s)"
  REF_NPROC=$(( $(pgrep -c -P "$REF_PID") + 1 ))
}

# ref_side SVC PORT LOG: the client against the reference server into W/ref.json (the end of
# LOG shown if it fails), then DB_RSS (MariaDB's MiB) and LOAD_END.
ref_side() {
  # shellcheck disable=SC2086
  python3 "$CLIENT" "$1" "http://127.0.0.1:$2" "$TOKEN" "$PROJECT" "$REF_PID" "$W" $REF_COUNTS > "$W/ref.json" || {
    tail -40 "$3" >&2; exit 1; }
  DB_RSS=$(rss_tree "$MARIADB_PID")
  LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
}

# sbs_report SVC: the results section, printed and written into OUT (by the client).
sbs_report() {
  TS_COUNTS=$TS_COUNTS REF_COUNTS=$REF_COUNTS LOAD_TS=$LOAD_TS LOAD_REF=$LOAD_REF LOAD_END=$LOAD_END \
    TS_COLD=$TS_COLD REF_COLD=$REF_COLD REF_NPROC=$REF_NPROC DB_RSS=$DB_RSS \
    python3 "$CLIENT" report "$1" "$W/ts.json" "$W/ref.json" "$OUT"
}
