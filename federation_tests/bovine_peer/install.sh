#!/usr/bin/env bash
# Install the bovine interop peer's environment into ./.venv (gitignored): bovine from PyPI,
# pinned in requirements.txt, in a venv of its own so that it shares nothing with ours
# (installed by $UV when set to an executable uv, else by pip).
# Idempotent: a stamp records the sha256 of requirements.txt. Prints the venv's python on
# stdout (the only stdout line). With --check it installs nothing: exit 4 when not installed
# (the test fixture uses it; `make test` installs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3}"
log() { echo "bovine_peer/install.sh: $*" >&2; }

WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && "$VENV/bin/python" -c 'import bovine, aiohttp' 2>/dev/null; then
  log "already installed"
  echo "$VENV/bin/python"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "not installed: run bash federation_tests/bovine_peer/install.sh (make test does)"
  exit 4
fi
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { log "bovine needs Python >= 3.11 ($PYTHON is older)"; exit 3; }
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
if [ -n "${UV:-}" ] && [ -x "$UV" ]; then  # the project's uv (make test): seconds, not a minute
  "$UV" pip install --quiet --python "$VENV/bin/python" -r "$HERE/requirements.txt" >&2
else
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
fi
echo "$WANT" > "$STAMP"
log "installed bovine $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("bovine"))')"
echo "$VENV/bin/python"
