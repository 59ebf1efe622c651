#!/usr/bin/env bash
# Page load times of the desk over the district demo, on a release server, in headless Chromium
# driven over WebDriver (chromedriver) with curl: the wall time from navigation until the page's
# content is present, as the browser test measures it.
# Usage: desk-timing.sh path/to/chiefsync
set -euo pipefail
BIN=$1; PORT=18923; WD=19523; DATA=$(mktemp -d /tmp/desk-timing.XXXX); BASE=http://127.0.0.1:$PORT
ms() { date +%s%3N; }
t0=$(ms)
"$BIN" --demo --data-dir "$DATA" --addr 127.0.0.1:$PORT >"$DATA/log" 2>&1 & SRV=$!
LANGUAGE=zh_CN chromedriver --port=$WD >/dev/null 2>&1 & DRV=$!
trap 'kill $SRV $DRV 2>/dev/null; rm -rf "$DATA"' EXIT
until curl -sf $BASE/healthz >/dev/null 2>&1; do sleep 0.2; done
echo "server up with the district demo seeded in $(( $(ms) - t0 )) ms"
TOKEN=$(curl -sf -H 'Content-Type: application/json' -d '{"username":"demo-supervisor","password":"demo","device_id":"timing"}' $BASE/api/v1/auth/login | jq -r .access_token)
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/api/v1$1"; }
ISSUE=""
for id in $(api '/issues?status=closed&limit=500' | jq -r '.items[].id'); do
  if api "/issues/$id" | jq -e '[.pairs[]? | select(.distance_m != null)] | length > 0' >/dev/null; then ISSUE=$id; break; fi
done
PATROL=$(api '/patrols?limit=500' | jq -r '[.[] | select(.valid == false)][0].id')
S=$(curl -sf -d '{"capabilities":{"alwaysMatch":{"goog:chromeOptions":{"binary":"/usr/bin/chromium","args":["--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage","--window-size=1280,800"]}}}}' http://127.0.0.1:$WD/session | jq -r .value.sessionId)
W=http://127.0.0.1:$WD/session/$S
go() { curl -sf -d "{\"url\":\"$1\"}" $W/url >/dev/null; }
has() { curl -sf -d "{\"script\":\"return !!document.querySelector(arguments[0])\",\"args\":[\"$1\"]}" $W/execute/sync | jq -r .value; }
wait_for() { until [ "$(has "$1")" = true ]; do :; done; }
go $BASE/
wait_for '#username'
curl -sf -d '{"script":"document.getElementById(\"username\").value=\"demo-supervisor\";document.getElementById(\"password\").value=\"demo\";document.getElementById(\"login-submit\").click();","args":[]}' $W/execute/sync >/dev/null
wait_for '.column .card'
page() { local t=$(ms); go "$2"; wait_for "$3"; echo "$1: $(( $(ms) - t )) ms"; }
for round in first again; do
  echo "-- $round visit"
  page board "$BASE/#/board" '.column .card'
  page issue "$BASE/#/issue/$ISSUE" '#pairs .distance[data-distance]'
  page map "$BASE/#/map" '#map path.issue'
  page patrols "$BASE/#/patrols" '#patrols tbody tr'
  page patrol "$BASE/#/patrol/$PATROL" '#patrol-map path.river'
  page reminders "$BASE/#/reminders" '#view h1'
  page report "$BASE/report" '#out .figure'
  go "$BASE/#/board"; wait_for '.column .card'
done
curl -sf -X DELETE $W >/dev/null
