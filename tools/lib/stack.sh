# shellcheck shell=bash
# tools/lib/stack.sh -- start and stop the whole stack on free loopback ports.
#
# Sourced (never run) by tools/demo and tools/bench, from the repository root:
#
#   stack_tool=demo                      # the prefix of every message
#   . tools/lib/stack.sh
#   stack_traps                          # cleanup on exit, error and Ctrl-C
#   stack_deps                           # tools/install-deps (+ $stack_packages)
#   stack_build build/demo rtb/rtb-exchange tools/rtb-bidder
#   stack_build_in SRC BUILD TARGET...   # the same for the tree at SRC (another revision)
#   stack_tmpdir                         # $stack_tmp
#   stack_start_redis                    # $redis_port, $redis_pid
#   stack_start_mosquitto                # $mqtt_port, $mosquitto_pid
#   adv_ids=(a b); adv_spec[a]="latency=1"; adv_targeting[a]='"interests":[]'
#   stack_start_bidder "$bidder_bin"     # $bidder_pid, ${adv_port[id]}
#   stack_seed_advertisers               # advertiser:targeting:{id} in Redis
#   stack_write_exchange_config FILE CLIENT_ID [MAX_BIDDERS [QOS [SHARED_GROUP [ADMIN_PORT [TOPIC]]]]]
#   stack_start_exchange LOG CLIENT_ID TENTHS COMMAND...   # $exchange_pid
#
# Several exchanges in one shared group (SPEC 12; tools/bench --exchanges N):
# write one config per exchange with a distinct CLIENT_ID and the same
# SHARED_GROUP, and call stack_start_exchange once for each. ${exchange_pids[@]}
# then holds them all ($exchange_pid is the last one), and stop_exchange stops
# every one of them.
#
# Every server runs in a session of its own (setsid), so that Ctrl-C reaches
# only the script, which then stops them by PID in order: a client started by
# stack_run, a hook of the script's own (stack_on_cleanup, when defined), the exchange (SIGTERM, so
# that it drains), then the others in reverse start order. The temp dir is
# removed unless stack_keep=1.

: "${stack_tool:=stack}"
stack_keep=${stack_keep:-0}
stack_setup_opts=() # meson setup options of stack_build
stack_packages=()   # Debian packages stack_deps installs besides tools/install-deps' own
stack_exchange_grace=30 # tenths of a second the exchange gets to drain on SIGTERM
stack_tmp=""
pids=()        # "name:pid", in start order; stopped in reverse
exchange_pid=""
exchange_pids=() # every exchange started and not stopped yet, in start order
last_pid=""
port=""
used_ports=" "
redis_port="" redis_pid="" mqtt_port="" mosquitto_pid="" bidder_pid=""
redis_bin="" mosquitto_bin=""
adv_ids=()
declare -gA adv_spec=() adv_targeting=() adv_port=()

say() { printf '%s: %s\n' "$stack_tool" "$*"; }
warn() { printf '%s: warning: %s\n' "$stack_tool" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$stack_tool" "$*" >&2
  exit 1
}

show_log() { # file: its last lines, indented
  [ -s "$1" ] && tail -n 20 "$1" | sed 's/^/    | /' >&2
}

# ---- Stopping, by PID ------------------------------------------------------------------------

# Each server was started by setsid as the leader of a process group of its
# own (its pgid is its pid), so signalling -pid reaches anything it forked.
signal_pid() { kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null; }
stop_pid() { # name pid grace-tenths
  local name=$1 pid=$2 tenths=$3 i
  if kill -0 "$pid" 2>/dev/null; then
    signal_pid TERM "$pid"
    for ((i = 0; i < tenths; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      printf '%s: %s (pid %s) did not stop on SIGTERM; killing it\n' "$stack_tool" "$name" "$pid" >&2
      signal_pid KILL "$pid"
    fi
  fi
  wait "$pid" 2>/dev/null
  kill -KILL -- "-$pid" 2>/dev/null # what is left of its group, if anything
  return 0
}

stop_exchange() { # stops the exchange(s) (each drains first); clears $exchange_pid, ${exchange_pids[@]}
  local i
  # Last started first; with one exchange this is just $exchange_pid.
  for ((i = ${#exchange_pids[@]} - 1; i >= 0; i--)); do
    [ "${exchange_pids[i]}" = "$exchange_pid" ] && continue
    stop_pid rtb-exchange "${exchange_pids[i]}" "$stack_exchange_grace"
  done
  [ -n "$exchange_pid" ] && stop_pid rtb-exchange "$exchange_pid" "$stack_exchange_grace"
  exchange_pid=""
  exchange_pids=()
}

# shellcheck disable=SC2317 # run by a trap
stack_cleanup() {
  local rc=$? i entry
  trap - EXIT
  trap '' INT TERM HUP # a second Ctrl-C does not cut the cleanup short
  [ -n "$stack_client_pid" ] && stop_pid "${stack_client_pid_name:-client}" "$stack_client_pid" 30
  if declare -F stack_on_cleanup >/dev/null; then stack_on_cleanup; fi
  # The exchange first: SIGTERM lets it finish the open auctions and flush.
  stop_exchange
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    entry=${pids[i]}
    stop_pid "${entry%%:*}" "${entry##*:}" 30
  done
  if [ -n "$stack_tmp" ] && [ -d "$stack_tmp" ]; then
    if [ "$stack_keep" = 1 ]; then
      say "kept $stack_tmp:" "$(cd "$stack_tmp" && echo *)"
    else
      rm -rf "$stack_tmp"
    fi
  fi
  exit "$rc"
}
# shellcheck disable=SC2317 # run by a trap
stack_interrupted() {
  printf '\n%s: interrupted; stopping everything\n' "$stack_tool" >&2
  exit 130
}
stack_traps() {
  trap stack_cleanup EXIT
  trap stack_interrupted INT TERM HUP
  trap '' PIPE # a dead child makes writes fail, not the script die
}

# Runs a client (rtb-loadgen) in the background and waits for it: bash runs a
# trap only once a foreground command has ended, and not at all when that
# command handled the SIGINT itself, so a foreground client would make Ctrl-C
# cut one step short and go on. `wait` returns at once on a trapped signal.
# The cleanup stops the client when the script is interrupted.
stack_client_pid="" stack_client_pid_name=""
stack_run() { # out-file err-file command... ; sets $REPLY to its exit status
  local out=$1 err=$2
  shift 2
  stack_client_pid_name=${1##*/}
  "$@" >"$out" 2>"$err" </dev/null &
  stack_client_pid=$!
  wait "$stack_client_pid"
  REPLY=$?
  stack_client_pid=""
}

start_bg() { # name logfile command... ; sets $last_pid
  local name=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  last_pid=$!
  pids+=("$name:$last_pid")
}

# ---- Dependencies, build, temp dir -------------------------------------------------------------

stack_deps() { # installs what is missing (also ${stack_packages[@]}), checks the commands
  local c
  tools/install-deps "${stack_packages[@]}" || die "tools/install-deps failed"
  for c in redis-server redis-cli mosquitto mosquitto_pub setsid; do
    command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || die "$c not found"
  done
  mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  redis_bin=$(command -v redis-server || echo /usr/sbin/redis-server)
}

stack_build() { # build-dir target...: the working tree, as stack_build_in . build-dir target...
  stack_build_in . "$@"
}
stack_build_in() { # source-dir build-dir target...: meson setup (with $stack_setup_opts) when needed, ninja
  local src=$1 dir=$2 out wipe=()
  shift 2
  say "building in $dir ..."
  if [ ! -f "$dir/build.ninja" ]; then
    [ -d "$dir/meson-private" ] && wipe=(--wipe)
    if ! out=$(meson setup "${wipe[@]}" "${stack_setup_opts[@]}" "$dir" "$src" 2>&1); then
      printf '%s\n' "$out" >&2
      die "meson setup $dir failed"
    fi
  fi
  # Only what is run: a test being written elsewhere does not stop it.
  if ! out=$(ninja -C "$dir" "$@" 2>&1); then
    printf '%s\n' "$out" >&2
    die "the build failed (ninja -C $dir)"
  fi
}

stack_tmpdir() { # sets $stack_tmp
  stack_tmp=$(mktemp -d "${TMPDIR:-/tmp}/rtb-$stack_tool.XXXXXX") || die "mktemp -d failed"
}

# ---- Redis and mosquitto on free ports ----------------------------------------------------------

port_busy() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # sets $port: a loopback port nothing listens on, not handed out before
  local i
  for ((i = 0; i < 50; i++)); do
    port=""
    if command -v python3 >/dev/null; then
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null)
    fi
    [[ $port =~ ^[0-9]+$ ]] || port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
    [[ $used_ports == *" $port "* ]] && continue
    port_busy "$port" && continue
    used_ports+="$port "
    return 0
  done
  die "no free port found"
}

wait_ready() { # pid tenths probe-command...: 0 ready, 1 died, 2 timed out
  local pid=$1 tenths=$2 i
  shift 2
  for ((i = 0; i < tenths; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 2
}

# shellcheck disable=SC2317 # called by wait_ready
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
# shellcheck disable=SC2317 # called by wait_ready
mqtt_ping() { mosquitto_pub -h 127.0.0.1 -p "$1" -t "$stack_tool/probe" -n -q 0; }

stack_start_redis() { # sets $redis_port, $redis_pid
  local attempt
  # A port found free can be taken before the server binds it: try another.
  for attempt in 1 2 3; do
    free_port
    redis_port=$port
    start_bg redis-server "$stack_tmp/redis.log" "$redis_bin" --port "$redis_port" --bind 127.0.0.1 \
      --save "" --appendonly no --dir "$stack_tmp" --daemonize no
    redis_pid=$last_pid
    wait_ready "$redis_pid" 100 redis_ping "$redis_port"
    case $? in
      0) return 0 ;;
      1) [ "$attempt" -lt 3 ] && grep -qi 'in use' "$stack_tmp/redis.log" && continue
         show_log "$stack_tmp/redis.log"; die "redis-server exited at start (log above)" ;;
      *) show_log "$stack_tmp/redis.log"; die "redis-server on port $redis_port not ready after 10 s (log above)" ;;
    esac
  done
}

stack_start_mosquitto() { # sets $mqtt_port, $mosquitto_pid
  local attempt
  for attempt in 1 2 3; do
    free_port
    mqtt_port=$port
    cat >"$stack_tmp/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
# The default of 1000 silently drops QoS 1 messages to a busy subscriber.
max_queued_messages 1000000
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
EOF
    start_bg mosquitto "$stack_tmp/mosquitto.log" "$mosquitto_bin" -c "$stack_tmp/mosquitto.conf"
    mosquitto_pid=$last_pid
    wait_ready "$mosquitto_pid" 100 mqtt_ping "$mqtt_port"
    case $? in
      0) return 0 ;;
      1) [ "$attempt" -lt 3 ] && grep -qi 'in use' "$stack_tmp/mosquitto.log" && continue
         show_log "$stack_tmp/mosquitto.log"; die "mosquitto exited at start (log above)" ;;
      *) show_log "$stack_tmp/mosquitto.log"; die "mosquitto on port $mqtt_port not ready after 10 s (log above)" ;;
    esac
  done
}

# ---- Bidder and seed data ----------------------------------------------------------------------

# One rtb-bidder process serves every advertiser of ${adv_ids[@]}, each with
# the rtb-bidder SPEC keys ${adv_spec[id]} (no id, no port) on a port the
# system picks; the ports are read from its "listening" lines.
stack_start_bidder() { # bidder-binary [more rtb-bidder options...]; sets $bidder_pid, ${adv_port[id]}
  local bin=$1 id word addr i n args=()
  shift
  for id in "${adv_ids[@]}"; do
    args+=(--advertiser "id=$id,port=0${adv_spec[$id]:+,${adv_spec[$id]}}")
  done
  setsid "$bin" "$@" "${args[@]}" >"$stack_tmp/bidder.out" 2>"$stack_tmp/bidder.log" </dev/null &
  bidder_pid=$!
  pids+=("rtb-bidder:$bidder_pid")
  for ((i = 0; i < 100; i++)); do
    n=$(grep -sc '^listening ' "$stack_tmp/bidder.out")
    [ "${n:-0}" -ge ${#adv_ids[@]} ] && break
    kill -0 "$bidder_pid" 2>/dev/null || { show_log "$stack_tmp/bidder.log"; die "rtb-bidder exited at start (log above)"; }
    sleep 0.1
  done
  while read -r word id addr; do
    [ "$word" = listening ] && adv_port[$id]=${addr##*:}
  done <"$stack_tmp/bidder.out"
  for id in "${adv_ids[@]}"; do
    [ -n "${adv_port[$id]:-}" ] || { show_log "$stack_tmp/bidder.log"; die "rtb-bidder did not report a port for $id"; }
  done
}

redis_set() { # key value
  local r
  r=$(redis-cli -h 127.0.0.1 -p "$redis_port" SET "$1" "$2" 2>&1)
  [ "$r" = OK ] || die "redis SET $1 failed: $r"
}

# advertiser:targeting:{id} = {"endpoint": <its bidder port>, ${adv_targeting[id]}}
stack_seed_advertisers() {
  local id
  for id in "${adv_ids[@]}"; do
    redis_set "advertiser:targeting:$id" \
      "{\"endpoint\":\"http://127.0.0.1:${adv_port[$id]}/bid\",${adv_targeting[$id]}}"
  done
}

# ---- The exchange --------------------------------------------------------------------------------

declare -gA stack_topic_of=() # client id -> the mqtt.topic its config subscribes to
stack_write_exchange_config() { # file client-id [max-bidders [qos [shared-group [admin-port [topic]]]]]
  local group="" admin=null topic=${7:-rtb/requests/+}
  stack_topic_of[$2]=$topic
  # With a group: MQTT v5, subscription $share/{group}/rtb/requests/+ (SPEC 12).
  [ -n "${5:-}" ] && group=", \"shared_group\": \"$5\""
  # With an admin port: /healthz, /metrics and the dashboard on 127.0.0.1.
  [ -n "${6:-}" ] && admin="\"127.0.0.1:$6\""
  cat >"$1" <<EOF
{
  "mqtt": {"host": "127.0.0.1", "port": $mqtt_port, "client_id": "$2",
           "topic": "$topic", "qos": ${4:-1}$group},
  "redis": {"host": "127.0.0.1", "port": $redis_port},
  "auction": {"type": "second_price", "tmax_ms": 100, "max_bidders": ${3:-10}, "price_increment": 0.01},
  "profiles": {"ttl_s": 3600, "default": {"interests": [], "ltv_score": 0.5}},
  "bidders": [],
  "admin": {"listen": $admin},
  "log": {"level": "info"}
}
EOF
}

# Starts COMMAND (rtb-exchange -c FILE, or a wrapper such as valgrind that
# runs it) with its output in LOG and waits until it is subscribed: the
# exchange logs "subscribed to" on the broker's SUBACK, and the broker's log
# shows the subscription of CLIENT_ID to its request topic (the mqtt.topic
# stack_write_exchange_config wrote for it, rtb/requests/+ by default, or
# $share/{group}/ and that topic). Waits at most TENTHS tenths of a second.
# Sets $exchange_pid (setsid execs, so it is COMMAND's own pid) and appends it
# to ${exchange_pids[@]}.
stack_subscriptions() { # client-id: how often the broker's log shows its request subscription
  # The broker logs "<time>: <client id> <QoS> <topic>" per subscription.
  awk -v c="$1" -v t="${stack_topic_of[$1]:-rtb/requests/+}" '$2 == c && $3 ~ /^[0-2]$/ {
    x = $4; sub(/^[$]share[/][^/]+[/]/, "", x); if (x == t) n++ } END { print n + 0 }' "$stack_tmp/mosquitto.log"
}
stack_start_exchange() { # log client-id tenths command...
  local log=$1 client=$2 tenths=$3 i before id
  shift 3
  # The same client id may have subscribed before (a restart): count anew.
  before=$(stack_subscriptions "$client")
  setsid "$@" >"$log" 2>&1 </dev/null &
  exchange_pid=$!
  exchange_pids+=("$exchange_pid")
  for ((i = 0; i < tenths; i++)); do
    grep -qs 'subscribed to' "$log" && break
    kill -0 "$exchange_pid" 2>/dev/null || { show_log "$log"; die "rtb-exchange exited at start (log above)"; }
    sleep 0.1
  done
  grep -qs 'subscribed to' "$log" ||
    { show_log "$log"; die "rtb-exchange not subscribed after $((tenths / 10)) s (log above)"; }
  for ((i = 0; i < 30; i++)); do
    [ "$(stack_subscriptions "$client")" -gt "$before" ] && break
    sleep 0.1
  done
  for id in "${adv_ids[@]}"; do
    grep -q "advertiser $id added" "$log" || warn "the exchange has not loaded advertiser $id"
  done
}
