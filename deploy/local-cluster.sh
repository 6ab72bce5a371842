#!/usr/bin/env bash
# Starts a Cairn cluster on this machine: N storage nodes and M gateways on loopback, with a
# fresh cluster secret and access key. Prints the S3 endpoints and the key, then runs until
# Ctrl-C (or SIGTERM), which stops every process it started.
#
#   deploy/local-cluster.sh [-n NODES] [-g GATEWAYS] [-p BASE_PORT] [-d DIR] [-b CAIRN_BINARY]
#
# Defaults: 3 nodes, 1 gateway, ports from 19000, a temporary data dir (kept on exit, printed),
# the release binary (built with cargo if missing). Node i listens for gRPC on BASE+10i and
# health on BASE+10i+1; gateway j serves S3 on BASE+500+10j, websites on +1, health on +2.
set -euo pipefail

nodes=3 gateways=1 base=19000 dir="" bin=""
while getopts "n:g:p:d:b:h" opt; do
    case "$opt" in
        n) nodes=$OPTARG ;;
        g) gateways=$OPTARG ;;
        p) base=$OPTARG ;;
        d) dir=$OPTARG ;;
        b) bin=$OPTARG ;;
        *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
if (( nodes < 1 || gateways < 1 )); then
    echo "need at least one node and one gateway" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "$bin" ]]; then
    bin="$root/target/release/cairn"
    if [[ ! -x "$bin" ]]; then
        echo "building cairn (release)..." >&2
        cargo build --release --manifest-path "$root/Cargo.toml" -p cairn >&2
    fi
fi
dir="${dir:-$(mktemp -d -t cairn-local-XXXXXX)}"
mkdir -p "$dir"

# (tr ends on SIGPIPE once head has enough: not a failure.)
random() { LC_ALL=C tr -dc "$1" </dev/urandom | head -c "$2" || true; }
export CAIRN_CLUSTER_SECRET="$(random 'a-f0-9' 64)"
key_id="GK$(random 'A-Z0-9' 18)"
secret_key="$(random 'A-Za-z0-9' 40)"

pids=()
stop() {
    trap - INT TERM EXIT
    echo "stopping ${#pids[@]} process(es)..." >&2
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    echo "stopped; data and logs are in $dir" >&2
}
trap stop INT TERM EXIT

rpcs=()
for ((i = 0; i < nodes; i++)); do
    rpcs+=("127.0.0.1:$((base + 10 * i))")
done
for ((i = 0; i < nodes; i++)); do
    args=(node --data-dir "$dir/node$i" --rpc-listen "${rpcs[i]}"
        --http-listen "127.0.0.1:$((base + 10 * i + 1))" --bootstrap-expect "$nodes")
    # Every node but the first finds the cluster through the first.
    (( i > 0 )) && args+=(--join "${rpcs[0]}")
    CAIRN_ACCESS_KEY_ID="$key_id" CAIRN_SECRET_ACCESS_KEY="$secret_key" \
        "$bin" "${args[@]}" >"$dir/node$i.log" 2>&1 &
    pids+=($!)
done

endpoints=()
for ((j = 0; j < gateways; j++)); do
    port=$((base + 500 + 10 * j))
    "$bin" gateway --nodes "$(IFS=,; echo "${rpcs[*]}")" \
        --s3-listen "127.0.0.1:$port" --web-listen "127.0.0.1:$((port + 1))" \
        --http-listen "127.0.0.1:$((port + 2))" >"$dir/gateway$j.log" 2>&1 &
    pids+=($!)
    endpoints+=("http://127.0.0.1:$port")
done

# Whether GET /readyz on 127.0.0.1:$1 answers 200 (plain bash, no curl needed).
readyz() {
    local status
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r -t 2 _ status _ <&3 || true
    exec 3<&- 3>&-
    [[ "$status" == 200 ]]
}
# Ready when every gateway has current metadata and a layout.
ready() {
    local j
    for ((j = 0; j < gateways; j++)); do
        readyz $((base + 500 + 10 * j + 2)) || return 1
    done
}
for ((t = 0; t < 600; t++)); do
    ready && break
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a process exited early; logs in $dir" >&2
            tail -n 20 "$dir"/*.log >&2
            exit 1
        fi
    done
    sleep 0.1
done
ready || { echo "not ready within 60 s; logs in $dir" >&2; exit 1; }

cat <<EOF
Cairn is running: $nodes node(s), $gateways gateway(s). Ctrl-C stops them.
S3 endpoint(s):      ${endpoints[*]}
access key id:       $key_id
secret access key:   $secret_key
cluster secret:      $CAIRN_CLUSTER_SECRET
data and logs:       $dir
admin:               CAIRN_CLUSTER_SECRET=... $bin status --node ${rpcs[0]}
EOF
wait
