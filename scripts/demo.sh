#!/usr/bin/env bash
# The main job on a fresh machine: set up, ingest the sample course, serve the tutor on
# 127.0.0.1:8000 and print a ready curl command. Ctrl-C stops the server.
# DEMO_LLAMA_SERVER=1: generate on llama.cpp's llama-server instead of in-process, 1.5-3.5x faster on
# a CPU (README, Deployment); built once into .venv/bin by scripts/build_llama_server.sh (~8 minutes).
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

# Return once URL/health answers 200 (or the process PID exits).
wait_ready() {
    "$VENV/bin/python" - "$@" <<'PY'
import os, sys, time, urllib.request

url, pid, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"{name} exited during start-up.")
    time.sleep(0.5)
sys.exit(f"{name} did not become ready within 10 minutes.")
PY
}

# Stop with a clear line when PORT is taken: a server already there would answer the readiness check.
check_port_free() {
    "$VENV/bin/python" -c 'import socket, sys
with socket.socket() as s:
    sys.exit(f"Port {sys.argv[1]} is in use: stop what runs there or set {sys.argv[2]}." if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 0)' "$1" "$2"
}

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; true' EXIT INT TERM
if [[ ${DEMO_LLAMA_SERVER:-0} == 1 ]]; then
    [[ -x "$VENV/bin/llama-server" ]] || PYTHON="$VENV/bin/python" scripts/build_llama_server.sh "$VENV/bin"
    llama_url="http://127.0.0.1:${LLAMA_PORT:-8088}"
    gguf=$("$VENV/bin/python" -c 'from engine.runtime.models import default_gguf_path; print(default_gguf_path())')
    llama_log="${TMPDIR:-/tmp}/tutor-llama-server.log"
    check_port_free "${LLAMA_PORT:-8088}" LLAMA_PORT
    # Four answers at once, 4096 tokens each, at most 1 GiB of cached prompts (README, "llama.cpp on a CPU").
    "$VENV/bin/llama-server" -m "$gguf" --host 127.0.0.1 --port "${LLAMA_PORT:-8088}" \
        -c "${LLAMA_CTX_SIZE:-16384}" --parallel "${LLAMA_PARALLEL:-4}" --cache-ram "${LLAMA_CACHE_RAM_MB:-1024}" \
        > "$llama_log" 2>&1 &
    llama=$!
    pids+=("$llama")
    wait_ready "$llama_url" "$llama" "llama-server (log: $llama_log)"
    export TUTOR_GENERATION_URL="$llama_url"
fi

check_port_free "$PORT" TUTOR_PORT
"$tutor" serve --host "$HOST" --port "$PORT" &
server=$!
pids+=("$server")
wait_ready "http://$HOST:$PORT" "$server" "The tutor server"   # the model and the index are loaded

body=$("$VENV/bin/python" -c 'import json, sys; print(json.dumps({"course": sys.argv[1], "question": sys.argv[2]}))' \
    "$COURSE" "$QUESTION")
cat <<MSG

The tutor is ready on http://$HOST:$PORT (API docs: http://$HOST:$PORT/docs). Try:

  curl -s http://$HOST:$PORT/v1/ask -H 'Content-Type: application/json' \\
    -d '${body//\'/\'\\\'\'}'

Press Ctrl-C to stop the server.
MSG
wait "$server"
