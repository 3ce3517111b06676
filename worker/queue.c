/* queue: worker-side queue operations over one PostgreSQL connection. */
#include "queue.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "util.h"

static const struct {
	const char *name, *sql;
} q_stmts[] = {
	{ "claim", "SELECT job_id, attempt, request::text FROM corral_claim($1, $2::integer)" },
	{ "renew", "SELECT corral_renew($1::uuid, $2, $3::integer, $4::integer)" },
	{ "complete", "SELECT corral_complete($1::uuid, $2, $3::integer, $4, $5::jsonb)" },
	{ "release", "SELECT corral_release($1::uuid, $2, $3::integer)" },
	{ "register", "INSERT INTO workers (id, host, pid, slots, cgroup) VALUES ($1, $2, $3::integer, $4::integer, $5) "
	    "ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, slots = EXCLUDED.slots, "
	    "cgroup = EXCLUDED.cgroup, started_at = now(), heartbeat_at = now(), stopped_at = NULL" },
	{ "heartbeat", "UPDATE workers SET heartbeat_at = now(), busy = (SELECT count(*) FROM jobs "
	    "WHERE status = 'running' AND worker_id LIKE $1 || '/%') WHERE id = $1" },
	{ "reap", "SELECT corral_reap($1::integer)" },
	{ "unregister", "UPDATE workers SET stopped_at = now(), busy = 0 WHERE id = $1" },
};

/* Opens the connection and prepares every statement. */
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
	if (slot && (db_exec(q->db, "LISTEN corral_jobs", cause) < 0 ||
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

/* Claims one job. */
int q_claim(struct q *q, struct q_job *job, char **cause)
{
	char lease[16];
	const char *params[2] = { q->worker_id, lease };
	PGresult *r;
	memset(job, 0, sizeof *job);
	snprintf(lease, sizeof lease, "%d", q->conf->lease);
	r = q_run(q, "claim", 2, params, cause);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	snprintf(job->id, sizeof job->id, "%s", PQgetvalue(r, 0, 0));
	job->attempt = atoi(PQgetvalue(r, 0, 1));
	job->request = json_tokener_parse(PQgetvalue(r, 0, 2));
	PQclear(r);
	snprintf(q->job_id, sizeof q->job_id, "%s", job->id);
	q->cancel_seen = false;
	return 1;
}

/* Frees a claimed job. */
void q_job_free(struct q_job *job)
{
	json_object_put(job->request);
	job->request = NULL;
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

/* Reads notifications already received; returns how many. */
int q_drain(struct q *q, char **cause)
{
	PGnotify *n;
	int count = 0;
	if (PQconsumeInput(q->db) == 0)
		return util_fail(cause, "database: %s", PQerrorMessage(q->db));
	while ((n = PQnotifies(q->db)) != NULL) {
		if (strcmp(n->relname, "corral_cancel") == 0 && q->job_id[0] != '\0' &&
		    strcmp(n->extra, q->job_id) == 0)
			q->cancel_seen = true;
		PQfreemem(n);
		count++;
	}
	return count;
}

/* Waits for a notification or the timeout. */
int q_wait(struct q *q, int timeout_ms, char **cause)
{
	struct pollfd p = { .fd = PQsocket(q->db), .events = POLLIN };
	int n = q_drain(q, cause);
	if (n != 0)
		return n < 0 ? -1 : 1;
	if (p.fd < 0)
		return util_fail(cause, "database: connection lost");
	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		return util_fail(cause, "poll: %s", strerror(errno));
	n = q_drain(q, cause);
	return n < 0 ? -1 : n > 0;
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

/* Refreshes the heartbeat and requeues jobs whose lease expired. */
int q_heartbeat(struct q *q, char **cause)
{
	char window[16];
	const char *p1[1] = { q->worker_id }, *p2[1] = { window };
	PGresult *r = PQexecPrepared(q->db, "heartbeat", 1, p1, NULL, NULL, 0);
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
