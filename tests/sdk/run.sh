#!/usr/bin/env bash
# Runs compat.test.mjs (the official SDK) and openapi.test.mjs (docs/openapi.json against the
# answers) against a fresh taskhost. Usage: run.sh TASKHOST_BIN PLUGIN_DIR FIXTURE_DIR WORK_DIR
set -euo pipefail
bin=$1 plugin_dir=$2 fixture_dir=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node is not installed (cmake/install-deps.sh installs it)"; exit 1; }
mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/compat.test.mjs" "$here/openapi.test.mjs" "$work/"
if ! cmp -s "$here/package-lock.json" "$work/node_modules/.installed-lock" 2>/dev/null; then
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$work/node_modules/.installed-lock"
fi
deploy=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$deploy"' EXIT
mkdir -p "$deploy/plugins"
cp "$plugin_dir/hello.so" "$fixture_dir/fixture_good.so" "$fixture_dir/fixture_durable.so" "$fixture_dir/fixture_schedules.so" "$deploy/plugins/"
# A real API key in a keys file, as a deployment would have it; the SDK gets it as TRIGGER_SECRET_KEY.
(umask 077 && "$bin" keys generate > "$deploy/keys")
# A free port, so that http.public_url can name it: the URLs taskhost hands out (packet uploads,
# token callbacks) then carry the path prefix /th, which taskhost serves with or without.
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
printf 'name: sdk-compat\nplugins_dir: plugins\nexecutor: {threads: 4}\nqueues: [{name: one, concurrency_limit: 1}]\nhttp: {listen: "127.0.0.1:%s", public_url: "http://127.0.0.1:%s/th"}\nauth: {keys_file: keys}\n' "$port" "$port" > "$deploy/d.yaml"
"$bin" run --config "$deploy/d.yaml" > "$deploy/out" 2> "$deploy/log" &
pid=$!
source "$here/../support/wait_for_serving.sh"
cd "$work" && TRIGGER_API_URL="$url" TRIGGER_SECRET_KEY="$(cat "$deploy/keys")" OPENAPI_DOC="$here/../../docs/openapi.json" \
  node --test compat.test.mjs openapi.test.mjs
