#!/usr/bin/env bash
# Local, real backing services for development, tests and benchmarks:
#   Kafka 4.x (single-node KRaft broker+controller) on 127.0.0.1:9092, or with
#     --kafka-brokers 3 a 3-node KRaft cluster (each node broker+controller) on :9092/:9094/:9096
#     (controllers :9093/:9095/:9097), the project's topics at replication factor 3, min ISR 2
#   Redis on 127.0.0.1:6379
#   PostgreSQL on 127.0.0.1:5432 (database/user "paystream", trust auth on loopback only)
#   Prometheus on 127.0.0.1:9090 (scrapes the paystream ports; promtool for rule tests)
#
# Usage: scripts/services.sh up|down|status|reset|stop-one NAME|start-one NAME|kill-one NAME
#          [--kafka-brokers N]
# NAME: kafka (every node), kafka-1..kafka-N (one node of a cluster), redis, postgres, prometheus.
# Idempotent: `up` starts only what is not already answering, and returns once every
# service answers a real request. Installs what is missing (Debian packages, Kafka jars
# from Maven Central, cached so the second run downloads nothing). The broker count is
# recorded in the state dir: status, down, stop-one and start-one find the same cluster
# without the flag.
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

KAFKA_BROKERS_FLAG=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --kafka-brokers) KAFKA_BROKERS_FLAG="${2:-}"; shift $(($# > 1 ? 2 : 1)) ;;
    --kafka-brokers=*) KAFKA_BROKERS_FLAG="${1#*=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
set -- ${ARGS[@]+"${ARGS[@]}"}

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

node_bin() {
  # The repo pins Node 24 through the `node` devDependency; the system node may be older.
  if [ -x "$ROOT/node_modules/.bin/node" ]; then echo "$ROOT/node_modules/.bin/node"; else echo node; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A killed daemon is reparented, and a zombie not yet reaped still answers kill -0.
pid_alive() { kill -0 "$1" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

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
  for svc in redis-server postgresql prometheus prometheus-alertmanager prometheus-redis-exporter; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
}

install_all() {
  # prometheus-alertmanager: amtool and a real Alertmanager for the routing tests.
  # prometheus-redis-exporter: the Redis panels' exporter, scraped by test/integration/panels.test.ts.
  apt_install redis-server redis-tools postgresql postgresql-client prometheus prometheus-alertmanager prometheus-redis-exporter chromium
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
# Node i of N listens on KAFKA_PORT + 2(i-1) and its controller on KAFKA_CONTROLLER_PORT +
# 2(i-1): 9092/9093 for one broker, as always, and 9094/9095, 9096/9097 for the others.
kafka_recorded_brokers() {
  if [ -f "$STATE/kafka.brokers" ]; then cat "$STATE/kafka.brokers"
  elif [ -f "$STATE/kafka/data/meta.properties" ]; then echo 1
  fi
}
KAFKA_BROKERS="${KAFKA_BROKERS_FLAG:-$(kafka_recorded_brokers)}"
KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
[[ "$KAFKA_BROKERS" =~ ^[1-5]$ ]] || die "--kafka-brokers takes a count from 1 to 5, not '$KAFKA_BROKERS'"
# Replication factor and min ISR of the cluster's topics: 3 and 2 from three brokers on, so a
# broker can be lost without refusing writes or acknowledging a write held by one replica only.
KAFKA_RF=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
KAFKA_MIN_ISR=$((KAFKA_RF >= 3 ? 2 : 1))

kafka_name() { if [ "$KAFKA_BROKERS" -eq 1 ]; then echo kafka; else echo "kafka-$1"; fi; }
kafka_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
kafka_cport() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
kafka_bootstrap() {
  local i out=""
  for i in $(seq 1 "$KAFKA_BROKERS"); do out="$out${out:+,}127.0.0.1:$(kafka_port "$i")"; done
  echo "$out"
}
kafka_voters() {
  local i out=""
  for i in $(seq 1 "$KAFKA_BROKERS"); do out="$out${out:+,}$i@127.0.0.1:$(kafka_cport "$i")"; done
  echo "$out"
}
# Ready: answers a metadata request listing every broker of the cluster.
kafka_ready() { "$(node_bin)" "$ROOT/scripts/services/kafka-ready.ts" "127.0.0.1:$(kafka_port "${1:-1}")" "$KAFKA_BROKERS"; }
kafka_node_alive() { local f="$STATE/$(kafka_name "$1").pid"; [ -f "$f" ] && pid_alive "$(cat "$f")"; }

kafka_check_layout() {
  local recorded
  recorded="$(kafka_recorded_brokers)"
  if [ -n "$recorded" ] && [ "$recorded" != "$KAFKA_BROKERS" ]; then
    die "$STATE holds a $recorded-broker Kafka, not $KAFKA_BROKERS: stop it (scripts/services.sh stop-one kafka) and remove $STATE/kafka* (its topics go with it), or give this cluster its own PAYSTREAM_SERVICES_DIR and ports (PAYSTREAM_KAFKA_PORT, PAYSTREAM_KAFKA_CONTROLLER_PORT)"
  fi
  local ports=() i
  for i in $(seq 1 "$KAFKA_BROKERS"); do ports+=("$(kafka_port "$i")" "$(kafka_cport "$i")"); done
  [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" -eq "${#ports[@]}" ] ||
    die "Kafka ports overlap (${ports[*]}): each node takes PAYSTREAM_KAFKA_PORT + 2(i-1) and PAYSTREAM_KAFKA_CONTROLLER_PORT + 2(i-1)"
}

# Starts node i unless it is running; does not wait (a cluster node cannot serve requests
# before a quorum of controllers is up, so every node is started before any is waited for).
kafka_node_start() {
  local i="$1" name dir port cport cp="$KAFKA_LIBS/*"
  name="$(kafka_name "$i")" dir="$STATE/$(kafka_name "$i")" port="$(kafka_port "$i")" cport="$(kafka_cport "$i")"
  if kafka_node_alive "$i"; then return 0; fi
  if port_open "$port" && kafka_ready "$i" >/dev/null 2>&1; then return 0; fi
  port_open "$port" && die "127.0.0.1:$port is taken by a process that is not $name of $STATE"
  mkdir -p "$dir"
  if [ "$KAFKA_BROKERS" -eq 1 ]; then
    sed -e "s#@DATA@#$dir/data#" -e "s/@PORT@/$port/" -e "s/@CPORT@/$cport/" \
      "$ROOT/scripts/services/kafka.properties" >"$dir/server.properties"
  else
    sed -e "s#@DATA@#$dir/data#" -e "s/@PORT@/$port/" -e "s/@CPORT@/$cport/" -e "s/@NODE@/$i/" \
      -e "s/@VOTERS@/$(kafka_voters)/" -e "s/@RF@/$KAFKA_RF/" -e "s/@MINISR@/$KAFKA_MIN_ISR/" \
      "$ROOT/scripts/services/kafka-cluster.properties" >"$dir/server.properties"
  fi
  if [ ! -f "$dir/data/meta.properties" ]; then
    # One cluster id for every node of this state dir.
    [ -s "$STATE/kafka.cluster-id" ] ||
      java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$STATE/kafka.cluster-id"
    local mode=()
    # One broker: a dynamic quorum of itself. A cluster: the static voters of its config.
    [ "$KAFKA_BROKERS" -eq 1 ] && mode=(--standalone)
    java -cp "$cp" -Dlog4j2.configurationFile="$ROOT/scripts/services/log4j2.properties" \
      kafka.tools.StorageTool format -t "$(cat "$STATE/kafka.cluster-id")" -c "$dir/server.properties" \
      ${mode[@]+"${mode[@]}"} >"$STATE/$name.log" 2>&1 ||
      { cat "$STATE/$name.log"; die "$name: kafka storage format failed"; }
  fi
  # Small heaps: the brokers share two cores and the memory with the pipeline under test.
  local heap=(-Xms512m -Xmx1g)
  [ "$KAFKA_BROKERS" -gt 1 ] && heap=(-Xms256m -Xmx768m)
  nohup java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/services/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$cp" kafka.Kafka "$dir/server.properties" >>"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

kafka_node_wait() {
  local i="$1" name
  name="$(kafka_name "$i")"
  wait_for "$name" 120 kafka_ready "$i" || die "$name failed to start (log: $STATE/$name.log)"
  log "$(printf '%-10s' "$name") up on 127.0.0.1:$(kafka_port "$i") (KRaft, controller :$(kafka_cport "$i"), pid $(cat "$STATE/$name.pid" 2>/dev/null || echo '?'), data $STATE/$name/data)"
}

# The project's topics at the cluster's replication factor (and min ISR, see src/app/topics.ts).
# One broker: the processes create theirs on start, as before.
kafka_topics() {
  [ "$KAFKA_BROKERS" -gt 1 ] || return 0
  local out
  out="$("$(node_bin)" "$ROOT/src/cli/main.ts" topics --kafka "$(kafka_bootstrap)" --replicas "$KAFKA_RF" 2>&1)" ||
    { printf '%s\n' "$out" >&2; die "could not create the project's topics on $(kafka_bootstrap)"; }
  printf '%s\n' "$out" | sed 's/^/[services]   /'
}

kafka_up() {
  kafka_check_layout
  echo "$KAFKA_BROKERS" >"$STATE/kafka.brokers"
  local i all=1
  for i in $(seq 1 "$KAFKA_BROKERS"); do kafka_ready "$i" >/dev/null 2>&1 || { all=0; break; }; done
  if [ "$all" -eq 1 ]; then
    log "kafka      already running: $KAFKA_BROKERS broker(s) on $(kafka_bootstrap)"
  else
    for i in $(seq 1 "$KAFKA_BROKERS"); do kafka_node_start "$i"; done
    for i in $(seq 1 "$KAFKA_BROKERS"); do kafka_node_wait "$i"; done
  fi
  kafka_topics
}

kafka_node() { # NAME (kafka-i) -> i, or dies
  local n="${1#kafka-}"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$KAFKA_BROKERS" ] ||
    die "no $1 in this $KAFKA_BROKERS-broker Kafka (kafka-1..kafka-$KAFKA_BROKERS)"
  echo "$n"
}

kafka_down() {
  local names=() i
  for i in $(seq 1 "$KAFKA_BROKERS"); do names+=("$(kafka_name "$i")"); done
  stop_pidfile "${names[@]}"
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
  local config="$ROOT/scripts/services/prometheus.yml"
  if prom_ready >/dev/null 2>&1 && [ ! -f "$STATE/prometheus.pid" ]; then
    log "prometheus already running on 127.0.0.1:$PROM_PORT (not started by this script: left as it is)"
    return
  fi
  if prom_ready >/dev/null 2>&1; then
    # The tests compare what Prometheus loaded with this checkout's rule files: a Prometheus
    # started from another checkout (or before the rules changed) must not answer for them.
    if [ "$(cat "$STATE/prometheus.config" 2>/dev/null)" = "$config" ] && [ -f "$STATE/prometheus.pid" ] &&
      kill -HUP "$(cat "$STATE/prometheus.pid")" 2>/dev/null; then
      log "prometheus already running on 127.0.0.1:$PROM_PORT (rules reloaded from $ROOT)"
      return
    fi
    log "prometheus on 127.0.0.1:$PROM_PORT was started from another checkout: restarting it from $ROOT"
    stop_pidfile prometheus
  fi
  mkdir -p "$STATE/prometheus"
  echo "$config" >"$STATE/prometheus.config"
  nohup prometheus --config.file="$config" \
    --storage.tsdb.path="$STATE/prometheus" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --storage.tsdb.retention.time=1d >"$STATE/prometheus.log" 2>&1 &
  echo $! >"$STATE/prometheus.pid"
  wait_for prometheus 30 prom_ready || die "prometheus failed to start"
  log "prometheus started on 127.0.0.1:$PROM_PORT (pid $(cat "$STATE/prometheus.pid"); promtool $(command -v promtool))"
}

# ---------------------------------------------------------------- stop
stop_pidfile() { # name... : SIGTERM to all at once (the nodes of a cluster shut down together
  # rather than one by one into a lost quorum), SIGKILL to what is still there after 30 s.
  local name f pid pids=() stopped=()
  for name in "$@"; do
    f="$STATE/$name.pid"
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      pids+=("$pid") stopped+=("$name (pid $pid)")
    fi
    rm -f "$f"
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  for _ in $(seq 1 60); do
    local alive=0
    for pid in "${pids[@]}"; do pid_alive "$pid" && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for name in "${stopped[@]}"; do log "$name stopped"; done
}

# kill -9, for failover drills: no shutdown, no leadership handed over.
kill_pidfile() { # name
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || die "$1: no pid file $f (not running, or not started from this state dir)"
  pid="$(cat "$f")"
  if kill -9 "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
    log "$1 killed (kill -9, pid $pid)"
  fi
  rm -f "$f"
}

postgres_down() {
  if [ -n "$PG_BIN" ] && [ -f "$STATE/pg/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null 2>&1 && log "postgresql stopped" || true
  fi
}

redis_down() {
  # Only a Redis this state dir started: an isolated set (its own PAYSTREAM_SERVICES_DIR, no
  # Redis of its own) must not shut down the shared one on the default port.
  [ -f "$STATE/redis.pid" ] || return 0
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    log "redis stopped"
  fi
  rm -f "$STATE/redis.pid"
}

status() {
  local rc=0 i name
  for i in $(seq 1 "$KAFKA_BROKERS"); do
    name="$(printf '%-10s' "$(kafka_name "$i")")"
    if port_open "$(kafka_port "$i")" && kafka_ready "$i" >/dev/null 2>&1; then log "$name up   127.0.0.1:$(kafka_port "$i")"
    elif [ "$KAFKA_BROKERS" -gt 1 ] && port_open "$(kafka_port "$i")"; then log "$name up   127.0.0.1:$(kafka_port "$i") (not every broker of the $KAFKA_BROKERS registered)"; rc=1
    else log "$name down"; rc=1; fi
  done
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
    kafka_down
    redis_down
    postgres_down
    ;;
  status) status ;;
  stop-one)
    case "${2:?name}" in
      kafka) kafka_down ;; kafka-*) stop_pidfile "$(kafka_name "$(kafka_node "$2")")" ;;
      redis) redis_down ;; postgres) postgres_down ;; prometheus) stop_pidfile prometheus ;;
      *) die "unknown service $2" ;;
    esac ;;
  start-one)
    case "${2:?name}" in
      kafka) kafka_up ;;
      kafka-*) i="$(kafka_node "$2")"; kafka_check_layout; kafka_node_start "$i"; kafka_node_wait "$i" ;;
      redis) redis_up ;; postgres) postgres_up ;; prometheus) prometheus_up ;;
      *) die "unknown service $2" ;;
    esac ;;
  kill-one)
    case "${2:?name}" in
      kafka-*) kill_pidfile "$(kafka_name "$(kafka_node "$2")")" ;;
      kafka) kill_pidfile kafka ;;
      *) die "kill-one takes a Kafka node (kafka, kafka-1..kafka-$KAFKA_BROKERS), not $2" ;;
    esac ;;
  reset)
    # Wipes all service data (topics, keys, tables). For a clean slate between runs.
    "$0" down
    rm -rf "$STATE"
    log "state removed: $STATE"
    ;;
  *) die "usage: $0 up|down|status|reset|stop-one NAME|start-one NAME|kill-one NAME [--kafka-brokers N]" ;;
esac
