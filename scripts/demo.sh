#!/usr/bin/env bash
# The main job on a fresh machine: set up, ingest the sample course, serve the tutor on
# 127.0.0.1:8000 and print a ready curl command. Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=127.0.0.1
PORT=${TUTOR_PORT:-8000}
COURSE=sample-course
QUESTION=${DEMO_QUESTION:-"What does Newton's first law say?"}

scripts/setup.sh
VENV=${VENV:-.venv}
tutor="$VENV/bin/tutor"

"$tutor" ingest samples/course --course "$COURSE"

"$tutor" serve --host "$HOST" --port "$PORT" &
server=$!
trap 'kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; true' EXIT INT TERM

# Wait until /health says the model and the index are loaded (or the server exits).
"$VENV/bin/python" - "$HOST" "$PORT" "$server" <<'PY'
import os, sys, time, urllib.request

host, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("The tutor server exited during start-up; its log is above.")
    time.sleep(0.5)
sys.exit("The tutor server did not become ready within 10 minutes.")
PY

body=$("$VENV/bin/python" -c 'import json, sys; print(json.dumps({"course": sys.argv[1], "question": sys.argv[2]}))' \
    "$COURSE" "$QUESTION")
cat <<MSG

The tutor is ready on http://$HOST:$PORT (API docs: http://$HOST:$PORT/docs). Try:

  curl -s http://$HOST:$PORT/v1/ask -H 'Content-Type: application/json' \\
    -d '${body//\'/\'\\\'\'}'

Press Ctrl-C to stop the server.
MSG
wait "$server"
