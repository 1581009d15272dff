#!/usr/bin/env bash
# Debian packages some tests use (and skip without): docker-compose validates docker-compose.yml;
# chromium and chromium-driver drive the student page headless. Installs only what is missing, and
# only as root with apt-get; otherwise it says which tests will skip.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[test] Installing ${missing[*]} with apt-get." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
        || echo "[test] Could not install ${missing[*]}: the compose and browser tests will skip." >&2
else
    echo "[test] ${missing[*]} missing: the compose and browser tests will skip." >&2
fi
