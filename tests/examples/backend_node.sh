#!/usr/bin/env bash
# Runs examples/backend-node against a fresh taskhost, as its README says, and checks its output.
# Usage: backend_node.sh TASKHOST_BIN PLUGIN_DIR WORK_DIR
# npm ci installs into WORK_DIR once per package-lock.json (as tests/sdk/run.sh does).
set -euo pipefail
bin=$1 plugin_dir=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
example="$here/../../examples/backend-node"
command -v node >/dev/null || { echo "node is not installed (cmake/install-deps.sh installs it)"; exit 1; }
mkdir -p "$work"
cp "$example/package.json" "$example/package-lock.json" "$example/index.mjs" "$work/"
if ! cmp -s "$example/package-lock.json" "$work/node_modules/.installed-lock" 2>/dev/null; then
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$example/package-lock.json" "$work/node_modules/.installed-lock"
fi
deploy=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$deploy"' EXIT
mkdir -p "$deploy/plugins"
cp "$plugin_dir/hello.so" "$deploy/plugins/"
(umask 077 && "$bin" keys generate > "$deploy/keys")
printf 'name: backend-node\nplugins_dir: plugins\nhttp: {listen: "127.0.0.1:0"}\nauth: {keys_file: keys}\n' > "$deploy/d.yaml"
"$bin" run --config "$deploy/d.yaml" > "$deploy/out" 2> "$deploy/log" &
pid=$!
source "$here/../support/wait_for_serving.sh"

fail() { echo "FAIL: $*"; echo "--- server log"; cat "$deploy/log"; exit 1; }

out=$(cd "$work" && TRIGGER_API_URL="$url" TRIGGER_SECRET_KEY="$(cat "$deploy/keys")" node index.mjs "Hello from Node") ||
  fail "index.mjs exited $?: $out"
echo "$out"
[[ $(sed -n 1p <<<"$out") =~ ^triggered\ run_[0-9a-z]+$ ]] || fail "first line: $out"
[[ $(sed -n 2p <<<"$out") == 'COMPLETED {"echo":"Hello from Node"}' ]] || fail "second line: $out"

# A key the deployment does not know: the SDK's AuthenticationError at once, exit 2.
set +e
err=$(cd "$work" && TRIGGER_API_URL="$url" TRIGGER_SECRET_KEY="$("$bin" keys generate)" node index.mjs 2>&1 >/dev/null)
code=$?
set -e
[[ $code == 2 && $err == "backend: 401 Invalid API key" ]] || fail "wrong key: exit $code, $err"
echo "ok"
