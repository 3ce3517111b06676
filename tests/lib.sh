# tests/lib.sh: TAP output and a real corral stack for the shell integration tests.
# Sourced by tests/*.test (bash). Needs: root, PostgreSQL, nginx, openssl, curl, jq.
#
# TAP:    ok DESC CMD...; is GOT WANT DESC; like GOT REGEX DESC; pass/fail DESC; skip DESC WHY;
#         diag MSG; skip_all WHY; bail_out WHY; done_testing
# Stack:  stack_start [--conf-extra k=v]...; stack_stop (an EXIT trap); stack_up_again;
#         stack_pid NAME; stack_signal NAME SIG; stack_wait_gone NAME [S]; sql QUERY
# HTTP:   signed_request METHOD PATH [BODY] [curl args...]; raw_request (the same, unsigned)
#         -> $HTTP_STATUS, $HTTP_BODY, $HTTP_HEADERS (a file); header NAME; body_json FILTER
#         SIGN_TS, SIGN_PUBLIC, SIGN_SECRET, SIGN_SIGNATURE override what signed_request sends.

set -u -o pipefail

: "${abs_top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}"
if [ -z "${abs_top_builddir:-}" ]; then
	if [ -x "$abs_top_srcdir/build/corral-fcgi" ]; then
		abs_top_builddir=$abs_top_srcdir/build
	else
		abs_top_builddir=$abs_top_srcdir
	fi
fi

# --- TAP ---------------------------------------------------------------------------------

_tap_n=0
_tap_failed=0

_tap_line() {
	_tap_n=$((_tap_n + 1))
	printf '%s %d - %s\n' "$1" "$_tap_n" "$2"
}
pass() { _tap_line ok "$1"; }
fail() {
	_tap_failed=$((_tap_failed + 1))
	_tap_line "not ok" "$1"
}
diag() {
	local line
	while IFS= read -r line; do
		printf '# %s\n' "$line"
	done <<<"$*"
}
# ok DESC CMD...: passes when CMD exits 0.
ok() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; diag "command failed: $*"; return 1; fi
}
# is GOT WANT DESC: passes when the two strings are equal.
is() {
	if [ "$1" = "$2" ]; then
		pass "$3"
	else
		fail "$3"
		diag "got:  '$1'"
		diag "want: '$2'"
		return 1
	fi
}
# like GOT REGEX DESC: passes when GOT matches the extended regular expression.
like() {
	if [[ "$1" =~ $2 ]]; then
		pass "$3"
	else
		fail "$3"
		diag "got:  '$1'"
		diag "want: /$2/"
		return 1
	fi
}
skip() { _tap_line ok "$1 # SKIP $2"; }
skip_all() {
	printf '1..0 # SKIP %s\n' "$1"
	exit 0
}
bail_out() {
	printf 'Bail out! %s\n' "$1"
	exit 1
}
# Prints the plan. The exit status stays 0: failures are in the "not ok" lines, which the
# TAP driver counts one by one.
done_testing() {
	printf '1..%d\n' "$_tap_n"
	if [ "$_tap_failed" -gt 0 ]; then
		diag "failed $_tap_failed of $_tap_n"
	fi
	exit 0
}

need_root_and_tools() {
	[ "$(id -u)" -eq 0 ] || skip_all "needs root (the stack runs a sandboxing worker)"
	local t
	for t in curl jq openssl runuser setsid; do
		command -v "$t" >/dev/null || skip_all "$t is not installed"
	done
	[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || skip_all "nginx is not installed"
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || skip_all "PostgreSQL server is not installed"
	for t in corral-admin corral-fcgi corral-worker; do
		[ -x "$abs_top_builddir/$t" ] || bail_out "$abs_top_builddir/$t is not built"
	done
}

# --- the stack -----------------------------------------------------------------------------

STACK_DIR=""
STACK_ARGS=()
TEST_TMP=""

_free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	return 1
}

# Starts a stack of its own under a fresh directory in /tmp, with short leases and
# heartbeats; extra arguments go to scripts/stack-up (e.g. --conf-extra key=value).
stack_start() {
	need_root_and_tools
	TEST_TMP=$(mktemp -d /tmp/corral-test-tmp.XXXXXX)
	STACK_DIR=$(mktemp -d /tmp/corral-test.XXXXXX)
	chmod 0755 "$STACK_DIR"
	trap stack_stop EXIT
	trap 'exit 143' TERM INT HUP
	local port
	port=$(_free_port) || bail_out "no free port"
	STACK_ARGS=(--dir "$STACK_DIR" --port "$port" --build "$abs_top_builddir" --wait 40
		--conf-extra lease=3 --conf-extra heartbeat=1 --conf-extra heartbeat_fresh=3
		--conf-extra poll=1 --conf-extra sync_wait=30 --conf-extra worker_slots=2 "$@")
	if ! "$abs_top_srcdir/scripts/stack-up" "${STACK_ARGS[@]}" >"$TEST_TMP/stack-up.log" 2>&1; then
		diag "$(cat "$TEST_TMP/stack-up.log")"
		bail_out "scripts/stack-up failed"
	fi
	# shellcheck source=/dev/null
	. "$STACK_DIR/stack.env"
	[ -n "${CORRAL_URL:-}" ] || bail_out "stack.env has no CORRAL_URL"
}

# Runs scripts/stack-up again on the same stack: it starts whatever is not running.
stack_up_again() {
	"$abs_top_srcdir/scripts/stack-up" "${STACK_ARGS[@]}" >>"$TEST_TMP/stack-up.log" 2>&1
}

# Stops and deletes the stack; on failures first shows the ends of its logs.
stack_stop() {
	local f
	[ -n "$STACK_DIR" ] || return 0
	if [ "$_tap_failed" -gt 0 ] && [ -d "$STACK_DIR/log" ]; then
		for f in worker fcgi postgresql nginx.error; do
			[ -f "$STACK_DIR/log/$f.log" ] || continue
			printf -- '--- the end of %s.log\n' "$f" >&2
			tail -n 40 "$STACK_DIR/log/$f.log" >&2
		done
	fi
	"$abs_top_srcdir/scripts/stack-down" --dir "$STACK_DIR" --purge >/dev/null 2>&1 ||
		printf 'stack-down failed for %s\n' "$STACK_DIR" >&2
	rm -rf "$STACK_DIR"
	[ -z "$TEST_TMP" ] || rm -rf "$TEST_TMP"
	STACK_DIR=""
}

# The pid of a stack daemon (worker, fcgi, nginx) from its pid file.
stack_pid() { cat "$STACK_DIR/run/$1.pid" 2>/dev/null; }
stack_signal() {
	local pid
	pid=$(stack_pid "$1") || return 1
	kill "-$2" "$pid"
}
# Is PID a live (not zombie) process?
pid_alive() {
	local state
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
# Waits until PID is gone, at most S seconds (default 15).
pid_wait_gone() {
	local deadline=$((SECONDS + ${2:-15}))
	while pid_alive "$1"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# One query on the stack's database; prints unaligned tuples.
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# --- HTTP ------------------------------------------------------------------------------------

HTTP_STATUS=""
HTTP_BODY=""
HTTP_HEADERS=""

# _request METHOD PATH BODY SIGN [curl args...]
_request() {
	local method=$1 path=$2 body=$3 sign=$4 ts sig
	shift 4
	local args=(-s --noproxy '*' --max-time 60 --cacert "$CORRAL_CA" -X "$method"
		-D "$TEST_TMP/headers" -o "$TEST_TMP/body" -w '%{http_code}')
	printf '%s' "$body" >"$TEST_TMP/request-body"
	if [ "$sign" = 1 ]; then
		ts=${SIGN_TS:-$(date +%s)}
		{ printf '%s:%s:%s:' "$ts" "$method" "${path%%\?*}"; cat "$TEST_TMP/request-body"; } >"$TEST_TMP/message"
		sig=$(openssl dgst -sha256 -hmac "${SIGN_SECRET:-$CORRAL_SECRET_KEY}" <"$TEST_TMP/message" | awk '{ print $NF }')
		args+=(-H "Authorization: Bearer ${SIGN_PUBLIC:-$CORRAL_PUBLIC_KEY}"
			-H "X-Timestamp: $ts" -H "X-Signature: ${SIGN_SIGNATURE:-$sig}")
	fi
	if [ -n "$body" ] || [ "$method" = POST ] || [ "$method" = PUT ]; then
		args+=(-H "Content-Type: application/json" --data-binary "@$TEST_TMP/request-body")
	fi
	rm -f "$TEST_TMP/headers" "$TEST_TMP/body"
	HTTP_STATUS=$(curl "${args[@]}" "$@" --url "$CORRAL_URL$path") || HTTP_STATUS=${HTTP_STATUS:-000}
	HTTP_BODY=$(cat "$TEST_TMP/body" 2>/dev/null || true)
	HTTP_HEADERS=$TEST_TMP/headers
	[ -f "$HTTP_HEADERS" ] || : >"$HTTP_HEADERS"
}
signed_request() { _request "$1" "$2" "${3-}" 1 "${@:4}"; }
raw_request() { _request "$1" "$2" "${3-}" 0 "${@:4}"; }

# The value of response header NAME (case-insensitive), without the line's CR.
header() {
	awk -v n="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" -F': ' '
		{ sub(/\r$/, ""); k = tolower($1) }
		k == n { sub(/^[^:]*: */, ""); print; exit }' "$HTTP_HEADERS"
}
# jq -r FILTER on the last answer's body (empty when the body is not JSON).
body_json() { printf '%s' "$HTTP_BODY" | jq -r "$1" 2>/dev/null; }
# A JSON string literal for TEXT (for building request bodies).
json_str() { jq -Rn --arg s "$1" '$s'; }
