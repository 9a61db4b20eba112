#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL 15 server for tests, owned by one
# directory and reachable only on 127.0.0.1 (trust authentication: never
# point this at a shared machine's data). Installs nothing.
#
#   eval "$(scripts/postgres.sh start "$DIR")" && export PG_DSN
#   go test ./store/postgres
#   scripts/postgres.sh stop "$DIR"
#
# start initdbs DIR/data if needed, starts the server (on $PGPORT when set,
# else on a free port) and prints PG_DSN=… on stdout; everything else goes to
# stderr or DIR/*.log. start on a running server only prints its PG_DSN
# again; stop on a stopped one does nothing. As root, the server runs as the
# postgres user (initdb refuses root), so DIR is handed to postgres.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

die() { echo "postgres.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
action=$1
dir=$2

if [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PGBIN/pg_ctl" ]; then
	echo "postgres.sh: PostgreSQL 15 not found in $PGBIN; install it with:" >&2
	echo "  apt-get update && apt-get install -y postgresql-15" >&2
	exit 1
fi

# pg_ctl hands the server options to /bin/sh, and the socket path has a
# kernel limit of 107 bytes: keep DIR plain and short.
case $dir in
*[!A-Za-z0-9._/+-]*) die "DIR must contain only letters, digits and ._/+- (got '$dir')" ;;
esac

# as_owner runs a command as the user who owns the cluster.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# running prints the port of the server on DIR/data and succeeds, or fails
# if no server is running there.
running() {
	[ -f "$dir/data/postmaster.pid" ] || return 1
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 1
	sed -n 4p "$dir/data/postmaster.pid"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	if command -v python3 >/dev/null 2>&1 &&
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null; then
		return
	fi
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 40000))
		# A refused connection means the port is free.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found on 127.0.0.1"
}

dsn() { echo "PG_DSN=postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"; }

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local port
	if port=$(running); then
		dsn "$port"
		return
	fi

	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
		as_owner test -w "$dir" -a -x "$dir" ||
			die "user postgres cannot write $dir (is a parent directory private?)"
	fi
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		# --no-sync: a throwaway cluster need not fsync its template files;
		# the server itself runs with fsync=on, so commits cost what they would.
		as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
			>"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
	fi

	# A port found free may be taken before the server binds it: try again
	# with another one, unless the caller chose it.
	local attempts=3
	[ -n "${PGPORT:-}" ] && attempts=1
	for _ in $(seq "$attempts"); do
		port=${PGPORT:-$(free_port)}
		[ $((${#dir} + 20)) -lt 108 ] || die "DIR is too long for a unix socket path: $dir"
		if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" >/dev/null; then
			dsn "$port"
			return
		fi
	done
	die "server did not start; see $dir/postgres.log"
}

stop() {
	if running >/dev/null; then
		as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	fi
}

case $action in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
