#!/bin/sh
# Container entry point. First start: initialise the chamber from ARCHIPEL_* variables.
# Then run the given command (serve | worker | backups | any archipel subcommand) on the data dir.
set -eu
DATA_DIR="${ARCHIPEL_DATA_DIR:-/data}"
if [ ! -f "$DATA_DIR/archipel.toml" ]; then
    : "${ARCHIPEL_URL:?set ARCHIPEL_URL (https://your.host) for the first start}"
    : "${ARCHIPEL_NAME:?set ARCHIPEL_NAME (the chamber's name) for the first start}"
    # A generated password goes to a 0600 file in the data volume, never to the logs.
    password_file=""
    if [ -n "${ARCHIPEL_ADMIN:-}" ] && [ -z "${ARCHIPEL_ADMIN_PASSWORD:-}" ]; then
        password_file="$DATA_DIR/admin-password.txt"
    fi
    archipel init --data-dir "$DATA_DIR" --url "$ARCHIPEL_URL" --name "$ARCHIPEL_NAME" \
        --chamber-username "${ARCHIPEL_CHAMBER_USERNAME:-chamber}" \
        ${ARCHIPEL_DATABASE_URL:+--database-url "$ARCHIPEL_DATABASE_URL"} \
        ${ARCHIPEL_ADMIN:+--admin "$ARCHIPEL_ADMIN"} \
        ${ARCHIPEL_ADMIN_PASSWORD:+--admin-password "$ARCHIPEL_ADMIN_PASSWORD"} \
        ${password_file:+--admin-password-file "$password_file"}
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
    backups)
        # The compose `backup` service: a backup now and then every interval, into the
        # directory given (a volume of its own), keeping the ARCHIPEL_BACKUP_KEEP newest.
        out="${2:-/backups}"
        interval="${ARCHIPEL_BACKUP_INTERVAL_SECONDS:-86400}"
        trap 'exit 0' TERM INT
        while :; do
            archipel backup --data-dir "$DATA_DIR" "$out" --keep "${ARCHIPEL_BACKUP_KEEP:-14}" \
                || echo "backup failed: next attempt in $interval s" >&2
            sleep "$interval" &
            wait $! || true
        done
        ;;
    *)
        cmd="$1"
        shift
        exec archipel "$cmd" --data-dir "$DATA_DIR" "$@"
        ;;
esac
