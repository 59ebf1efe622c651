#!/usr/bin/env bash
# What reaches a phone after a simulated year (issue figures for BENCHMARKS.md):
#
#  1. a release server with the Tianqiao demo and a district simulated for a year by `fieldsim`
#     (`--days 365 --sync-every 7`: everyone syncs weekly; `--observe` chiefs of each level and
#     every office and department phone compared with the server and their stores measured, the
#     rest of the district in bulk);
#  2. a new phone for one of the observed district chiefs, signed in and synced for the first
#     time over an emulated link (`tests::weaklink`): the reliability tests' field link
#     (300 ms round trip, 5 % loss, 256 kbit/s) and a 10 Mbit/s, 50 ms round-trip link.
#
# The server runs in a network namespace of its own and the phone in another, the link's
# emulator in a third between them, as in tests/tests/weak_network.rs; the year's simulator
# talks to the server on that namespace's loopback. Needs root (ip netns) and a release build:
#   cargo build --release -p server --bin chiefsync -p tests --bin fieldsim --bin weaknet
#
# Usage: [SYNC_EVERY=7] tests/figures/phone-year.sh [DEVICES] [DAYS] [OBSERVE]   (default 100 365 2)
# LINKS="field rate=128kbit ..." names the links of step 2 (`LinkSpec::parse`, each starting
# from the field link's settings).
# Writes year.json, and first-sync-<link>.jsonl under $OUT (default /tmp/chiefsync-phone-year).
set -euo pipefail

DEVICES=${1:-100}
DAYS=${2:-365}
OBSERVE=${3:-2}
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=${OUT:-/tmp/chiefsync-phone-year}
NS=chiefsync-year-$$
# YEAR_DONE=1 with CHIEF=<username>: skip the year, serve the data it left in $OUT/server.
[[ -z ${YEAR_DONE:-} ]] && rm -rf "$OUT"
mkdir -p "$OUT"

cleanup() {
  [[ -n ${SERVER_PID:-} ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
  [[ -n ${LINK_PID:-} ]] && kill -9 "$LINK_PID" 2>/dev/null || true
  for r in phone link server; do ip netns del "$NS-$r" 2>/dev/null || true; done
}
trap cleanup EXIT

# The three namespaces and their wiring (tests/src/netns.rs).
D=$NS-phone L=$NS-link S=$NS-server
for n in "$D" "$L" "$S"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add d0 netns "$D" type veth peer name ld netns "$L"
ip link add s0 netns "$S" type veth peer name ls netns "$L"
ip -n "$D" addr add 10.77.1.2/24 dev d0 && ip -n "$D" link set d0 up
ip -n "$L" addr add 10.77.1.1/24 dev ld && ip -n "$L" link set ld up
ip -n "$L" addr add 10.77.2.1/24 dev ls && ip -n "$L" link set ls up
ip -n "$S" addr add 10.77.2.2/24 dev s0 && ip -n "$S" link set s0 up
ip -n "$D" link add vx0 type vxlan id 78 local 10.77.1.2 remote 10.77.1.1 dstport 4789 dev d0
ip -n "$S" link add vx0 type vxlan id 78 local 10.77.2.2 remote 10.77.2.1 dstport 4789 dev s0
ip -n "$D" addr add 10.78.0.2/24 dev vx0 && ip -n "$D" link set vx0 up
ip -n "$S" addr add 10.78.0.1/24 dev vx0 && ip -n "$S" link set vx0 up

# The server, listening on the server namespace's loopback and on its end of the link.
ip netns exec "$S" nice "$BIN/chiefsync" --demo --addr 0.0.0.0:8080 --data-dir "$OUT/server" \
  2> "$OUT/server.log" &
SERVER_PID=$!
for _ in $(seq 600); do
  ip netns exec "$S" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' 2>/dev/null && break
  sleep 0.5
done

# The year.
if [[ -z ${YEAR_DONE:-} ]]; then
start=$(date +%s)
ip netns exec "$S" nice "$BIN/fieldsim" --server http://127.0.0.1:8080 \
  --devices "$DEVICES" --days "$DAYS" --sync-every "${SYNC_EVERY:-7}" --observe "$OBSERVE" \
  --recorder chunk --concurrency 8 --interrupted 0 --server-pid "$SERVER_PID" \
  --data-dir "$OUT/phones" --json > "$OUT/year.json"
echo "year simulated in $(( $(date +%s) - start )) s (wall)" >&2

CHIEF=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["observed_accounts"]["district"][0])' "$OUT/year.json")
fi

# A new phone for that district chief over each link: sign in, then one timed first sync.
for link in ${LINKS:-field delay=25ms,loss=0,rate=10mbit}; do
  name=${link//[^a-z0-9]/_}
  spec=()
  [[ $link != field ]] && spec=("$link")
  rm -f "$OUT/control-$name" && mkfifo "$OUT/control-$name"
  ip netns exec "$L" "$BIN/weaknet" link 1 "${spec[@]}" < "$OUT/control-$name" > "$OUT/link-$name.jsonl" &
  LINK_PID=$!
  exec 4> "$OUT/control-$name"
  sleep 1
  rm -rf "$OUT/new-phone-$name"
  ip netns exec "$D" "$BIN/weaknet" phone "$OUT/new-phone-$name" http://10.78.0.1:8080 \
    login "$CHIEF" fieldsim-passphrase > "$OUT/first-sync-$name.jsonl"
  echo stats >&4
  ip netns exec "$D" "$BIN/weaknet" phone "$OUT/new-phone-$name" http://10.78.0.1:8080 sync \
    >> "$OUT/first-sync-$name.jsonl"
  echo stats >&4
  exec 4>&-
  wait "$LINK_PID" || true
  LINK_PID=
  du -sb "$OUT/new-phone-$name" | awk '{print "{\"phone_dir_bytes\": " $1 "}"}' >> "$OUT/first-sync-$name.jsonl"
done
echo "$OUT" >&2
