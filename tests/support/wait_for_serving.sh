# Sourced by the test scripts that start `taskhost run` in the background: waits for its
# "serving ... http://127.0.0.1:PORT" line in $deploy/out (process $pid, stderr in $deploy/log)
# and sets $url; or says why it did not come, prints the server's log and exits 1.
# Up to 60 s: a sanitizer build takes 5 s to start on a quiet machine, and more beside other tests.
for _ in $(seq 1200); do
  grep -q "serving" "$deploy/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$deploy/out") || {
  if kill -0 "$pid" 2>/dev/null; then echo "taskhost did not start serving within 60 s"; else echo "taskhost exited before serving"; fi
  echo "--- server log"; cat "$deploy/log"; exit 1
}
