/* queue: the worker's side of the PostgreSQL job queue (claim with a lease, renew,
 * complete fenced by worker and attempt, heartbeat, reap). */
#ifndef CORRAL_QUEUE_H
#define CORRAL_QUEUE_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "conf.h"

struct q {
	PGconn			*db;
	char			*worker_id;	/* jobs.worker_id written by this connection */
	const struct conf	*conf;
	bool			 cancel_seen;	/* a corral_cancel for the current job arrived */
	char			 job_id[37];	/* job being run, for cancel notifications */
};

struct q_job {
	char		 id[37];
	int		 attempt;
	json_object	*request;	/* parsed jobs.request; owned, q_job_free puts it */
};

/* Connects, prepares the statements and LISTENs for new jobs (and cancellations);
 * returns 0 or -1 with *cause. q_close releases it. */
int q_open(struct q *q, const struct conf *c, const char *worker_id, bool slot, char **cause);
/* Closes the connection and frees q's strings. */
void q_close(struct q *q);
/* Claims the oldest pending job: 1 claimed (job filled), 0 none pending, -1 error. */
int q_claim(struct q *q, struct q_job *job, char **cause);
/* Frees what a claimed job holds. */
void q_job_free(struct q_job *job);
/* Renews the lease: 1 still ours, 0 lost or cancelled, -1 error. */
int q_renew(struct q *q, const struct q_job *job, char **cause);
/* Writes the result: 1 recorded, 0 fenced out (lease lost), -1 error. */
int q_complete(struct q *q, const struct q_job *job, const char *status, json_object *result, char **cause);
/* Gives the job back to the queue without counting the attempt. */
int q_release(struct q *q, const struct q_job *job, char **cause);
/* Waits up to timeout_ms for a notification; returns 1 if one came, 0 on timeout, -1 on error.
 * A corral_cancel for q->job_id sets q->cancel_seen. */
int q_wait(struct q *q, int timeout_ms, char **cause);
/* Drains pending notifications without waiting (sets cancel_seen as q_wait does). */
int q_drain(struct q *q, char **cause);
/* Registers (or refreshes) the worker row: the main process at start. */
int q_register(struct q *q, const char *host, int slots, const char *cgroup, char **cause);
/* Heartbeat: refreshes heartbeat_at and busy, then requeues expired leases. */
int q_heartbeat(struct q *q, char **cause);
/* Marks the worker row stopped. */
int q_unregister(struct q *q, char **cause);

#endif
