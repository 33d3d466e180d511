#!/usr/bin/env bash
# Run from the repository root after `cargo build --workspace --bins` and `npm ci --prefix tests/js`.
# 10 tries: the official JS client creates a document, sees konsens acknowledge
# it, the server is killed with SIGKILL at once, restarted, and the document read back.
set -u
lost=0
for i in $(seq 1 10); do
  d=$(mktemp -d)
  target/debug/konsens-server --open --data $d --listen 127.0.0.1:18181 2>/dev/null & pid=$!
  until curl -s 127.0.0.1:18181/health >/dev/null; do :; done
  url=$(node tests/js/interop.mjs create ws://127.0.0.1:18181/sync "{\"try\":$i}" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).url))')
  kill -9 $pid; wait $pid 2>/dev/null
  target/debug/konsens-server --open --data $d --listen 127.0.0.1:18181 2>/dev/null & pid=$!
  until curl -s 127.0.0.1:18181/health >/dev/null; do :; done
  got=$(node tests/js/interop.mjs read ws://127.0.0.1:18181/sync "$url" 2>/dev/null)
  echo "$got" | grep -q "\"try\":$i" || { lost=$((lost+1)); echo "try $i lost: $got"; }
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
done
echo "lost $lost of 10"
