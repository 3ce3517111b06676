/* queue: the worker's side of the PostgreSQL job queue. The main process LISTENs, claims
 * jobs in batches (one per idle slot) and heartbeats; each slot renews the lease of the job
 * it runs and records its result, fenced by worker id and attempt. */
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
	bool			 cancel_seen;	/* the main process forwarded a cancellation */
	char			 job_id[37];	/* job being run, for cancel notifications */
};

/* A job the main process claimed for one of its slots. */
struct q_claimed {
	char	 id[37];
	int	 attempt;
	char	*worker_id;	/* the slot's id: jobs.worker_id */
	char	*request;	/* jobs.request as JSON text */
};

struct q_job {
	char		 id[37];
	int		 attempt;
	json_object	*request;	/* parsed jobs.request; owned, q_job_free puts it */
};

/* Connects and prepares the statements; the main process (slot false) also LISTENs for
 * new jobs and cancellations. Returns 0 or -1 with *cause. q_close releases it. */
int q_open(struct q *q, const struct conf *c, const char *worker_id, bool slot, char **cause);
/* Closes the connection and frees q's strings. */
void q_close(struct q *q);
/* Claims up to n pending jobs, oldest first, the k-th for the slot slot_ids[k] (one
 * statement, corral_claim_batch); fills out[0..got), sets *more when other jobs were
 * pending too, and returns got, or -1 with *cause. */
int q_claim_batch(struct q *q, const char *const *slot_ids, int n, struct q_claimed *out, bool *more,
    char **cause);
/* Frees the strings of one q_claimed. */
void q_claimed_free(struct q_claimed *c);
/* Gives back a job claimed for a slot that could not take it: 1, 0 (no longer ours), -1. */
int q_release_claimed(struct q *q, const struct q_claimed *c, char **cause);
/* Frees what a claimed job holds. */
void q_job_free(struct q_job *job);
/* Renews the lease: 1 still ours, 0 lost or cancelled, -1 error. */
int q_renew(struct q *q, const struct q_job *job, char **cause);
/* Writes the result (CALL corral_finish: flushed, then the waiter told): 1 recorded, 0
 * fenced out (lease lost), -1 error. */
int q_complete(struct q *q, const struct q_job *job, const char *status, json_object *result, char **cause);
/* Gives the job back to the queue without counting the attempt. */
int q_release(struct q *q, const struct q_job *job, char **cause);
/* Reads what arrived on the connection and calls fn(arg, channel, payload) for each
 * notification; returns how many, or -1 with *cause when the connection broke. */
int q_notifications(struct q *q, void (*fn)(void *arg, const char *channel, const char *payload),
    void *arg, char **cause);
/* Registers (or refreshes) the worker row: the main process at start. */
int q_register(struct q *q, const char *host, int slots, const char *cgroup, char **cause);
/* Heartbeat: refreshes heartbeat_at, busy and the claim counters (statements run, jobs
 * they returned), then requeues expired leases. */
int q_heartbeat(struct q *q, unsigned long long claims, unsigned long long claimed, char **cause);
/* Marks the worker row stopped. */
int q_unregister(struct q *q, char **cause);

#endif
