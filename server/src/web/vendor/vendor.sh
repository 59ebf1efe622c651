#!/usr/bin/env bash
# The web-map library the desk serves (Leaflet, pinned in package.json and package-lock.json)
# is committed here so that building the server needs no npm. This script fetches the pinned
# package with npm into a scratch folder and compares each served file with the package's:
#   ./vendor.sh          check that the committed files are the package's, byte for byte
#   ./vendor.sh update   copy the package's files here (after changing the pinned version)
# SHA256SUMS lists the served files; a unit test of the server checks the files against it.
set -euo pipefail
cd "$(dirname "$0")"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp package.json package-lock.json "$scratch/"
(cd "$scratch" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
dist="$scratch/node_modules/leaflet"
pairs=(
  "leaflet.js:dist/leaflet.js"
  "leaflet.css:dist/leaflet.css"
  "images/layers.png:dist/images/layers.png"
  "images/layers-2x.png:dist/images/layers-2x.png"
  "LICENSE.leaflet:LICENSE"
)
status=0
for pair in "${pairs[@]}"; do
  here=${pair%%:*} there=${pair#*:}
  if [ "${1:-check}" = update ]; then
    mkdir -p "$(dirname "$here")"
    cp "$dist/$there" "$here"
  elif ! cmp -s "$here" "$dist/$there"; then
    echo "$here differs from leaflet's $there" >&2
    status=1
  fi
done
if [ "${1:-check}" = update ]; then
  sha256sum leaflet.js leaflet.css images/layers.png images/layers-2x.png LICENSE.leaflet > SHA256SUMS
fi
if [ "$status" = 0 ]; then echo "vendored files match leaflet@$(node -p "require('$dist/package.json').version")"; fi
exit "$status"
