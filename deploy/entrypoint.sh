#!/bin/sh
# Container entry point. First start: initialise the chamber from ARCHIPEL_* variables.
# Then run the given command (serve | worker | any archipel subcommand) on the data dir.
set -eu
DATA_DIR="${ARCHIPEL_DATA_DIR:-/data}"
if [ ! -f "$DATA_DIR/archipel.toml" ]; then
    : "${ARCHIPEL_URL:?set ARCHIPEL_URL (https://your.host) for the first start}"
    : "${ARCHIPEL_NAME:?set ARCHIPEL_NAME (the chamber's name) for the first start}"
    archipel init --data-dir "$DATA_DIR" --url "$ARCHIPEL_URL" --name "$ARCHIPEL_NAME" \
        --chamber-username "${ARCHIPEL_CHAMBER_USERNAME:-chamber}" \
        ${ARCHIPEL_DATABASE_URL:+--database-url "$ARCHIPEL_DATABASE_URL"} \
        ${ARCHIPEL_ADMIN:+--admin "$ARCHIPEL_ADMIN"} \
        ${ARCHIPEL_ADMIN_PASSWORD:+--admin-password "$ARCHIPEL_ADMIN_PASSWORD"}
fi
case "${1:-serve}" in
    serve)
        if [ "$#" -gt 0 ]; then shift; fi
        exec archipel serve --data-dir "$DATA_DIR" --host 0.0.0.0 --port "${PORT:-8000}" "$@"
        ;;
    worker)
        shift
        exec archipel worker --data-dir "$DATA_DIR" "$@"
        ;;
    *)
        cmd="$1"
        shift
        exec archipel "$cmd" --data-dir "$DATA_DIR" "$@"
        ;;
esac
