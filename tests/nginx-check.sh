#!/usr/bin/env bash
# tests/nginx-check.sh DOC: the nginx configuration shown in DOC (its
# first ```nginx block, docs/operations.md) is a complete nginx.conf that
# `nginx -t` accepts. The test command installs nginx (nginx-light).
set -euo pipefail

doc=${1:?usage: nginx-check.sh DOC}
command -v nginx >/dev/null || { echo "nginx not found: install nginx-light (tools/dev test does)" >&2; exit 1; }
dir=$(mktemp -d /tmp/coach-nginx.XXXXXX)
trap 'rm -rf -- "$dir"' EXIT
awk '/^```nginx$/ { on = 1; next } on && /^```$/ { exit } on { print }' "$doc" >"$dir/nginx.conf"
[[ -s $dir/nginx.conf ]] || { echo "no \`\`\`nginx block in $doc" >&2; exit 1; }
grep -q 'proxy_set_header Upgrade' "$dir/nginx.conf" ||
    { echo "the example does not pass WebSocket upgrades" >&2; exit 1; }
mkdir -p "$dir/logs"
nginx -t -p "$dir" -c "$dir/nginx.conf" -g "pid $dir/nginx.pid; error_log $dir/logs/error.log;"
