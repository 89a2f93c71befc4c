#!/usr/bin/env bash
# Screenshot a report.html with headless Chromium, to look at what a browser shows without opening one.
#
#   scripts/check_report_html.sh reports/report.html /tmp/report.png
#
# The page is self-contained (plots as data: URIs, inline CSS, no scripts), so Chromium runs with every
# network feature off and a throwaway profile. Needs Debian's chromium (apt-get install chromium);
# CHROMIUM=/path/to/chrome overrides the binary.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "Usage: $0 REPORT.html OUT.png" >&2
    exit 2
fi
html=$1
out=$2
if [ ! -f "$html" ]; then
    echo "Error: no such file: $html (run \`clipprobe report\` first)" >&2
    exit 2
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "Error: headless Chromium not found at $chromium; install it with \`apt-get install chromium\` (or set CHROMIUM=/path/to/chrome)" >&2
    exit 1
fi

abs_html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
abs_out=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)/$(basename "$out")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$abs_out"

"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" \
    --screenshot="$abs_out" --window-size=1400,2000 "file://$abs_html" >/dev/null 2>&1 || true

if [ ! -s "$abs_out" ]; then
    echo "Error: Chromium wrote no screenshot to $abs_out" >&2
    exit 1
fi
echo "Wrote $abs_out"
