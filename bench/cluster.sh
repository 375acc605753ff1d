#!/usr/bin/env bash
# The node benchmarks of docs/benchmarks.md, in one run on this machine:
#   - redis-benchmark -t set,get,incr (with and without -P 16) against a 3-node `concur up` (fsync on),
#     for strong keys and for ap: keys, beside a single redis-server (the ceiling);
#   - strong writes through one load generator (`concur bench kv`) against concur and against a
#     3-member etcd cluster on loopback, at the same client count.
# Needs redis-server, redis-benchmark (Debian redis-server, redis-tools) and etcd (Debian etcd-server).
# Usage: bench/cluster.sh [REQUESTS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-100000}"
CLIENTS="${2:-50}"
for tool in redis-server redis-benchmark etcd; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt install redis-server redis-tools etcd-server" >&2; exit 2; }
done
cargo build --release -p concur -q
CONCUR="${CARGO_TARGET_DIR:-target}/release/concur"
WORK="$(mktemp -d /tmp/concur-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
echo "# requests $REQUESTS, clients $CLIENTS"

"$CONCUR" up --base-port 27000 --data-dir "$WORK/concur" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
redis-server --port 26379 --save "" --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
CLUSTER="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
    --log-level error >"$WORK/etcd$i.log" 2>&1 &
  PIDS+=($!)
done
# Wait for every server (concur elects a leader; etcd answers its health endpoint).
for _ in $(seq 1 100); do
  ready=1
  for port in 27001 27002 27003; do
    redis-cli -p "$port" INFO replication 2>/dev/null | grep -q "raft_leader:n" || ready=0
  done
  redis-cli -p 26379 PING >/dev/null 2>&1 || ready=0
  curl -sf http://127.0.0.1:23791/health >/dev/null 2>&1 || ready=0
  [ "$ready" = 1 ] && break
  sleep 0.2
done
[ "$ready" = 1 ] || { echo "servers did not start; logs in $WORK" >&2; trap - EXIT; exit 1; }

LEADER_PORT=$((27000 + $(redis-cli -p 27001 INFO replication | tr -d '\r' | sed -n 's/^raft_leader:n//p')))
rb() { redis-benchmark -q -n "$REQUESTS" -c "$CLIENTS" -r 100000 "$@" 2>/dev/null | tr '\r' '\n' | grep -E "requests per second" ; }

for pipeline in 1 16; do
  echo "## redis-benchmark -P $pipeline"
  echo "redis-server:        $(rb -p 26379 -P "$pipeline" -t set,get,incr | tr '\n' ' ')"
  echo "concur strong (n1):  $(rb -p 27001 -P "$pipeline" -t set,get,incr | tr '\n' ' ')"
  echo "concur strong (leader :$LEADER_PORT): $(rb -p "$LEADER_PORT" -P "$pipeline" -t set,get,incr | tr '\n' ' ')"
  echo "concur ap: (n1):     SET $(rb -p 27001 -P "$pipeline" SET 'ap:key:__rand_int__' xxx | sed 's/.*: //') GET $(rb -p 27001 -P "$pipeline" GET 'ap:key:__rand_int__' | sed 's/.*: //') INCR $(rb -p 27001 -P "$pipeline" INCR 'ap:counter:__rand_int__' | sed 's/.*: //')"
done

echo "## strong writes, one load generator (concur bench kv --op set --clients $CLIENTS)"
echo "concur (leader):     $("$CONCUR" bench kv --target "redis://127.0.0.1:$LEADER_PORT" --clients "$CLIENTS" --requests "$REQUESTS" --op set)"
echo "concur (all nodes):  $("$CONCUR" bench kv --target redis://127.0.0.1:27001,redis://127.0.0.1:27002,redis://127.0.0.1:27003 --clients "$CLIENTS" --requests "$REQUESTS" --op set)"
echo "etcd (3 members):    $("$CONCUR" bench kv --target etcd://127.0.0.1:23791,etcd://127.0.0.1:23792,etcd://127.0.0.1:23793 --clients "$CLIENTS" --requests "$REQUESTS" --op set)"
echo "etcd (one member):   $("$CONCUR" bench kv --target etcd://127.0.0.1:23791 --clients "$CLIENTS" --requests "$REQUESTS" --op set)"
