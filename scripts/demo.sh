#!/usr/bin/env bash
# The main job on the embedded default: start `tuner serve` (API + dispatcher + local Ray on a
# SQLite file), submit a tuning job over HTTP, follow it to the end, print the recommendation.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${TUNER_DEMO_PORT:-8000}
export TUNER_URL="http://127.0.0.1:${PORT}"
mkdir -p .demo
if curl -s -o /dev/null "$TUNER_URL/healthz"; then  # another server would answer for ours
  echo "port $PORT is in use by another server: TUNER_DEMO_PORT=8100 make demo" >&2
  exit 1
fi
"$BIN/tuner" serve --port "$PORT" > .demo/serve.log 2>&1 &
SERVE=$!
trap 'kill -INT $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "$TUNER_URL/healthz" > /dev/null && break
  kill -0 $SERVE 2>/dev/null || { cat .demo/serve.log; exit 1; }
  sleep 1
done
grep -h "API key" .demo/serve.log || true
"$BIN/tuner" submit --model mlp --dataset digits --trials 30 --epochs 10 --parallelism 2 --baseline-runs 5 --wait
"$BIN/tuner" recommend --model mlp --dataset digits
echo "The demo's service stops here. To look at the job, its figures and the answer in a browser:
  .venv/bin/tuner serve --port $PORT   (the same ./tuner.db), then open $TUNER_URL/ui and give it the API key in ${TUNER_HOME:-$HOME/.tuner}/credentials.json"
