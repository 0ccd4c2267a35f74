#!/bin/bash
# rabbitmq-local.sh: a private RabbitMQ node on loopback for tests and `transport_url =
# amqp://...` experiments, started by hand (no systemd), in its own directories.
# Usage: scripts/rabbitmq-local.sh start|stop|status|url
# Env: RMQ_DIR (default /var/tmp/ts-rmq), RMQ_PORT (AMQP, 16672), RMQ_DIST_PORT (16673),
#      RMQ_EPMD_PORT (16369). Every port listens on 127.0.0.1 only.
set -u
D=${RMQ_DIR:-/var/tmp/ts-rmq}
PORT=${RMQ_PORT:-16672}
DIST=${RMQ_DIST_PORT:-16673}
EPMD=${RMQ_EPMD_PORT:-16369}
NODE=tsrmq@localhost
RB=/usr/lib/rabbitmq/bin

export HOME=$D                          # .erlang.cookie lives here
export RABBITMQ_NODENAME=$NODE
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$PORT RABBITMQ_DIST_PORT=$DIST
export ERL_EPMD_PORT=$EPMD ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$D/mnesia RABBITMQ_LOG_BASE=$D/log RABBITMQ_PID_FILE=$D/rmq.pid
export RABBITMQ_CONFIG_FILE=$D/rabbitmq          # -> $D/rabbitmq.conf
export RABBITMQ_ENABLED_PLUGINS_FILE=$D/enabled_plugins RABBITMQ_ENABLED_PLUGINS=""
export RABBITMQ_LOGS=$D/log/rmq.log
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

# the epmd that serves our port (it is started by the node and outlives it)
our_epmd() {
    local p
    for p in $(pgrep -x epmd); do
        tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "ERL_EPMD_PORT=$EPMD" && echo $p
    done
}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; }

case "${1:-}" in
start)
    if [ -f $D/rmq.pid ] && kill -0 "$(cat $D/rmq.pid)" 2>/dev/null && port_open; then
        echo "rabbitmq already running on 127.0.0.1:$PORT"; exit 0
    fi
    mkdir -p $D/log $D/mnesia
    [ -f $D/.erlang.cookie ] || {
        head -c 20 /dev/urandom | base64 | tr -dc A-Za-z0-9 > $D/.erlang.cookie
        chmod 400 $D/.erlang.cookie
    }
    cat > $D/rabbitmq.conf <<CONF
listeners.tcp.1 = 127.0.0.1:$PORT
loopback_users = none
default_user = guest
default_pass = guest
CONF
    echo "[]." > $D/enabled_plugins
    setsid $RB/rabbitmq-server > $D/log/console.out 2>&1 < /dev/null &
    echo $! > $D/launcher.pid
    if ! $RB/rabbitmqctl -q -n $NODE wait --timeout 120 $D/rmq.pid >/dev/null 2>&1; then
        echo "rabbitmq failed to start; see $D/log" >&2
        exit 1
    fi
    for _ in $(seq 1 300); do port_open && break; sleep 0.1; done
    port_open || { echo "rabbitmq is not listening on $PORT; see $D/log" >&2; exit 1; }
    our_epmd > $D/epmd.pid
    echo "rabbitmq ready: amqp://guest:guest@127.0.0.1:$PORT/ (beam pid $(cat $D/rmq.pid 2>/dev/null))"
    ;;
stop)
    if [ -f $D/rmq.pid ]; then
        $RB/rabbitmqctl -q -n $NODE stop $D/rmq.pid >/dev/null 2>&1
        pid=$(cat $D/rmq.pid)
        # still there (rabbitmqctl could not reach it)? end it by its pid
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null
        fi
        rm -f $D/rmq.pid
    fi
    for p in $(cat $D/epmd.pid 2>/dev/null) $(our_epmd); do kill "$p" 2>/dev/null; done
    rm -f $D/epmd.pid $D/launcher.pid
    echo "rabbitmq stopped"
    ;;
status)
    if port_open; then echo "running on 127.0.0.1:$PORT"; else echo "not running"; exit 1; fi
    ;;
url)
    echo "amqp://guest:guest@127.0.0.1:$PORT/"
    ;;
*)
    echo "usage: $0 start|stop|status|url" >&2
    exit 2
    ;;
esac
