#!/usr/bin/env bash
# A local Apache RocketMQ 5 for mqtt-proxy's cluster log: name server, broker and proxy (cluster mode),
# three JVMs on 127.0.0.1, from Maven Central jars (RocketMQ is in neither npm nor Debian).
#
#   scripts/rocketmq.sh start    resolves the jars (first run downloads ~106 MB, later runs reuse them),
#                                starts whatever of the three is not running, waits until each serves,
#                                creates the topics (idempotent) and prints `endpoints=127.0.0.1:<grpc port>`
#   scripts/rocketmq.sh stop     stops the JVMs this script started (by pid file), waits until they exit
#   scripts/rocketmq.sh status   says which of them run, and the endpoint
#
# Needs java >= 17 and mvn on PATH, and Deno (topics are created over the remoting protocol by
# scripts/rocketmq_admin.ts, not by mqadmin: one mqadmin JVM costs 4-7 s per call here).
# Environment (all optional; not MQTT_PROXY_*, which the broker reads as configuration overrides and
# refuses when unknown):
#   ROCKETMQ_LOCAL_VERSION  RocketMQ version (5.5.0)
#   ROCKETMQ_LOCAL_CACHE    jar cache (~/.cache/mqtt-proxy/rocketmq-<version>)
#   ROCKETMQ_LOCAL_HOME     runtime dir: config, store, logs, pid files (~/.local/state/mqtt-proxy/rocketmq)
#   ROCKETMQ_LOCAL_MAVEN_REPO  Maven local repository (Maven's default, ~/.m2/repository)
#   ROCKETMQ_LOCAL_NAMESRV_PORT (9876), _BROKER_PORT (10911), _GRPC_PORT (8081),
#   ROCKETMQ_LOCAL_REMOTING_PORT (18080: the proxy's remoting port; its default 8080 is our http.port)
#   ROCKETMQ_LOCAL_TOPICS   name:type:queues list ("mqtt_log:FIFO:1 mqtt_log_test:FIFO:1 mqtt_log_bench:FIFO:1")
#   ROCKETMQ_LOCAL_START_TIMEOUT  seconds to wait for each JVM to serve (180)
#   DENO                         how to run Deno (deno on PATH, else npx -y deno@2.9.6)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${ROCKETMQ_LOCAL_VERSION:-5.5.0}"
CACHE="${ROCKETMQ_LOCAL_CACHE:-$HOME/.cache/mqtt-proxy/rocketmq-$VERSION}"
RUN_DIR="${ROCKETMQ_LOCAL_HOME:-$HOME/.local/state/mqtt-proxy/rocketmq}"
HOST=127.0.0.1
NAMESRV_PORT="${ROCKETMQ_LOCAL_NAMESRV_PORT:-9876}"
BROKER_PORT="${ROCKETMQ_LOCAL_BROKER_PORT:-10911}"
GRPC_PORT="${ROCKETMQ_LOCAL_GRPC_PORT:-8081}"
REMOTING_PORT="${ROCKETMQ_LOCAL_REMOTING_PORT:-18080}"
TOPICS="${ROCKETMQ_LOCAL_TOPICS:-mqtt_log:FIFO:1 mqtt_log_test:FIFO:1 mqtt_log_bench:FIFO:1}"
START_TIMEOUT="${ROCKETMQ_LOCAL_START_TIMEOUT:-180}"
LIB="$CACHE/lib"
SERVERS=(namesrv broker proxy)

say() { echo "rocketmq.sh: $*"; }
fail() {
  echo "rocketmq.sh: $*" >&2
  exit 1
}

main_class() {
  case "$1" in
    namesrv) echo org.apache.rocketmq.namesrv.NamesrvStartup ;;
    broker) echo org.apache.rocketmq.broker.BrokerStartup ;;
    proxy) echo org.apache.rocketmq.proxy.ProxyStartup ;;
  esac
}

port_of() {
  case "$1" in
    namesrv) echo "$NAMESRV_PORT" ;;
    broker) echo "$BROKER_PORT" ;;
    proxy) echo "$GRPC_PORT" ;;
  esac
}

# The pid from $1's pid file if that process still runs this JVM's main class (a reused pid does not count).
running_pid() {
  local file="$RUN_DIR/$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "$(main_class "$1")" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# --- jars ------------------------------------------------------------------------------------------
resolve_jars() {
  if [[ -f "$LIB/.complete" ]]; then return; fi
  command -v mvn >/dev/null || fail "mvn is not on PATH (apt-get install maven)"
  mkdir -p "$CACHE"
  cat >"$CACHE/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.mqtt-proxy</groupId><artifactId>rocketmq-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-proxy</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-namesrv</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.rocketmq</groupId><artifactId>rocketmq-tools</artifactId><version>$VERSION</version></dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.6.1</version>
  </plugin></plugins></build>
</project>
EOF
  say "resolving RocketMQ $VERSION jars with Maven into $LIB (first run only)"
  rm -rf "$LIB"
  local repo=()
  [[ -n "${ROCKETMQ_LOCAL_MAVEN_REPO:-}" ]] && repo=("-Dmaven.repo.local=$ROCKETMQ_LOCAL_MAVEN_REPO")
  mvn -B -q "${repo[@]}" -f "$CACHE/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIB" -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1 ||
    fail "Maven could not resolve the RocketMQ $VERSION jars; see $CACHE/mvn.log"
  touch "$LIB/.complete"
}

# --- configuration ---------------------------------------------------------------------------------
write_config() {
  mkdir -p "$RUN_DIR/conf" "$RUN_DIR/store" "$RUN_DIR/logs"
  cat >"$RUN_DIR/conf/namesrv.properties" <<EOF
listenPort=$NAMESRV_PORT
bindAddress=$HOST
EOF
  cat >"$RUN_DIR/conf/broker.conf" <<EOF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
listenPort=$BROKER_PORT
bindAddress=$HOST
# The HA port (for a slave; 0.0.0.0, RocketMQ has no bind option for it) follows the listen port.
haListenPort=$((BROKER_PORT + 1))
# The address the broker registers with the name server; without it routes point at a NIC address.
brokerIP1=$HOST
namesrvAddr=$HOST:$NAMESRV_PORT
storePathRootDir=$RUN_DIR/store
storePathCommitLog=$RUN_DIR/store/commitlog
# A send receipt means the message is on disk (fsync before the answer): the cluster log resolves an
# append on the receipt, so an acknowledged entry survives a broker crash. Measured to cost almost nothing.
flushDiskType=SYNC_FLUSH
# Consume queues in RocksDB: with the file store every queue (and every Lite topic) is one mmapped file
# and one descriptor, and this machine's descriptor limit is 20,000.
storeType=defaultRocksDB
# 128 MiB commit log files instead of 1 GiB preallocated ones.
mappedFileSizeCommitLog=134217728
# Hours; data is deleted by age, consumed or not.
fileReservedTime=72
diskMaxUsedSpaceRatio=95
# Without this a new pop group starts at offset 0 when the queue's data is still in page cache (a fresh
# broker, as in CI) and at max-1 otherwise; with it always at max-1. RocketMqLog then moves a new group to
# the tail itself over the admin protocol.
initPopOffsetByCheckMsgInMem=false
# Topics only through scripts/rocketmq_admin.ts, with their message.type; gRPC clients never auto-create.
autoCreateTopicEnable=false
# Groups appear on first use; the log's own groups are created orderly by RocketMqLog.start().
autoCreateSubscriptionGroup=true
# Lite topics (RIP-83) are LMQs: both are needed for the per-session queues the cluster may use.
enableLmq=true
enableMultiDispatch=true
# Else recallMessage (cancel a delayed message, e.g. a will) is refused.
recallMessageEnable=true
# The Lite event queue per client defaults to 100 and its overflow is rescanned only every 10 s.
maxClientEventCount=10000
liteEventCheckInterval=1000
# A receive hands out messages up to this many bytes (default 256 KiB in memory, 64 KiB from disk): the
# cluster log packs entries into messages of up to 1 MiB, so a reader that fell behind got one message
# per round trip and could not catch up.
maxTransferBytesOnMessageInMemory=8388608
maxTransferBytesOnMessageInDisk=8388608
EOF
  cat >"$RUN_DIR/conf/rmq-proxy.json" <<EOF
{
  "rocketMQClusterName": "DefaultCluster",
  "proxyMode": "cluster",
  "namesrvAddr": "$HOST:$NAMESRV_PORT",
  "grpcServerPort": $GRPC_PORT,
  "remotingListenPort": $REMOTING_PORT,
  "maxLiteRenewNumPerChannel": 10000,
  "grpcClientConsumerMinLongPollingTimeoutMillis": 1000,
  "topicRouteServiceCacheRefreshSeconds": 5,
  "topicConfigCacheRefreshSeconds": 5,
  "subscriptionGroupConfigCacheRefreshSeconds": 5
}
EOF
}
# Why the proxy keys: remotingListenPort defaults to 8080, our default http.port. maxLiteRenewNumPerChannel:
# a client may hold 100 un-acked Lite messages by default, then FORBIDDEN. The three *CacheRefreshSeconds
# default to 20 s: after a broker restart sends failed for ~30 s with "TopicMessageType validate failed".
# grpcClientConsumerMinLongPollingTimeoutMillis (default 5000): a reader waits for its long poll to end
# before it stops (else the batch it popped stays invisible), so a 1 s poll makes stop() take ~1 s.

# --- JVMs ------------------------------------------------------------------------------------------
jvm_flags() {
  case "$1" in
    namesrv) echo "-Xms64m -Xmx128m -XX:+UseSerialGC" ;;
    broker) echo "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=256m" ;;
    proxy) echo "-Xms128m -Xmx384m -XX:MaxDirectMemorySize=256m" ;;
  esac
}

server_args() {
  case "$1" in
    namesrv) echo "-c $RUN_DIR/conf/namesrv.properties" ;;
    broker) echo "-c $RUN_DIR/conf/broker.conf -n $HOST:$NAMESRV_PORT" ;;
    proxy) echo "-pm cluster -pc $RUN_DIR/conf/rmq-proxy.json -n $HOST:$NAMESRV_PORT" ;;
  esac
}

ready_line() {
  case "$1" in
    namesrv) echo "The Name Server boot success" ;;
    broker) echo "boot success" ;;
    proxy) echo "rocketmq-proxy startup successfully" ;;
  esac
}

start_server() {
  local name=$1 pid
  if pid="$(running_pid "$name")"; then
    say "$name already runs (pid $pid)"
    return
  fi
  if port_open "$(port_of "$name")"; then
    fail "port $(port_of "$name") is taken by a process this script did not start; stop it or set ROCKETMQ_LOCAL_*_PORT"
  fi
  local out="$RUN_DIR/logs/$name.out"
  # user.home and rocketmq.home.dir keep RocketMQ's own logs (~/logs/rocketmqlogs) and defaults in RUN_DIR.
  # tls.server.mode=disabled: the servers otherwise build a self-signed certificate at start (seconds of
  # CPU here) for a TLS mode nobody on loopback uses. The --add-opens let RocketMQ (built for JDK 8) run on 17+.
  # shellcheck disable=SC2046
  ROCKETMQ_HOME="$RUN_DIR" nohup java -server $(jvm_flags "$name") \
    -Duser.home="$RUN_DIR" -Drocketmq.home.dir="$RUN_DIR" -Dtls.server.mode=disabled \
    -Djava.net.preferIPv4Stack=true \
    --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-exports=java.base/sun.nio.ch=ALL-UNNAMED \
    --add-exports=java.base/jdk.internal.ref=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED \
    -cp "$LIB/*" "$(main_class "$name")" $(server_args "$name") >"$out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$RUN_DIR/$name.pid"
  local deadline=$((SECONDS + START_TIMEOUT))
  until grep -q "$(ready_line "$name")" "$out" 2>/dev/null && port_open "$(port_of "$name")"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$out" >&2
      fail "$name exited during start; its output is in $out"
    fi
    ((SECONDS < deadline)) || fail "$name did not serve within ${START_TIMEOUT}s; see $out"
    sleep 0.2
  done
  say "$name serves on $HOST:$(port_of "$name") (pid $pid)"
}

deno_cmd() {
  if [[ -n "${DENO:-}" ]]; then
    echo "$DENO"
  elif command -v deno >/dev/null; then
    echo deno
  else
    echo "npx -y deno@2.9.6"
  fi
}

create_topics() {
  # shellcheck disable=SC2046,SC2086
  (cd "$ROOT" && $(deno_cmd) run --allow-net="$HOST" scripts/rocketmq_admin.ts ensure-topics \
    --namesrv "$HOST:$NAMESRV_PORT" --cluster DefaultCluster --timeout-ms $((START_TIMEOUT * 1000)) $TOPICS) ||
    fail "could not create the topics ($TOPICS)"
}

start() {
  command -v java >/dev/null || fail "java is not on PATH (apt-get install openjdk-17-jdk-headless)"
  local started=$SECONDS
  resolve_jars
  write_config
  start_server namesrv
  start_server broker
  # Topics before the proxy: the proxy caches a route miss, so no client may ask before they exist.
  create_topics
  start_server proxy
  say "ready in $((SECONDS - started))s; runtime dir $RUN_DIR"
  echo "endpoints=$HOST:$GRPC_PORT"
}

stop() {
  local name pid pids=()
  for name in proxy broker namesrv; do
    if pid="$(running_pid "$name")"; then
      kill "$pid"
      pids+=("$pid")
      say "stopping $name (pid $pid)"
    fi
    rm -f "$RUN_DIR/$name.pid"
  done
  # A graceful RocketMQ stop can take ~30 s (it flushes and unregisters); after 60 s, kill.
  local deadline=$((SECONDS + 60))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        say "pid $pid still runs after 60s; killing it"
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  done
  say "stopped"
}

status() {
  local name pid all=0
  for name in "${SERVERS[@]}"; do
    if pid="$(running_pid "$name")"; then
      say "$name runs (pid $pid, port $(port_of "$name"))"
    else
      say "$name is not running"
      all=1
    fi
  done
  echo "endpoints=$HOST:$GRPC_PORT"
  return $all
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) fail "usage: scripts/rocketmq.sh start|stop|status" ;;
esac
