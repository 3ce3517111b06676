/* queue: worker-side queue operations over one PostgreSQL connection. */
#include "queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "db.h"
#include "util.h"

static const struct {
	const char *name, *sql;
} q_stmts[] = {
	/* $1: the idle slots' ids as a text[] literal; the k-th job goes to the k-th slot */
	{ "claim", "SELECT job_id, attempt, worker_id, request::text, more FROM corral_claim_batch($1::text[], $2::integer)" },
	{ "renew", "SELECT corral_renew($1::uuid, $2, $3::integer, $4::integer)" },
	{ "complete", "CALL corral_finish($1::uuid, $2, $3::integer, $4, $5::jsonb)" },
	{ "release", "SELECT corral_release($1::uuid, $2, $3::integer)" },
	{ "register", "INSERT INTO workers (id, host, pid, slots, cgroup) VALUES ($1, $2, $3::integer, $4::integer, $5) "
	    "ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, slots = EXCLUDED.slots, "
	    "cgroup = EXCLUDED.cgroup, started_at = now(), heartbeat_at = now(), stopped_at = NULL" },
	{ "heartbeat", "UPDATE workers SET heartbeat_at = now(), busy = (SELECT count(*) FROM jobs "
	    "WHERE status = 'running' AND worker_id LIKE $1 || '/%'), claims = $2::bigint, claimed = $3::bigint "
	    "WHERE id = $1" },
	{ "reap", "SELECT corral_reap($1::integer)" },
	{ "unregister", "UPDATE workers SET stopped_at = now(), busy = 0 WHERE id = $1" },
};

/* Opens the connection and prepares every statement; the main process also LISTENs. */
int q_open(struct q *q, const struct conf *c, const char *worker_id, bool slot, char **cause)
{
	memset(q, 0, sizeof *q);
	q->conf = c;
	q->worker_id = xstrdup(worker_id);
	q->db = db_connect(c->db, slot ? "corral-worker-slot" : "corral-worker", cause);
	if (q->db == NULL)
		goto fail;
	for (size_t i = 0; i < sizeof q_stmts / sizeof q_stmts[0]; i++)
		if (db_prepare(q->db, q_stmts[i].name, q_stmts[i].sql, cause) < 0)
			goto fail;
	if (!slot && (db_exec(q->db, "LISTEN corral_jobs", cause) < 0 ||
	    db_exec(q->db, "LISTEN corral_cancel", cause) < 0))
		goto fail;
	return 0;
fail:
	q_close(q);
	return -1;
}

/* Closes the connection. */
void q_close(struct q *q)
{
	if (q->db != NULL)
		PQfinish(q->db);
	free(q->worker_id);
	q->db = NULL;
	q->worker_id = NULL;
}

/* Runs a prepared statement expecting rows; returns the result or NULL with *cause. */
static PGresult *q_run(struct q *q, const char *name, int n, const char *const *params, char **cause)
{
	PGresult *r = PQexecPrepared(q->db, name, n, params, NULL, NULL, 0);
	if (db_check(r, PGRES_TUPLES_OK, name, cause) < 0)
		return NULL;
	return r;
}

/* Runs a boolean-returning prepared statement about job; returns 1, 0 or -1. */
static int q_bool(struct q *q, const char *name, int n, const char *const *params, char **cause)
{
	PGresult *r = q_run(q, name, n, params, cause);
	int v;
	if (r == NULL)
		return -1;
	v = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return v;
}

/* Appends s to b as one double-quoted element of a text[] literal. */
static void q_array_elem(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_add(b, "\\", 1);
		buf_add(b, s, 1);
	}
	buf_add(b, "\"", 1);
}

/* Claims up to n jobs, the k-th for slot_ids[k]; see queue.h. */
int q_claim_batch(struct q *q, const char *const *slot_ids, int n, struct q_claimed *out, bool *more,
    char **cause)
{
	char lease[16];
	const char *params[2];
	struct buf ids;
	PGresult *r;
	int got;

	buf_init(&ids, 0);
	buf_add(&ids, "{", 1);
	for (int i = 0; i < n; i++) {
		if (i > 0)
			buf_add(&ids, ",", 1);
		q_array_elem(&ids, slot_ids[i]);
	}
	buf_add(&ids, "}", 1);
	snprintf(lease, sizeof lease, "%d", q->conf->lease);
	if (ids.failed) {
		buf_free(&ids);
		return util_fail(cause, "claim: out of memory");
	}
	params[0] = ids.data;
	params[1] = lease;
	r = q_run(q, "claim", 2, params, cause);
	buf_free(&ids);
	if (r == NULL)
		return -1;
	got = PQntuples(r) < n ? PQntuples(r) : n;
	*more = got > 0 && strcmp(PQgetvalue(r, 0, 4), "t") == 0;
	for (int i = 0; i < got; i++) {
		snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(r, i, 0));
		out[i].attempt = atoi(PQgetvalue(r, i, 1));
		out[i].worker_id = xstrdup(PQgetvalue(r, i, 2));
		out[i].request = xstrdup(PQgetvalue(r, i, 3));
	}
	PQclear(r);
	return got;
}

/* Frees what q_claim_batch put in one entry. */
void q_claimed_free(struct q_claimed *c)
{
	free(c->worker_id);
	free(c->request);
	c->worker_id = NULL;
	c->request = NULL;
}

/* Gives a job claimed by the main process back (its slot could not take it). */
int q_release_claimed(struct q *q, const struct q_claimed *c, char **cause)
{
	char attempt[16];
	const char *params[3] = { c->id, c->worker_id, attempt };
	snprintf(attempt, sizeof attempt, "%d", c->attempt);
	return q_bool(q, "release", 3, params, cause);
}

/* Frees a claimed job. */
void q_job_free(struct q_job *job)
{
	json_object_put(job->request);
	job->request = NULL;
}

/* Renews the lease of a running job. */
int q_renew(struct q *q, const struct q_job *job, char **cause)
{
	char attempt[16], lease[16];
	const char *params[4] = { job->id, q->worker_id, attempt, lease };
	snprintf(attempt, sizeof attempt, "%d", job->attempt);
	snprintf(lease, sizeof lease, "%d", q->conf->lease);
	return q_bool(q, "renew", 4, params, cause);
}

/* Records a job's result. */
int q_complete(struct q *q, const struct q_job *job, const char *status, json_object *result, char **cause)
{
	char attempt[16];
	const char *params[5] = { job->id, q->worker_id, attempt, status,
	    json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN) };
	int rc;
	snprintf(attempt, sizeof attempt, "%d", job->attempt);
	rc = q_bool(q, "complete", 5, params, cause);
	q->job_id[0] = '\0';
	return rc;
}

/* Gives a job back without counting its attempt. */
int q_release(struct q *q, const struct q_job *job, char **cause)
{
	char attempt[16];
	const char *params[3] = { job->id, q->worker_id, attempt };
	snprintf(attempt, sizeof attempt, "%d", job->attempt);
	q->job_id[0] = '\0';
	return q_bool(q, "release", 3, params, cause);
}

/* Reads what arrived on the connection and calls fn for each notification; returns how
 * many, or -1 with *cause when the connection broke. */
int q_notifications(struct q *q, void (*fn)(void *arg, const char *channel, const char *payload),
    void *arg, char **cause)
{
	PGnotify *n;
	int count = 0;
	if (PQconsumeInput(q->db) == 0)
		return util_fail(cause, "database: %s", PQerrorMessage(q->db));
	while ((n = PQnotifies(q->db)) != NULL) {
		fn(arg, n->relname, n->extra);
		PQfreemem(n);
		count++;
	}
	return count;
}

/* Registers the worker row. */
int q_register(struct q *q, const char *host, int slots, const char *cgroup, char **cause)
{
	char pid[16], nslots[16];
	const char *params[5] = { q->worker_id, host, pid, nslots, cgroup };
	PGresult *r;
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	snprintf(nslots, sizeof nslots, "%d", slots);
	r = PQexecPrepared(q->db, "register", 5, params, NULL, NULL, 0);
	if (db_check(r, PGRES_COMMAND_OK, "register", cause) < 0)
		return -1;
	PQclear(r);
	return 0;
}

/* Refreshes the heartbeat (with the claim counters) and requeues jobs whose lease expired. */
int q_heartbeat(struct q *q, unsigned long long claims, unsigned long long claimed, char **cause)
{
	char window[16], nclaims[24], nclaimed[24];
	const char *p1[3] = { q->worker_id, nclaims, nclaimed }, *p2[1] = { window };
	PGresult *r;
	snprintf(nclaims, sizeof nclaims, "%llu", claims);
	snprintf(nclaimed, sizeof nclaimed, "%llu", claimed);
	r = PQexecPrepared(q->db, "heartbeat", 3, p1, NULL, NULL, 0);
	if (db_check(r, PGRES_COMMAND_OK, "heartbeat", cause) < 0)
		return -1;
	PQclear(r);
	snprintf(window, sizeof window, "%d", q->conf->timestamp_window);
	r = q_run(q, "reap", 1, p2, cause);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 0)) > 0)
		log_warn("requeued %s job(s) whose worker lost its lease", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* Marks the worker stopped. */
int q_unregister(struct q *q, char **cause)
{
	const char *params[1] = { q->worker_id };
	PGresult *r = PQexecPrepared(q->db, "unregister", 1, params, NULL, NULL, 0);
	if (db_check(r, PGRES_COMMAND_OK, "unregister", cause) < 0)
		return -1;
	PQclear(r);
	return 0;
}
