/* handlers: database access (prepared statements, reconnect and retry once), the sync
 * wait for a job's answer (handed over by the supervisor, which LISTENs for this host:
 * fcgi_app/main.c), and one function per endpoint. */
#include "handlers.h"

#include <errno.h>
#include <limits.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "db.h"
#include "job.h"
#include "router.h"
#include "util.h"

/* Return codes of app_exec. */
#define APP_SQL_ERROR	(-1)	/* the statement failed: 500 */
#define APP_DB_DOWN	(-2)	/* no connection even after one reset: 503 */

/* Timestamps as ISO 8601 UTC with milliseconds. */
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define KEY_COLUMNS \
	"SELECT id, public_key, encode(secret_sealed, 'hex'), tier, rate_per_minute, burst, " \
	"concurrency_limit, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), " \
	"suspended, coalesce(expires_at <= now(), false) FROM api_keys "

/* Columns of the job_get statement, in order. */
enum {
	JC_ID, JC_STATUS, JC_LANGUAGE, JC_NETWORK, JC_CREATED, JC_STARTED, JC_COMPLETED,
	JC_TOTAL_MS, JC_HAS_RESULT, JC_STDOUT, JC_STDERR, JC_COMPILE, JC_EXIT_CODE,
	JC_EXIT_SIGNAL, JC_WALL_MS, JC_CPU_MS, JC_MEMORY_KB, JC_STDOUT_TRUNC, JC_STDERR_TRUNC,
	JC_ERROR, JC_ATTEMPT, JC_WORKER, JC_CACHE, JC_COMPILE_MS, JC_ARTIFACTS, JC_ARTIFACTS_NOTE,
};

struct app_stmt {
	const char *name;
	const char *sql;
};

static const struct app_stmt app_stmts[] = {
	{ "key_by_public", KEY_COLUMNS "WHERE public_key = $1" },
	{ "key_by_hash", KEY_COLUMNS "WHERE secret_hash = decode($1, 'hex')" },
	/* rate-limit token + submit in one round trip (sql/006): allowed, remaining, reset_at,
	 * retry_after, job_id, replayed, refused */
	{ "enqueue",
	  "CALL corral_enqueue($1::bigint, $2::integer, $3::integer, $4::text, $5::text, $6::text, "
	  "$7::jsonb, $8::integer, $9::integer, $10::text)" },
	{ "take",
	  "SELECT allowed, remaining, reset_at, retry_after FROM corral_take($1::bigint, $2::integer, "
	  "$3::integer)" },
	{ "job_get",
	  "SELECT j.id, j.status, j.language, coalesce(j.request->>'network_mode', 'zerotrust'), "
	  ISO("j.created_at") ", " ISO("j.started_at") ", " ISO("j.completed_at") ", "
	  "round(extract(epoch FROM j.completed_at - j.created_at) * 1000)::bigint, "
	  "r.job_id IS NOT NULL, r.stdout, r.stderr, r.compile_output, r.exit_code, r.exit_signal, "
	  "r.wall_ms, r.cpu_ms, r.memory_kb, r.stdout_truncated, r.stderr_truncated, r.error, "
	  "coalesce(r.attempt, j.attempt), coalesce(r.worker_id, j.worker_id), "
	  "r.timings->>'cache', r.timings->>'compile_ms', r.artifacts, r.artifacts_note "
	  "FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
	  "WHERE j.id = $1::uuid AND j.key_id = $2::bigint" },
	/* toolchain versions the worker's version prober measured at its start (sql/002) */
	{ "lang_versions", "SELECT id, version FROM languages WHERE version IS NOT NULL" },
	{ "jobs_list",
	  "SELECT id, status, language, coalesce(request->>'network_mode', 'zerotrust'), "
	  ISO("created_at") " FROM jobs WHERE key_id = $1::bigint "
	  "AND status IN ('pending', 'running') ORDER BY created_at LIMIT 1000" },
	/* Cancels one of the caller's jobs in one statement: records the signature (when
	 * signed), asks a running job's worker to stop, finishes a pending job at once with
	 * a results row and tells its waiter. Returns no row when the job is not the caller's. */
	{ "job_cancel",
	  "WITH seen AS ("
	  "  INSERT INTO seen_requests (key_id, signature) SELECT $2::bigint, $3::text"
	  "   WHERE $3::text IS NOT NULL ON CONFLICT DO NOTHING RETURNING 1),"
	  " j AS (SELECT id, status FROM jobs WHERE id = $1::uuid AND key_id = $2::bigint FOR UPDATE),"
	  " upd AS ("
	  "  UPDATE jobs SET cancel_requested = true,"
	  "    status = CASE WHEN j.status = 'pending' THEN 'cancelled' ELSE jobs.status END,"
	  "    completed_at = CASE WHEN j.status = 'pending' THEN clock_timestamp() ELSE jobs.completed_at END"
	  "   FROM j WHERE jobs.id = j.id AND j.status IN ('pending', 'running')"
	  "    AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM seen))"
	  "  RETURNING jobs.id, j.status AS old_status, jobs.waiter),"
	  " res AS ("
	  "  INSERT INTO results (job_id, status, error, exit_code)"
	  "  SELECT id, 'cancelled', 'cancelled', -1 FROM upd WHERE old_status = 'pending'"
	  "  ON CONFLICT (job_id) DO NOTHING RETURNING job_id)"
	  " SELECT j.status, $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM seen),"
	  "  (SELECT count(*) FROM (SELECT corral_notify_done(upd.waiter, res.job_id)"
	  "   FROM res JOIN upd ON upd.id = res.job_id) n)"
	  " FROM j" },
	{ "seen",
	  "INSERT INTO seen_requests (key_id, signature) VALUES ($1::bigint, $2::text) "
	  "ON CONFLICT DO NOTHING RETURNING 1" },
	{ "health",
	  "SELECT count(*) FROM workers WHERE stopped_at IS NULL "
	  "AND heartbeat_at > now() - make_interval(secs => $1::integer)" },
};

#define APP_NSTMTS	(sizeof app_stmts / sizeof app_stmts[0])

static int h_rate_limit(struct app *a, const struct auth_result *au, struct http_resp *resp);
static int h_rate_headers(const struct auth_result *au, const PGresult *r, struct http_resp *resp);
static void h_backoff(uint64_t ms);

/* Prepares every statement on a fresh connection (it LISTENs to nothing: the supervisor
 * hands this process its answers). */
static int app_setup(struct app *a, char **cause)
{
	a->ready = false;
	if (db_exec(a->db, "DEALLOCATE ALL", cause) < 0)
		return -1;
	for (size_t i = 0; i < APP_NSTMTS; i++) {
		if (db_prepare(a->db, app_stmts[i].name, app_stmts[i].sql, cause) < 0)
			return -1;
	}
	a->ready = true;
	return 0;
}

/* Makes sure there is a working, prepared connection: connects the first time, resets a
 * broken one (once per call). Returns 0, or APP_DB_DOWN / APP_SQL_ERROR with *cause. */
static int app_connect(struct app *a, char **cause)
{
	if (a->db != NULL && PQstatus(a->db) == CONNECTION_OK && a->ready)
		return 0;
	if (a->db == NULL) {
		a->db = db_connect(a->conf->db, "corral-fcgi", cause);
		if (a->db == NULL)
			return APP_DB_DOWN;
	} else if (PQstatus(a->db) != CONNECTION_OK) {
		log_warn("database connection lost; reconnecting");
		PQreset(a->db);
		if (PQstatus(a->db) != CONNECTION_OK) {
			util_fail(cause, "database: %s", PQerrorMessage(a->db));
			return APP_DB_DOWN;
		}
		log_info("database connection re-established");
	}
	if (app_setup(a, cause) < 0)
		return PQstatus(a->db) == CONNECTION_OK ? APP_SQL_ERROR : APP_DB_DOWN;
	return 0;
}

/* Runs a prepared statement; when the connection broke, resets it, re-prepares and runs
 * the statement once more. Returns 0 with *out (caller PQclear's), or APP_SQL_ERROR /
 * APP_DB_DOWN with *cause (caller frees). */
static int app_exec(struct app *a, const char *stmt, int n, const char *const *vals,
    PGresult **out, char **cause)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *r;
		int rc = app_connect(a, cause);
		if (rc < 0)
			return rc;
		r = PQexecPrepared(a->db, stmt, n, vals, NULL, NULL, 0);
		if (r != NULL && (PQresultStatus(r) == PGRES_TUPLES_OK ||
		    PQresultStatus(r) == PGRES_COMMAND_OK)) {
			*out = r;
			return 0;
		}
		if (PQstatus(a->db) == CONNECTION_OK) {
			db_check(r, PGRES_TUPLES_OK, stmt, cause);
			return APP_SQL_ERROR;
		}
		PQclear(r);
	}
	util_fail(cause, "%s: the database connection broke twice", stmt);
	return APP_DB_DOWN;
}

/* Reads and forgets what the supervisor wrote to this process that no request waits for
 * (answers to a wait that ended on its timeout). */
static void app_drain(struct app *a)
{
	char junk[512];
	if (a->wake_fd < 0)
		return;
	while (read(a->wake_fd, junk, sizeof junk) > 0)
		;
	a->wake_len = 0;
}

/* Initialises the app and makes a first connection attempt. */
int app_init(struct app *a, const struct conf *c, const struct lang_table *t,
    const unsigned char *master, const char *waiter, int wake_fd, char **cause)
{
	char *why = NULL;
	int rc;
	memset(a, 0, sizeof *a);
	a->conf = c;
	a->langs = t;
	a->master = master;
	a->waiter = waiter;
	a->wake_fd = wake_fd;
	/* Not fatal either way: the schema may be applied after the app starts, and the
	 * database may come back; every request tries again. */
	rc = app_connect(a, &why);
	if (rc < 0) {
		log_warn("%s (retrying on each request)", why);
		free(why);
	}
	return 0;
}

/* Closes the connection. */
void app_free(struct app *a)
{
	if (a->db != NULL)
		PQfinish(a->db);
	memset(a, 0, sizeof *a);
}

/* Sets the answer for a failed statement and logs its cause (which it frees). */
static void h_db_fail(struct http_resp *resp, int rc, char *cause)
{
	log_error("%s", cause != NULL ? cause : "database error");
	free(cause);
	if (rc == APP_DB_DOWN)
		http_resp_error(resp, 503, "Service unavailable", "DATABASE_UNAVAILABLE", NULL,
		    "The database cannot be reached; retry in a few seconds.");
	else
		http_resp_error(resp, 500, "Internal error", "INTERNAL_ERROR", NULL,
		    "The server failed to process the request; it has been logged.");
}

/* auth_lookup_fn over the key_by_public / key_by_hash statements. */
static int h_lookup_key(void *ctx, enum auth_by by, const char *value, struct auth_key *k,
    char **cause)
{
	struct app *a = ctx;
	const char *vals[1] = { value };
	PGresult *r = NULL;
	const char *hex;
	size_t hexlen;

	if (app_exec(a, by == AUTH_BY_PUBLIC_KEY ? "key_by_public" : "key_by_hash", 1, vals,
	    &r, cause) < 0)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	k->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	k->public_key = xstrdup(PQgetvalue(r, 0, 1));
	hex = PQgetvalue(r, 0, 2);
	hexlen = strlen(hex);
	k->sealed_len = hexlen / 2;
	k->sealed = xmalloc(k->sealed_len + 1);
	if (util_unhex(hex, k->sealed, k->sealed_len) < 0)
		k->sealed_len = 0;
	k->tier = xstrdup(PQgetvalue(r, 0, 3));
	k->rate_per_minute = atoi(PQgetvalue(r, 0, 4));
	k->burst = atoi(PQgetvalue(r, 0, 5));
	k->concurrency_limit = atoi(PQgetvalue(r, 0, 6));
	k->expires_at = PQgetisnull(r, 0, 7) ? NULL : xstrdup(PQgetvalue(r, 0, 7));
	k->suspended = PQgetvalue(r, 0, 8)[0] == 't';
	k->expired = PQgetvalue(r, 0, 9)[0] == 't';
	PQclear(r);
	return 1;
}

/* Adds a text column as a string, or null. */
static void h_add_text(json_object *o, const char *key, const PGresult *r, int col)
{
	json_object_object_add(o, key, PQgetisnull(r, 0, col) ? NULL :
	    json_object_new_string(PQgetvalue(r, 0, col)));
}

/* Adds an integer column as a number, or null. */
static void h_add_int(json_object *o, const char *key, const PGresult *r, int col)
{
	json_object_object_add(o, key, PQgetisnull(r, 0, col) ? NULL :
	    json_object_new_int64(strtoll(PQgetvalue(r, 0, col), NULL, 10)));
}

/* Adds a double precision column of milliseconds as a rounded integer, or null. */
static void h_add_ms(json_object *o, const char *key, const PGresult *r, int col)
{
	double v;
	if (PQgetisnull(r, 0, col)) {
		json_object_object_add(o, key, NULL);
		return;
	}
	/* Rounded by hand: libm is not linked. */
	v = strtod(PQgetvalue(r, 0, col), NULL);
	json_object_object_add(o, key, json_object_new_int64((long long)(v < 0 ? v - 0.5 : v + 0.5)));
}

/* Adds a boolean column (false when null). */
static void h_add_bool(json_object *o, const char *key, const PGresult *r, int col)
{
	json_object_object_add(o, key,
	    json_object_new_boolean(!PQgetisnull(r, 0, col) && PQgetvalue(r, 0, col)[0] == 't'));
}

/* Maps a fine job status (section 7) to the unsandbox word; static string. */
static const char *h_unsandbox_status(const char *s)
{
	if (strcmp(s, "pending") == 0 || strcmp(s, "running") == 0 ||
	    strcmp(s, "timeout") == 0 || strcmp(s, "cancelled") == 0)
		return s;
	if (strcmp(s, "internal_error") == 0)
		return "failed";
	return "completed";
}

/* Tells whether a fine status is final. */
static bool h_finished(const char *s)
{
	return strcmp(s, "pending") != 0 && strcmp(s, "running") != 0;
}

/* Returns the artifacts of one job_get row ([{filename, content_base64, size}], the worker's
 * JSON as stored), or an empty array. */
static json_object *h_artifacts(const PGresult *r)
{
	json_object *a = PQgetisnull(r, 0, JC_ARTIFACTS) ? NULL :
	    json_tokener_parse(PQgetvalue(r, 0, JC_ARTIFACTS));
	if (a != NULL && json_object_is_type(a, json_type_array))
		return a;
	json_object_put(a);
	return json_object_new_array();
}

/* Adds the /execute result fields of one job_get row to o. */
static void h_result_fields(json_object *o, const PGresult *r)
{
	const char *st = PQgetvalue(r, 0, JC_STATUS);
	bool ok = strcmp(st, "completed") == 0 && !PQgetisnull(r, 0, JC_EXIT_CODE) &&
	    atoi(PQgetvalue(r, 0, JC_EXIT_CODE)) == 0;

	json_object_object_add(o, "success", json_object_new_boolean(ok));
	json_object_object_add(o, "stdout", json_object_new_string(PQgetvalue(r, 0, JC_STDOUT)));
	json_object_object_add(o, "stderr", json_object_new_string(PQgetvalue(r, 0, JC_STDERR)));
	h_add_text(o, "error", r, JC_ERROR);
	h_add_int(o, "exit_code", r, JC_EXIT_CODE);
	h_add_text(o, "language", r, JC_LANGUAGE);
	h_add_text(o, "job_id", r, JC_ID);
	json_object_object_add(o, "status", json_object_new_string(h_unsandbox_status(st)));
	json_object_object_add(o, "outcome", json_object_new_string(st));
	json_object_object_add(o, "artifacts", h_artifacts(r));
	if (!PQgetisnull(r, 0, JC_ARTIFACTS_NOTE))
		h_add_text(o, "artifacts_note", r, JC_ARTIFACTS_NOTE);
	json_object_object_add(o, "execution_mode", json_object_new_string("pooled"));
	h_add_text(o, "network_mode", r, JC_NETWORK);
	h_add_int(o, "total_time_ms", r, JC_TOTAL_MS);
	h_add_ms(o, "execution_time_ms", r, JC_WALL_MS);
	json_object_object_add(o, "compile_output",
	    json_object_new_string(PQgetvalue(r, 0, JC_COMPILE)));
	h_add_int(o, "exit_signal", r, JC_EXIT_SIGNAL);
	h_add_ms(o, "cpu_time_ms", r, JC_CPU_MS);
	h_add_int(o, "memory_used_kb", r, JC_MEMORY_KB);
	h_add_ms(o, "wall_time_ms", r, JC_WALL_MS);
	h_add_bool(o, "stdout_truncated", r, JC_STDOUT_TRUNC);
	h_add_bool(o, "stderr_truncated", r, JC_STDERR_TRUNC);
	h_add_int(o, "attempt", r, JC_ATTEMPT);
	h_add_text(o, "worker", r, JC_WORKER);
	h_add_text(o, "compile_cache", r, JC_CACHE);	/* "hit", "miss" or null (interpreted) */
	h_add_ms(o, "compile_time_ms", r, JC_COMPILE_MS);
}

/* Reads one of the caller's jobs; returns 1 with *out, 0 when it is not theirs or does
 * not exist, or an APP_* error with *cause. */
static int h_job_fetch(struct app *a, const char *job_id, long long key_id, PGresult **out,
    char **cause)
{
	char key[32];
	const char *vals[2] = { job_id, key };
	int rc;
	snprintf(key, sizeof key, "%lld", key_id);
	rc = app_exec(a, "job_get", 2, vals, out, cause);
	if (rc < 0)
		return rc;
	if (PQntuples(*out) == 0) {
		PQclear(*out);
		*out = NULL;
		return 0;
	}
	return 1;
}

/* Waits at most ms milliseconds for the supervisor to hand over the answer to job_id
 * (a line "<job id>") or to say its connection was re-established ("R": NOTIFYs may have
 * been lost). Returns 1 for the job's line, 2 for "R", 0 on timeout, -1 without a wake-up
 * pipe (the caller then looks at the job itself). */
static int h_wait_done(struct app *a, const char *job_id, int ms)
{
	uint64_t deadline = util_mono_ms() + (uint64_t)ms;
	if (a->wake_fd < 0)
		return -1;
	for (;;) {
		char *nl;
		uint64_t now;
		struct pollfd p;
		ssize_t r;

		/* Whole lines first: the supervisor writes each in one write() of < PIPE_BUF. */
		while ((nl = memchr(a->wake_buf, '\n', a->wake_len)) != NULL) {
			size_t line = (size_t)(nl - a->wake_buf);
			int hit = line == 1 && a->wake_buf[0] == 'R' ? 2 :
			    line == strlen(job_id) && memcmp(a->wake_buf, job_id, line) == 0 ? 1 : 0;
			a->wake_len -= line + 1;
			memmove(a->wake_buf, nl + 1, a->wake_len);
			if (hit != 0)
				return hit;
		}
		if (a->wake_len == sizeof a->wake_buf)
			a->wake_len = 0;	/* no line this long is ever written */
		now = util_mono_ms();
		if (now >= deadline)
			return 0;
		p.fd = a->wake_fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, (int)(deadline - now > INT_MAX ? INT_MAX : deadline - now)) < 0 &&
		    errno != EINTR)
			return -1;
		r = read(a->wake_fd, a->wake_buf + a->wake_len, sizeof a->wake_buf - a->wake_len);
		if (r > 0)
			a->wake_len += (size_t)r;
	}
}

/* Sets the answer for a job_parse failure. */
static void h_job_error(struct http_resp *resp, const struct job_error *e)
{
	const char *shrt = e->http == 413 ? "Payload too large" :
	    e->http == 400 ? "Invalid request" : http_reason(e->http);
	http_resp_error(resp, e->http > 0 ? e->http : 400, shrt,
	    e->code[0] != '\0' ? e->code : "INVALID_REQUEST", e->field, "%s", e->msg);
}

/* Parses the body as one JSON object; returns it (caller puts) or NULL with resp set. */
static json_object *h_parse_object(const struct http_req *req, struct http_resp *resp)
{
	json_tokener *tok;
	json_object *o;
	enum json_tokener_error e;
	size_t end;

	if (req->body_len == 0) {
		http_resp_error(resp, 400, "Invalid JSON", "INVALID_JSON", NULL,
		    "The request body is empty; send a JSON object.");
		return NULL;
	}
	if (req->body_len >= INT_MAX) {
		http_resp_error(resp, 413, "Payload too large", "PAYLOAD_TOO_LARGE", NULL,
		    "The request body is too large.");
		return NULL;
	}
	tok = json_tokener_new_ex(64);
	if (tok == NULL)
		die("out of memory");
	/* The length includes the terminating NUL so a bare number at the end completes. */
	o = json_tokener_parse_ex(tok, req->body, (int)req->body_len + 1);
	e = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (end < req->body_len && strchr(" \t\r\n", req->body[end]) != NULL)
		end++;
	if (o == NULL || e != json_tokener_success || end < req->body_len) {
		json_object_put(o);
		http_resp_error(resp, 400, "Invalid JSON", "INVALID_JSON", NULL,
		    "The request body is not valid JSON (%s).",
		    e != json_tokener_success ? json_tokener_error_desc(e) :
		    "unexpected data after the JSON value");
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		http_resp_error(resp, 400, "Invalid request", "INVALID_REQUEST", NULL,
		    "The request body must be a JSON object.");
		return NULL;
	}
	return o;
}

/* Makes the replay token of an unsigned submit: random, so that re-running corral_submit
 * after a dropped connection cannot enqueue the job twice. Caller frees. */
static char *h_nonce(void)
{
	unsigned char raw[16];
	char hex[33];
	if (RAND_bytes(raw, sizeof raw) != 1)
		die("no random bytes");
	util_hex(raw, sizeof raw, hex);
	return xasprintf("nonce:%s", hex);
}

/* Answers a finished job in the /execute shape. */
static void h_answer_result(struct http_resp *resp, const PGresult *r)
{
	json_object *o = json_object_new_object();
	h_result_fields(o, r);
	http_resp_json(resp, 200, o);
	json_object_put(o);
}

/* Answers 202 with job_id, status and message. */
static void h_answer_accepted(struct http_resp *resp, const char *job_id, const char *status,
    const char *message)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "job_id", json_object_new_string(job_id));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "message", json_object_new_string(message));
	http_resp_json(resp, 202, o);
	json_object_put(o);
}

/* Validates and enqueues the job of a request, taking its rate-limit token in the same
 * round trip (corral_enqueue; an invalid request takes its token with corral_take, as
 * every authenticated request does). waiter: jobs.waiter (this process's "<channel>
 * <tag>"), NULL when nobody waits. Returns 0 with job_id (37 bytes) and *replayed, or -1
 * with resp set. */
static int h_submit(struct app *a, const struct http_req *req, const struct auth_result *au,
    const char *waiter, char job_id[ROUTE_UUID_LEN + 1], bool *replayed, struct http_resp *resp)
{
	json_object *body, *norm;
	struct job job;
	struct job_error jerr;
	char key[32], rate[16], burst[16], attempts[16], conc[16], *nonce = NULL, *cause = NULL;
	const char *vals[10];
	PGresult *r = NULL;
	int rc;

	if ((body = h_parse_object(req, resp)) == NULL) {
		h_rate_limit(a, au, resp);	/* a 429 replaces the 400 */
		return -1;
	}
	job_init(&job);
	memset(&jerr, 0, sizeof jerr);
	if (job_parse(&job, body, a->conf, a->langs, &jerr) < 0) {
		json_object_put(body);
		h_job_error(resp, &jerr);
		h_rate_limit(a, au, resp);
		return -1;
	}
	json_object_put(body);
	norm = job_to_json(&job);
	if (au->signature == NULL)
		nonce = h_nonce();
	snprintf(key, sizeof key, "%lld", au->key.id);
	snprintf(rate, sizeof rate, "%d", au->key.rate_per_minute);
	snprintf(burst, sizeof burst, "%d", au->key.burst);
	snprintf(attempts, sizeof attempts, "%d", a->conf->max_attempts);
	snprintf(conc, sizeof conc, "%d", au->key.concurrency_limit);
	vals[0] = key;
	vals[1] = rate;
	vals[2] = burst;
	vals[3] = au->signature != NULL ? au->signature : nonce;
	vals[4] = "unsandbox";
	vals[5] = job.lang->id;
	vals[6] = json_object_to_json_string_ext(norm, JSON_C_TO_STRING_PLAIN);
	vals[7] = attempts;
	vals[8] = conc;
	vals[9] = waiter;
	rc = app_exec(a, "enqueue", 10, vals, &r, &cause);
	json_object_put(norm);
	job_free(&job);
	free(nonce);
	if (rc < 0) {
		h_db_fail(resp, rc, cause);
		return -1;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		h_db_fail(resp, APP_SQL_ERROR, xstrdup("enqueue: no row"));
		return -1;
	}
	if (h_rate_headers(au, r, resp) < 0) {
		PQclear(r);
		return -1;
	}
	if (PQgetvalue(r, 0, 6)[0] == 't') {
		PQclear(r);
		http_resp_error(resp, 429, "Too many running jobs", "CONCURRENCY_LIMIT", NULL,
		    "This key may have at most %d jobs pending or running at once; wait for one to finish.",
		    au->key.concurrency_limit);
		http_resp_header(resp, "Retry-After", "1");
		return -1;
	}
	if (PQgetisnull(r, 0, 4)) {
		PQclear(r);
		http_resp_error(resp, 409, "Duplicate request", "DUPLICATE_REQUEST", NULL,
		    "This signed request was already received and its job no longer exists.");
		return -1;
	}
	snprintf(job_id, ROUTE_UUID_LEN + 1, "%s", PQgetvalue(r, 0, 4));
	/* A replay of our own nonce can only be our retry after a reconnect. */
	*replayed = PQgetvalue(r, 0, 5)[0] == 't' && au->signature != NULL;
	PQclear(r);
	return 0;
}

/* POST /execute/async: validate, enqueue, answer 202 pending. */
static void h_execute_async(struct app *a, struct http_req *req, struct auth_result *au,
    struct http_resp *resp)
{
	char job_id[ROUTE_UUID_LEN + 1];
	bool replayed = false;
	if (h_submit(a, req, au, NULL, job_id, &replayed, resp) < 0)
		return;
	h_answer_accepted(resp, job_id, "pending", "Job submitted");
	http_resp_header(resp, "X-Job-Id", "%s", job_id);
	if (replayed)
		http_resp_header(resp, "X-Replayed", "true");
}

/* Reads the job and answers it when finished; when final, a job still going (or a
 * database that is down: the job is committed, so it is not lost) is answered 202
 * running. Returns 1 when resp holds the answer, 0 when the job is still going (resp
 * untouched, final false), -1 when resp holds an error. */
static int h_execute_answer(struct app *a, const char *job_id, long long key_id,
    struct http_resp *resp, bool final)
{
	PGresult *r = NULL;
	char *cause = NULL;
	int rc = h_job_fetch(a, job_id, key_id, &r, &cause);
	if (rc == APP_DB_DOWN && final) {
		log_warn("%s", cause);
		free(cause);
		h_answer_accepted(resp, job_id, "running",
		    "The job was accepted; poll GET /jobs/{id} for its result.");
		return 1;
	}
	if (rc < 0) {
		h_db_fail(resp, rc, cause);
		return -1;
	}
	if (rc == 0) {
		http_resp_error(resp, 404, "Job not found", "JOB_NOT_FOUND", NULL,
		    "The job %s no longer exists.", job_id);
		return -1;
	}
	if (h_finished(PQgetvalue(r, 0, JC_STATUS)))
		h_answer_result(resp, r);
	else if (final)
		h_answer_accepted(resp, job_id, "running",
		    "The job is still running; poll GET /jobs/{id} for its result.");
	else {
		PQclear(r);
		return 0;
	}
	PQclear(r);
	return 1;
}

/* POST /execute: validate, enqueue with this process as the job's waiter, wait for the
 * supervisor to hand over its completion (at most sync_wait seconds), answer the result, or
 * 202 running when the wait ran out first. The job is looked at again when the supervisor
 * reconnected to the database (NOTIFYs may have been lost) and, should a notification go
 * missing anyway, after 1, 2, 4, then every 8 seconds of waiting. A database restart is
 * survived: the job is committed, and app_exec reconnects. */
static void h_execute(struct app *a, struct http_req *req, struct auth_result *au,
    struct http_resp *resp)
{
	char job_id[ROUTE_UUID_LEN + 1], *cause = NULL;
	bool replayed = false;
	uint64_t deadline, now, recheck = 1000;

	app_drain(a);
	if (h_submit(a, req, au, a->waiter, job_id, &replayed, resp) < 0)
		return;
	/* A replayed job may have finished long ago: look before waiting. */
	if (replayed && h_execute_answer(a, job_id, au->key.id, resp, false) != 0)
		goto out;
	deadline = util_mono_ms() + (uint64_t)a->conf->sync_wait * 1000;
	while ((now = util_mono_ms()) < deadline) {
		uint64_t ms = deadline - now < recheck ? deadline - now : recheck;
		int rc = h_wait_done(a, job_id, (int)ms);
		if (rc == 1)
			break;	/* finished: the answer below reads it */
		if (rc < 0)
			h_backoff(ms);	/* no supervisor pipe (never in corral-fcgi): poll the job */
		if (rc != 2)
			recheck = recheck < 8000 ? recheck * 2 : 8000;
		if (util_mono_ms() >= deadline)
			break;
		if (app_connect(a, &cause) < 0) {	/* the database is away: wait on */
			log_warn("waiting for job %s: %s", job_id, cause);
			free(cause);
			cause = NULL;
			continue;
		}
		if (h_execute_answer(a, job_id, au->key.id, resp, false) != 0)
			goto out;
	}
	h_execute_answer(a, job_id, au->key.id, resp, true);
out:
	http_resp_header(resp, "X-Job-Id", "%s", job_id);
	if (replayed)
		http_resp_header(resp, "X-Replayed", "true");
}

/* Sleeps ms milliseconds: only when there is no supervisor pipe to wait on. */
static void h_backoff(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* GET /jobs/{id}: the caller's job, with its result when finished. */
static void h_job_get(struct app *a, const char *job_id, struct auth_result *au,
    struct http_resp *resp)
{
	PGresult *r = NULL;
	char *cause = NULL;
	json_object *o, *res;
	const char *st;
	int rc = h_job_fetch(a, job_id, au->key.id, &r, &cause);

	if (rc < 0) {
		h_db_fail(resp, rc, cause);
		return;
	}
	if (rc == 0) {
		http_resp_error(resp, 404, "Job not found", "JOB_NOT_FOUND", NULL,
		    "No job %s exists for this key.", job_id);
		return;
	}
	st = PQgetvalue(r, 0, JC_STATUS);
	o = json_object_new_object();
	h_add_text(o, "job_id", r, JC_ID);
	json_object_object_add(o, "status", json_object_new_string(h_unsandbox_status(st)));
	h_add_text(o, "language", r, JC_LANGUAGE);
	h_add_text(o, "network_mode", r, JC_NETWORK);
	h_add_text(o, "created_at", r, JC_CREATED);
	h_add_text(o, "started_at", r, JC_STARTED);
	h_add_text(o, "completed_at", r, JC_COMPLETED);
	res = NULL;
	if (h_finished(st)) {
		/* the same fields twice: at top level and under "result" (contract section 3) */
		h_result_fields(o, r);
		res = json_object_new_object();
		h_result_fields(res, r);
	}
	json_object_object_add(o, "result", res);
	http_resp_json(resp, 200, o);
	json_object_put(o);
	PQclear(r);
}

/* GET /jobs: the caller's pending and running jobs. */
static void h_jobs_list(struct app *a, struct auth_result *au, struct http_resp *resp)
{
	char key[32], *cause = NULL;
	const char *vals[1] = { key };
	PGresult *r = NULL;
	json_object *o, *arr;
	int rc;

	snprintf(key, sizeof key, "%lld", au->key.id);
	rc = app_exec(a, "jobs_list", 1, vals, &r, &cause);
	if (rc < 0) {
		h_db_fail(resp, rc, cause);
		return;
	}
	arr = json_object_new_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "job_id", json_object_new_string(PQgetvalue(r, i, 0)));
		json_object_object_add(j, "status", json_object_new_string(PQgetvalue(r, i, 1)));
		json_object_object_add(j, "language", json_object_new_string(PQgetvalue(r, i, 2)));
		json_object_object_add(j, "network_mode",
		    json_object_new_string(PQgetvalue(r, i, 3)));
		json_object_object_add(j, "submitted_at",
		    json_object_new_string(PQgetvalue(r, i, 4)));
		json_object_array_add(arr, j);
	}
	PQclear(r);
	o = json_object_new_object();
	json_object_object_add(o, "jobs", arr);
	http_resp_json(resp, 200, o);
	json_object_put(o);
}

/* DELETE /jobs/{id}: cancel the caller's job (see the job_cancel statement). A replay
 * changes nothing and answers as the first request did. */
static void h_job_delete(struct app *a, const char *job_id, struct auth_result *au,
    struct http_resp *resp)
{
	char key[32], *cause = NULL;
	const char *vals[3] = { job_id, key, au->signature };
	PGresult *r = NULL;
	json_object *o, *res;
	const char *st;
	bool replayed, cancellable;
	int rc;

	snprintf(key, sizeof key, "%lld", au->key.id);
	rc = app_exec(a, "job_cancel", 3, vals, &r, &cause);
	if (rc < 0) {
		h_db_fail(resp, rc, cause);
		return;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		http_resp_error(resp, 404, "Job not found", "JOB_NOT_FOUND", NULL,
		    "No job %s exists for this key.", job_id);
		return;
	}
	st = PQgetvalue(r, 0, 0);
	replayed = PQgetvalue(r, 0, 1)[0] == 't';
	/* The first request saw pending or running; its replay may see the cancelled end. */
	cancellable = !h_finished(st) || (replayed && strcmp(st, "cancelled") == 0);
	if (replayed)
		http_resp_header(resp, "X-Replayed", "true");
	if (!cancellable) {
		o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string("Job finished"));
		json_object_object_add(o, "code", json_object_new_string("JOB_FINISHED"));
		json_object_object_add(o, "details", json_object_new_string(
		    "The job has already finished and cannot be cancelled."));
		json_object_object_add(o, "job_id", json_object_new_string(job_id));
		json_object_object_add(o, "status", json_object_new_string(h_unsandbox_status(st)));
		json_object_object_add(o, "outcome", json_object_new_string(st));
		http_resp_json(resp, 409, o);
		json_object_put(o);
		PQclear(r);
		return;
	}
	PQclear(r);
	o = json_object_new_object();
	res = json_object_new_object();
	json_object_object_add(res, "stdout", json_object_new_string(""));
	json_object_object_add(res, "stderr", json_object_new_string(""));
	json_object_object_add(res, "exit_code", json_object_new_int(-1));
	json_object_object_add(o, "message", json_object_new_string("Job cancelled"));
	json_object_object_add(o, "job_id", json_object_new_string(job_id));
	json_object_object_add(o, "status", json_object_new_string("cancelled"));
	json_object_object_add(o, "result", res);
	http_resp_json(resp, 200, o);
	json_object_put(o);
}

/* GET /health: 200 only when the database answers and a worker heartbeat is fresh. */
static void h_health(struct app *a, struct http_resp *resp)
{
	char fresh[16], *cause = NULL;
	const char *vals[1] = { fresh };
	PGresult *r = NULL;
	json_object *o = json_object_new_object();
	long long n = 0;
	int rc;

	snprintf(fresh, sizeof fresh, "%d", a->conf->heartbeat_fresh);
	rc = app_exec(a, "health", 1, vals, &r, &cause);
	if (rc == 0) {
		n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	} else {
		log_error("health: %s", cause);
		free(cause);
	}
	json_object_object_add(o, "status", json_object_new_string(
	    rc == 0 && n > 0 ? "ok" : "unhealthy"));
	json_object_object_add(o, "database", json_object_new_string(
	    rc == 0 ? "ok" : "unreachable"));
	json_object_object_add(o, "workers", json_object_new_int64(n));
	if (rc < 0)
		json_object_object_add(o, "details", json_object_new_string(
		    "The database cannot be reached."));
	else if (n == 0)
		json_object_object_add(o, "details", json_object_new_string(
		    "No worker has sent a heartbeat recently."));
	http_resp_json(resp, rc == 0 && n > 0 ? 200 : 503, o);
	json_object_put(o);
}

/* Returns a JSON array of a NULL-terminated string list (caller puts). */
static json_object *h_strv(char **v)
{
	json_object *a = json_object_new_array();
	for (; v != NULL && *v != NULL; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

/* GET /languages: installed languages, their aliases, details on ?details=1. */
static void h_languages(struct app *a, const struct http_req *req, struct http_resp *resp)
{
	json_object *o = json_object_new_object();
	json_object *ids = json_object_new_array(), *aliases = json_object_new_object();
	json_object *details = NULL;
	bool want = http_query_flag(req->query, "details");
	PGresult *vr = NULL;
	char *cause = NULL;

	if (want) {
		details = json_object_new_object();
		if (app_exec(a, "lang_versions", 0, NULL, &vr, &cause) < 0) {
			log_warn("/languages: versions: %s", cause);	/* answer without them */
			free(cause);
			vr = NULL;
		}
	}
	for (size_t i = 0; i < a->langs->n; i++) {
		const struct lang *l = &a->langs->v[i];
		if (!l->installed)
			continue;
		json_object_array_add(ids, json_object_new_string(l->id));
		for (char **al = l->aliases; al != NULL && *al != NULL; al++)
			json_object_object_add(aliases, *al, json_object_new_string(l->id));
		if (want) {
			json_object *d = json_object_new_object();
			json_object_object_add(d, "aliases", h_strv(l->aliases));
			json_object_object_add(d, "extensions", h_strv(l->extensions));
			json_object_object_add(d, "compiled",
			    json_object_new_boolean(l->compile_argv != NULL));
			json_object_object_add(d, "packages", h_strv(l->packages));
			json_object_object_add(d, "version", NULL);
			for (int k = 0; vr != NULL && k < PQntuples(vr); k++)
				if (strcmp(PQgetvalue(vr, k, 0), l->id) == 0)
					json_object_object_add(d, "version", json_object_new_string(PQgetvalue(vr, k, 1)));
			json_object_object_add(details, l->id, d);
		}
	}
	json_object_object_add(o, "languages", ids);
	json_object_object_add(o, "aliases", aliases);
	json_object_object_add(o, "count",
	    json_object_new_int((int)json_object_array_length(ids)));
	if (want)
		json_object_object_add(o, "details", details);
	PQclear(vr);
	http_resp_json(resp, 200, o);
	json_object_put(o);
}

/* POST /keys/validate: the key's limits. A signed repeat is answered the same, flagged. */
static void h_keys_validate(struct app *a, struct auth_result *au, struct http_resp *resp)
{
	json_object *o;
	bool replayed = false;

	if (au->signature != NULL) {
		char key[32], *cause = NULL;
		const char *vals[2] = { key, au->signature };
		PGresult *r = NULL;
		int rc;
		snprintf(key, sizeof key, "%lld", au->key.id);
		rc = app_exec(a, "seen", 2, vals, &r, &cause);
		if (rc < 0) {
			h_db_fail(resp, rc, cause);
			return;
		}
		replayed = PQntuples(r) == 0;
		PQclear(r);
	}
	o = json_object_new_object();
	json_object_object_add(o, "valid", json_object_new_boolean(true));
	json_object_object_add(o, "public_key", json_object_new_string(au->key.public_key));
	json_object_object_add(o, "rate_per_minute", json_object_new_int(au->key.rate_per_minute));
	json_object_object_add(o, "burst", json_object_new_int(au->key.burst));
	json_object_object_add(o, "concurrency_limit",
	    json_object_new_int(au->key.concurrency_limit));
	json_object_object_add(o, "expires_at", au->key.expires_at != NULL ?
	    json_object_new_string(au->key.expires_at) : NULL);
	json_object_object_add(o, "tier", json_object_new_string(au->key.tier));
	http_resp_json(resp, 200, o);
	json_object_put(o);
	if (replayed)
		http_resp_header(resp, "X-Replayed", "true");
}

/* Adds the X-RateLimit headers from the first four columns of r (allowed, remaining,
 * reset_at, retry_after: corral_take's or corral_enqueue's). Returns 0, or -1 with resp set
 * to 429 when the token was refused. */
static int h_rate_headers(const struct auth_result *au, const PGresult *r, struct http_resp *resp)
{
	http_resp_header(resp, "X-RateLimit-Limit", "%d", au->key.rate_per_minute);
	http_resp_header(resp, "X-RateLimit-Remaining", "%s", PQgetvalue(r, 0, 1));
	http_resp_header(resp, "X-RateLimit-Reset", "%s", PQgetvalue(r, 0, 2));
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		http_resp_header(resp, "Retry-After", "%s", PQgetvalue(r, 0, 3));
		http_resp_error(resp, 429, "Rate limit exceeded", "RATE_LIMITED", NULL,
		    "This key may make %d requests a minute (bursts of %d); retry after %s s.",
		    au->key.rate_per_minute, au->key.burst, PQgetvalue(r, 0, 3));
		return -1;
	}
	return 0;
}

/* Takes one token from the key's rate bucket (shared by every process and host through
 * PostgreSQL) and adds the X-RateLimit headers. Returns 0 to go on, -1 with resp set (429,
 * or the database error). */
static int h_rate_limit(struct app *a, const struct auth_result *au, struct http_resp *resp)
{
	char key[32], rate[16], burst[16], *cause = NULL;
	const char *vals[3] = { key, rate, burst };
	PGresult *r = NULL;
	int rc;
	snprintf(key, sizeof key, "%lld", au->key.id);
	snprintf(rate, sizeof rate, "%d", au->key.rate_per_minute);
	snprintf(burst, sizeof burst, "%d", au->key.burst);
	rc = app_exec(a, "take", 3, vals, &r, &cause);
	if (rc < 0) {
		h_db_fail(resp, rc, cause);
		return -1;
	}
	rc = h_rate_headers(au, r, resp);
	PQclear(r);
	return rc;
}

/* Routes, authenticates and answers one request. */
void app_handle(struct app *a, struct http_req *req, struct http_resp *resp)
{
	struct route_match m;
	struct auth_result au;

	if (route_match(req->method, req->path, &m) < 0) {
		if (m.http == 405) {
			http_resp_error(resp, 405, "Method not allowed", m.code, NULL,
			    "%s is not allowed on %s; use %s.", req->method, req->path, m.allow);
			http_resp_header(resp, "Allow", "%s", m.allow);
		}
		else if (strcmp(m.code, "JOB_NOT_FOUND") == 0)
			http_resp_error(resp, 404, "Job not found", m.code, NULL,
			    "Job ids are UUIDs; no such job exists.");
		else
			http_resp_error(resp, 404, "Not found", m.code, NULL,
			    "No endpoint has this path.");
		return;
	}
	if (!m.auth) {
		h_health(a, resp);
		return;
	}
	auth_result_init(&au);
	/* The submitting routes take their token in the same round trip as the submit. */
	if (auth_request(req, a->master, a->conf->timestamp_window, time(NULL), h_lookup_key,
	    a, &au, resp) < 0 || (m.id != ROUTE_EXECUTE && m.id != ROUTE_EXECUTE_ASYNC &&
	    h_rate_limit(a, &au, resp) < 0)) {
		auth_result_free(&au);
		return;
	}
	switch (m.id) {
	case ROUTE_EXECUTE:
		h_execute(a, req, &au, resp);
		break;
	case ROUTE_EXECUTE_ASYNC:
		h_execute_async(a, req, &au, resp);
		break;
	case ROUTE_JOBS_LIST:
		h_jobs_list(a, &au, resp);
		break;
	case ROUTE_JOB_GET:
		h_job_get(a, m.job_id, &au, resp);
		break;
	case ROUTE_JOB_DELETE:
		h_job_delete(a, m.job_id, &au, resp);
		break;
	case ROUTE_LANGUAGES:
		h_languages(a, req, resp);
		break;
	case ROUTE_KEYS_VALIDATE:
		h_keys_validate(a, &au, resp);
		break;
	case ROUTE_HEALTH:
	case ROUTE_NONE:
		http_resp_error(resp, 500, "Internal error", "INTERNAL_ERROR", NULL,
		    "The route has no handler.");
		break;
	}
	auth_result_free(&au);
}
