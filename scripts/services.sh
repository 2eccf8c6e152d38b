#!/usr/bin/env bash
# Local, real backing services for development, tests and benchmarks:
#   Kafka 4.x (single-node KRaft broker+controller) on 127.0.0.1:9092
#   Redis on 127.0.0.1:6379
#   PostgreSQL on 127.0.0.1:5432 (database/user "paystream", trust auth on loopback only)
#   Prometheus on 127.0.0.1:9090 (scrapes the paystream ports; promtool for rule tests)
#
# Usage: scripts/services.sh up|down|status|restart-kafka|stop-one NAME|start-one NAME
# Idempotent: `up` starts only what is not already answering, and returns once every
# service answers a real request. Installs what is missing (Debian packages, Kafka jars
# from Maven Central, cached so the second run downloads nothing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${PAYSTREAM_SERVICES_DIR:-/var/tmp/paystream-services}"
CACHE="${PAYSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/paystream}"
KAFKA_VERSION="${PAYSTREAM_KAFKA_VERSION:-4.1.1}"
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
# Ports can be moved so a second, isolated set (own PAYSTREAM_SERVICES_DIR) runs beside the
# default one, e.g. for outage tests that stop services while other work uses the defaults.
KAFKA_PORT="${PAYSTREAM_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${PAYSTREAM_KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${PAYSTREAM_REDIS_PORT:-6379}"
PG_PORT="${PAYSTREAM_PG_PORT:-5432}"
PROM_PORT="${PAYSTREAM_PROM_PORT:-9090}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

node_bin() {
  # The repo pins Node 24 through the `node` devDependency; the system node may be older.
  if [ -x "$ROOT/node_modules/.bin/node" ]; then echo "$ROOT/node_modules/.bin/node"; else echo node; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, seconds, command...
  local name="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name did not become ready within ${secs}s; last log lines:"
      tail -n 40 "$STATE/$name.log" 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

apt_install() { # packages...
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then die "need root (or sudo) to apt-get install ${missing[*]}"; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's postinst may auto-start daemons on their default ports; ours own those ports.
  # (Alertmanager's default port 9093 is our Kafka controller's.)
  for svc in redis-server postgresql prometheus prometheus-alertmanager; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
}

install_all() {
  # prometheus-alertmanager: amtool and a real Alertmanager for the routing tests.
  apt_install redis-server redis-tools postgresql postgresql-client prometheus prometheus-alertmanager chromium
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  fetch_kafka
  fetch_helm
}

HELM_VERSION="${PAYSTREAM_HELM_VERSION:-v3.22.0}"
fetch_helm() {
  # helm lint / helm template for the chart tests. Not in Debian; built once from the Go
  # module proxy (a few minutes), then found on PATH or in the cache.
  if command -v helm >/dev/null || [ -x "$CACHE/bin/helm" ]; then return 0; fi
  local go_bin
  go_bin="$(command -v go || echo /usr/local/go/bin/go)"
  [ -x "$go_bin" ] || die "helm is needed for the chart tests and Go is not installed to build it"
  log "building helm $HELM_VERSION from the Go module proxy into $CACHE/bin (once)"
  mkdir -p "$CACHE/bin"
  GOBIN="$CACHE/bin" GOFLAGS=-mod=mod "$go_bin" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ||
    die "could not build helm $HELM_VERSION"
}

fetch_kafka() {
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  command -v mvn >/dev/null || apt_install maven
  log "downloading Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS (once)"
  local tmp
  tmp="$(mktemp -d)"
  sed "s/@KAFKA_VERSION@/$KAFKA_VERSION/" "$ROOT/scripts/services/kafka-pom.xml" >"$tmp/pom.xml"
  (cd "$tmp" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs") ||
    die "maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  rm -rf "$KAFKA_LIBS" && mv "$tmp/libs" "$KAFKA_LIBS" && rm -rf "$tmp"
}

# ---------------------------------------------------------------- Kafka
kafka_ready() { "$(node_bin)" "$ROOT/scripts/services/kafka-ready.ts" "127.0.0.1:$KAFKA_PORT"; }

kafka_up() {
  if port_open "$KAFKA_PORT" && kafka_ready >/dev/null 2>&1; then log "kafka      already running on 127.0.0.1:$KAFKA_PORT"; return; fi
  local dir="$STATE/kafka"
  mkdir -p "$dir"
  sed -e "s#@DATA@#$dir/data#" -e "s/@PORT@/$KAFKA_PORT/" -e "s/@CPORT@/$KAFKA_CONTROLLER_PORT/" \
    "$ROOT/scripts/services/kafka.properties" >"$dir/server.properties"
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    java -cp "$cp" -Dlog4j2.configurationFile="$ROOT/scripts/services/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" --standalone >"$STATE/kafka.log" 2>&1 ||
      { cat "$STATE/kafka.log"; die "kafka storage format failed"; }
  fi
  # A small heap: the broker is single-node and shares two cores with the pipeline under test.
  nohup java -Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/services/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$cp" kafka.Kafka "$dir/server.properties" >>"$STATE/kafka.log" 2>&1 &
  echo $! >"$STATE/kafka.pid"
  wait_for kafka 90 kafka_ready || die "kafka failed to start (log: $STATE/kafka.log)"
  log "kafka      started on 127.0.0.1:$KAFKA_PORT (KRaft, controller :$KAFKA_CONTROLLER_PORT, pid $(cat "$STATE/kafka.pid"), data $dir/data)"
}

# ---------------------------------------------------------------- Redis
# PONG only: while Redis loads its append-only file it answers "LOADING ..." (exit status 0)
# and refuses commands, which must not count as ready.
redis_ready() { [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_up() {
  if redis_ready; then log "redis      already running on 127.0.0.1:$REDIS_PORT"; return; fi
  mkdir -p "$STATE/redis"
  # appendonly: alert and dedup keys survive a Redis restart in outage tests.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$STATE/redis" \
    --appendonly yes --appendfsync everysec --save "" --pidfile "$STATE/redis.pid" \
    --logfile "$STATE/redis.log" --maxmemory 2gb --maxmemory-policy noeviction
  # A large append-only file takes a while to load after a restart.
  wait_for redis 120 redis_ready || die "redis failed to start"
  log "redis      started on 127.0.0.1:$REDIS_PORT (pid $(cat "$STATE/redis.pid"))"
}

# ---------------------------------------------------------------- PostgreSQL
pg_ready() { psql -h 127.0.0.1 -p "$PG_PORT" -U paystream -d paystream -Atc 'select 1'; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_up() {
  if pg_ready >/dev/null 2>&1; then log "postgresql already running on 127.0.0.1:$PG_PORT"; return; fi
  [ -n "$PG_BIN" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  local dir="$STATE/pg"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_postgres "$PG_BIN/initdb" -D "$dir" -U paystream --auth=trust -E UTF8 >"$STATE/postgres.log" 2>&1 ||
      { cat "$STATE/postgres.log"; die "initdb failed"; }
  fi
  local sock="$STATE/pg-sock"
  mkdir -p "$sock" && { [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$sock"; }
  touch "$STATE/postgres.log" && { [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$STATE/postgres.log"; }
  as_postgres "$PG_BIN/pg_ctl" -D "$dir" -l "$STATE/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $sock -c fsync=on -c max_connections=200" start >/dev/null ||
    { tail -n 30 "$STATE/postgres.log"; die "postgresql failed to start"; }
  psql -h 127.0.0.1 -p "$PG_PORT" -U paystream -d postgres -Atc \
    "select 1 from pg_database where datname='paystream'" | grep -q 1 ||
    psql -h 127.0.0.1 -p "$PG_PORT" -U paystream -d postgres -qc 'create database paystream' >/dev/null
  wait_for postgres 30 pg_ready || die "postgresql not answering"
  log "postgresql started on 127.0.0.1:$PG_PORT (db/user paystream, data $dir)"
}

# ---------------------------------------------------------------- Prometheus
prom_ready() { curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready"; }

prometheus_up() {
  if prom_ready >/dev/null 2>&1; then log "prometheus already running on 127.0.0.1:$PROM_PORT"; return; fi
  mkdir -p "$STATE/prometheus"
  nohup prometheus --config.file="$ROOT/scripts/services/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --storage.tsdb.retention.time=1d >"$STATE/prometheus.log" 2>&1 &
  echo $! >"$STATE/prometheus.pid"
  wait_for prometheus 30 prom_ready || die "prometheus failed to start"
  log "prometheus started on 127.0.0.1:$PROM_PORT (pid $(cat "$STATE/prometheus.pid"); promtool $(command -v promtool))"
}

# ---------------------------------------------------------------- stop
stop_pidfile() { # name
  local f="$STATE/$1.pid"
  [ -f "$f" ] || return 0
  local pid
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    log "$1 stopped (pid $pid)"
  fi
  rm -f "$f"
}

postgres_down() {
  if [ -n "$PG_BIN" ] && [ -f "$STATE/pg/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null 2>&1 && log "postgresql stopped" || true
  fi
}

redis_down() {
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    log "redis stopped"
  fi
  rm -f "$STATE/redis.pid"
}

status() {
  local rc=0
  if port_open "$KAFKA_PORT" && kafka_ready >/dev/null 2>&1; then log "kafka      up   127.0.0.1:$KAFKA_PORT"; else log "kafka      down"; rc=1; fi
  if redis_ready; then log "redis      up   127.0.0.1:$REDIS_PORT"; else log "redis      down"; rc=1; fi
  if pg_ready >/dev/null 2>&1; then log "postgresql up   127.0.0.1:$PG_PORT"; else log "postgresql down"; rc=1; fi
  if prom_ready >/dev/null 2>&1; then log "prometheus up   127.0.0.1:$PROM_PORT"; else log "prometheus down"; rc=1; fi
  return $rc
}

cmd="${1:-up}"
mkdir -p "$STATE"
case "$cmd" in
  up)
    install_all
    kafka_up
    redis_up
    postgres_up
    prometheus_up
    log "all services ready (state: $STATE; stop with: npm run services:down)"
    ;;
  down)
    stop_pidfile prometheus
    stop_pidfile kafka
    redis_down
    postgres_down
    ;;
  status) status ;;
  stop-one)
    case "${2:?name}" in
      kafka) stop_pidfile kafka ;; redis) redis_down ;; postgres) postgres_down ;; prometheus) stop_pidfile prometheus ;;
      *) die "unknown service $2" ;;
    esac ;;
  start-one)
    case "${2:?name}" in
      kafka) kafka_up ;; redis) redis_up ;; postgres) postgres_up ;; prometheus) prometheus_up ;;
      *) die "unknown service $2" ;;
    esac ;;
  reset)
    # Wipes all service data (topics, keys, tables). For a clean slate between runs.
    "$0" down
    rm -rf "$STATE"
    log "state removed: $STATE"
    ;;
  *) die "usage: $0 up|down|status|reset|stop-one NAME|start-one NAME" ;;
esac
