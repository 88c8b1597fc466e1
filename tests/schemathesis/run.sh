#!/usr/bin/env bash
# Fuzzes a built ufrecs binary against docs/openapi.yaml with schemathesis.
#
#   tests/schemathesis/run.sh [path/to/ufrecs [extra schemathesis run options...]]
#
# (default binary: target/debug/ufrecs, relative to the repository root)
#
# A throw-away server (temp database with the demo directory, loopback, random port) is
# started, one reporter is authenticated, and schemathesis runs every operation of the
# OpenAPI file (reporter calls with that reporter's Basic credentials, admin calls with
# the admin Bearer token) with the checks below, a bounded number of examples per
# operation, a fixed seed and a time limit (phases: examples, coverage, fuzzing, stateful).
# The last line printed is "N passed, M failed" (N, M = operations; a failed stateful
# phase or a schemathesis error counts as one failure); the exit status is non-zero on
# any failure. Takes about 30 s on 2 cores with the defaults.
#
# Knobs (environment): FUZZ_MAX_EXAMPLES (30), FUZZ_SEED, FUZZ_TIME_LIMIT (seconds, 170),
# FUZZ_WORKERS (1), FUZZ_CHECKS (comma-separated; "all" adds the stricter ones),
# FUZZ_VENV (the repository's .venv), FUZZ_SCHEMA (docs/openapi.yaml), FUZZ_KEEP=1 keeps
# the temp dir (server log, database, JUnit report, schemathesis output).
set -euo pipefail

SCHEMATHESIS_PIN="schemathesis==4.32.5"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-target/debug/ufrecs}
shift || true
case $BIN in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
[ -x "$BIN" ] || { echo "run.sh: no executable ufrecs binary at $BIN" >&2; exit 2; }

VENV=${FUZZ_VENV:-$ROOT/.venv}
SCHEMA=${FUZZ_SCHEMA:-$ROOT/docs/openapi.yaml}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-30}
SEED=${FUZZ_SEED:-20250815}
TIME_LIMIT=${FUZZ_TIME_LIMIT:-170}
# One worker: with two threads, CPython 3.11.7 (this machine's) can crash inside
# schemathesis with "SystemError: AST constructor recursion depth mismatch" (a CPython
# race between threads compiling code, fixed in later 3.11 releases).
WORKERS=${FUZZ_WORKERS:-1}
CHECKS=${FUZZ_CHECKS:-not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance}
# The public page's routes (`/`, `/office/{poll_office_id}`, `/page/...`) are described
# in the YAML but not fuzzed: they serve HTML, script and style, not the JSON API.
EXCLUDE_PATHS='^/($|office/|page/)'

# schemathesis, pinned, in the Python venv (created if missing).
want_version=${SCHEMATHESIS_PIN#schemathesis==}
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $want_version"; then
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SCHEMATHESIS_PIN"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ufrecs-fuzz.XXXXXX")
server_pid=
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    echo "run.sh: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export UFRECS_CONFIG="$ROOT/ufrecs.toml"
export UFRECS_DATABASE_PATH="$tmp/ufrecs.sqlite3"

ADMIN_TOKEN=fuzz-admin
(
  cd "$tmp"
  exec env UFRECS_SERVER_LISTEN=127.0.0.1:0 UFRECS_AUTH_SECRET_FILE="$tmp/secret" \
    UFRECS_AUTH_ADMIN_TOKEN="$ADMIN_TOKEN" UFRECS_LOG=warn "$BIN" serve
) >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# The first stdout line is "listening on 127.0.0.1:PORT".
addr=
for _ in $(seq 1 300); do
  line=$(head -n 1 "$tmp/server.out" 2>/dev/null || true)
  case $line in "listening on "*) addr=${line#listening on }; break ;; esac
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "run.sh: the server did not start" >&2
  tail -n 20 "$tmp/server.err" >&2 || true
  exit 2
fi
case $addr in 127.*) ;; *) echo "run.sh: refusing a non-loopback address $addr" >&2; exit 2 ;; esac
base="http://$addr"

# The directory, imported while the server runs (only `serve` creates the database); the
# server follows the CLI's commit within a second.
(cd "$tmp" && "$BIN" import poll-offices "$ROOT/tests/data/poll-offices-demo.csv" >/dev/null)
(cd "$tmp" && "$BIN" import parties "$ROOT/tests/data/parties-cm.csv" >/dev/null)
for _ in $(seq 1 100); do
  "$VENV/bin/python" -c 'import json, sys, urllib.request
sys.exit(0 if json.load(urllib.request.urlopen(sys.argv[1], timeout=5))["count"] > 0 else 1)' \
    "$base/api/candidateparties/?limit=1" 2>/dev/null && break
  sleep 0.1
done

# One reporter, so that reporter operations get past authentication.
ELECTOR=FUZZ-1
token=$("$VENV/bin/python" - "$base" "$ELECTOR" <<'EOF'
import json, sys, urllib.request
base, elector = sys.argv[1], sys.argv[2]
body = json.dumps({"elector_id": elector, "poll_office_id": "CM-AD-000001"}).encode()
with urllib.request.urlopen(urllib.request.Request(base + "/api/authenticate/", data=body), timeout=10) as r:
    print(json.load(r)["token"])
EOF
)

# Credentials per security scheme of docs/openapi.yaml.
cat >"$tmp/schemathesis.toml" <<EOF
[auth]
auto-signup = false

[auth.openapi.reporterBasic]
username = "$ELECTOR"
password = "$token"

[auth.openapi.adminBearer]
bearer = "$ADMIN_TOKEN"
EOF

set +e
(
  cd "$tmp"
  exec timeout --signal=INT --kill-after=15 "$TIME_LIMIT" \
    "$VENV/bin/schemathesis" --config-file "$tmp/schemathesis.toml" --no-color run "$SCHEMA" \
    --url "$base" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --workers "$WORKERS" \
    --request-timeout 10 \
    --exclude-path-regex "$EXCLUDE_PATHS" \
    --report junit --report-junit-path "$tmp/junit.xml" \
    "$@"
) 2>&1 | tee "$tmp/schemathesis.out"
st_status=${PIPESTATUS[0]}
set -e

if ! kill -0 "$server_pid" 2>/dev/null; then
  server_status=0
  wait "$server_pid" 2>/dev/null || server_status=$?
  server_pid=
  echo "run.sh: the server died during the run (exit status $server_status); its last log lines:" >&2
  tail -n 20 "$tmp/server.err" >&2 || true
  [ "$st_status" -ne 0 ] || st_status=1
fi

# Operations passed / failed, from the JUnit report (one test case per operation).
counts=$("$VENV/bin/python" - "$tmp/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError):
    print("0 0 0")
    sys.exit()
bad = lambda c: c.find("failure") is not None or c.find("error") is not None
# One test case per operation ("GET /api/flags/"), plus "Stateful tests" and, when the
# server went away, "Server": each of those counts as one failure when it failed.
ops = [c for c in cases if c.get("name", "").split(" ")[0].isupper()]
other = [c for c in cases if c not in ops]
failed = sum(1 for c in ops if bad(c))
skipped = sum(1 for c in ops if c.find("skipped") is not None and not bad(c))
passed = len(ops) - failed - skipped
for c in other:
    if bad(c):
        print(f"run.sh: {c.get('name')} failed (see above)", file=sys.stderr)
        failed += 1
print(passed, failed, skipped)
EOF
)
read -r passed failed skipped <<<"$counts"
if [ "$st_status" -eq 124 ] || [ "$st_status" -eq 137 ]; then
  echo "run.sh: schemathesis hit the ${TIME_LIMIT}s time limit" >&2
fi
if [ "$st_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # schemathesis itself failed (time limit, schema error, dead server): count it
fi
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$st_status" -eq 0 ] && [ "$failed" -eq 0 ]
