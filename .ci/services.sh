#!/usr/bin/env bash
# Start throwaway PostgreSQL and Redis servers on 127.0.0.1 for the scale-out tests, and export
# their URLs. Source it (". .ci/services.sh") so the exports reach the caller; running it prints
# the export lines instead. Idempotent: a server already answering on its port is left alone, and
# packages already installed are not installed again.
#
#   LMBRIDGE_TEST_POSTGRES_URL  postgresql://postgres@127.0.0.1:55432/lmbridge
#   LMBRIDGE_TEST_REDIS_URL     redis://127.0.0.1:56379/0
#
# When a server cannot be installed or started, its variable stays unset: the tests that need it
# skip with the reason, or fail when LMBRIDGE_REQUIRE_SERVERS=1.
# Data lives in $LMBRIDGE_SERVICES_DIR (default /tmp/lmbridge-services); nothing is persisted
# (Redis runs with --save '' --appendonly no). Stop them with: .ci/services.sh stop

_lmb_services() {
    local dir="${LMBRIDGE_SERVICES_DIR:-/tmp/lmbridge-services}"
    local pg_port="${LMBRIDGE_PG_PORT:-55432}" redis_port="${LMBRIDGE_REDIS_PORT:-56379}"
    local pgbin="" run_as=()

    _lmb_pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

    if [ "${1:-}" = "stop" ]; then
        pgbin="$(_lmb_pgbin)"
        if [ -n "$pgbin" ] && [ -d "$dir/pg" ]; then
            if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi
            "${run_as[@]}" "$pgbin/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
        fi
        command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1
        return 0
    fi

    # 1. Install what is missing (Debian packages; needs root).
    if [ -z "$(_lmb_pgbin)" ] || ! command -v redis-server >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "services: installing postgresql and redis-server (Debian packages)" >&2
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server; } \
                >"${TMPDIR:-/tmp}/lmbridge-services-apt.log" 2>&1 \
                || echo "services: apt-get failed, see ${TMPDIR:-/tmp}/lmbridge-services-apt.log" >&2
        else
            echo "services: postgresql/redis-server missing and cannot be installed (not root or no apt-get)" >&2
        fi
    fi
    mkdir -p "$dir"
    chmod 755 "$dir"

    # 2. PostgreSQL: a private cluster with trust auth on 127.0.0.1 only.
    pgbin="$(_lmb_pgbin)"
    if [ -n "$pgbin" ]; then
        if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); chown postgres "$dir"; fi
        if ! "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
            if [ ! -f "$dir/pg/PG_VERSION" ]; then
                rm -rf "$dir/pg"
                "${run_as[@]}" "$pgbin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 >/dev/null
            fi
            "${run_as[@]}" "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 30 \
                -o "-h 127.0.0.1 -p $pg_port -k $dir -c fsync=off -c synchronous_commit=off -c max_connections=200" \
                start >/dev/null || echo "services: postgres did not start, see $dir/pg.log" >&2
        fi
        if "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
            "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc \
                "SELECT 1 FROM pg_database WHERE datname = 'lmbridge'" | grep -q 1 \
                || "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres lmbridge
            export LMBRIDGE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$pg_port/lmbridge"
        fi
    fi

    # 3. Redis: no persistence, loopback only.
    if command -v redis-server >/dev/null; then
        if ! redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
            redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
                --daemonize yes --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
            for _ in $(seq 50); do
                redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
                sleep 0.1
            done
        fi
        if redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
            export LMBRIDGE_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
        else
            echo "services: redis did not start, see $dir/redis.log" >&2
        fi
    fi
    return 0
}

_lmb_services "$@"
unset -f _lmb_services _lmb_pgbin
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" != "stop" ]; then
    [ -n "${LMBRIDGE_TEST_POSTGRES_URL:-}" ] && echo "export LMBRIDGE_TEST_POSTGRES_URL=$LMBRIDGE_TEST_POSTGRES_URL"
    [ -n "${LMBRIDGE_TEST_REDIS_URL:-}" ] && echo "export LMBRIDGE_TEST_REDIS_URL=$LMBRIDGE_TEST_REDIS_URL"
fi
true
