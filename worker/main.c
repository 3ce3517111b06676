/* corral-worker: one daemon per host. The main process registers the worker, is the host's
 * only LISTENing connection (corral_jobs, corral_cancel), claims jobs in batches (one per
 * idle slot, one statement) and hands each to a slot over a socketpair (worker/link.h),
 * forwards cancellations, heartbeats, requeues expired leases and supervises the N
 * single-threaded slot processes. A slot runs the jobs it is handed, one fresh sandbox per
 * job, renews their leases and records their results on its own connection. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "job.h"
#include "lang.h"
#include "link.h"
#include "queue.h"
#include "runner.h"
#include "sbx.h"
#include "util.h"

static volatile sig_atomic_t stopping;

struct slot_ctx {
	struct q		*q;
	const struct q_job	*job;
	int			 link;		/* the slot's end of its socketpair */
	uint64_t		 next_renew_ms;
	bool			 lost;		/* lease lost or cancellation asked for */
};

/* Records that a stop was asked for. */
static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Does nothing: SIGCHLD only has to interrupt the main process's ppoll. */
static void on_child(int sig)
{
	(void)sig;
}

/* Installs the stop handler for SIGTERM and SIGINT (no SA_RESTART, so waits wake up). */
static void stop_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Reads the messages waiting on a slot's link without blocking: a cancellation of the job
 * being run sets q->cancel_seen. */
static void slot_read_link(struct slot_ctx *s)
{
	struct pollfd p = { .fd = s->link, .events = POLLIN };
	while (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)) != 0) {
		char type, *msg = NULL, *cause = NULL;
		size_t len;
		int rc = link_recv(s->link, &type, &msg, &len, &cause);
		if (rc <= 0) {
			if (rc < 0) {
				log_warn("slot: %s", cause);
				free(cause);
			}
			return;	/* the main process is gone: PR_SET_PDEATHSIG ends us */
		}
		if (type == LINK_CANCEL && strcmp(msg, s->q->job_id) == 0)
			s->q->cancel_seen = true;
		free(msg);
	}
}

/* Opens the slot's connection again once, keeping what it knows of the running job; the
 * slot only finds a broken connection (a database restart) when it next uses it. */
static int slot_reopen(struct q *q, char **cause)
{
	const struct conf *c = q->conf;
	char job_id[sizeof q->job_id], *id = xstrdup(q->worker_id);
	bool cancel_seen = q->cancel_seen;
	int rc;

	memcpy(job_id, q->job_id, sizeof job_id);
	q_close(q);
	rc = q_open(q, c, id, true, cause);
	if (rc < 0)
		q->worker_id = xstrdup(id);	/* q_open failed: keep the id for the next try */
	memcpy(q->job_id, job_id, sizeof job_id);
	q->cancel_seen = cancel_seen;
	q->conf = c;
	free(id);
	return rc;
}

/* Sandbox poll hook: renews the lease, notices cancellation and shutdown. */
static int slot_poll(void *arg)
{
	struct slot_ctx *s = arg;
	char *cause = NULL;
	if (stopping)
		return 1;
	slot_read_link(s);
	if (s->q->cancel_seen)
		return 1;
	if (util_mono_ms() >= s->next_renew_ms) {
		int rc = q_renew(s->q, s->job, &cause);
		if (rc < 0) {	/* the connection broke (a database restart): reconnect, renew */
			log_warn("slot: lease renewal: %s; reconnecting", cause);
			free(cause);
			cause = NULL;
			rc = slot_reopen(s->q, &cause) < 0 ? -1 : q_renew(s->q, s->job, &cause);
			if (rc < 0) {	/* keep running; try again next time, write the result later */
				log_warn("slot: lease renewal: %s", cause);
				free(cause);
			}
		}
		s->next_renew_ms = util_mono_ms() + (uint64_t)s->q->conf->heartbeat * 1000;
		if (rc == 0) {
			s->lost = true;
			return 1;
		}
	}
	return 0;
}

/* Opens the slot's queue connection, retrying until it works or a stop is asked for. */
static int slot_connect(struct q *q, const struct conf *c, const char *id)
{
	unsigned delay = 1;
	while (!stopping) {
		char *cause = NULL;
		if (q_open(q, c, id, true, &cause) == 0)
			return 0;
		log_error("%s: %s (retrying in %us)", id, cause, delay);
		free(cause);
		sleep(delay);
		delay = delay < 8 ? delay * 2 : 8;
	}
	return -1;
}

/* Writes a job's outcome, reconnecting and retrying while the database is away. */
static void slot_finish(struct q *q, const struct conf *c, const char *id, const struct q_job *job,
    const char *status, json_object *result, bool release)
{
	for (int tries = 0; tries < 60; tries++) {
		char *cause = NULL;
		int rc = release ? q_release(q, job, &cause) : q_complete(q, job, status, result, &cause);
		if (rc >= 0) {
			if (rc == 0 && !release)
				log_warn("job %s attempt %d: lease lost, result discarded", job->id, job->attempt);
			return;
		}
		log_error("job %s: %s", job->id, cause);
		free(cause);
		q_close(q);
		if (tries > 0)	/* the first retry at once: an idle slot learns of a restart here */
			sleep(1);
		if (slot_connect(q, c, id) < 0)
			return;
	}
}

/* Validates the stored request again and runs it. */
static void slot_job(struct q *q, const struct conf *c, const struct lang_table *langs,
    const struct sbx_config *sc, int slot, const char *id, struct q_job *qj, int link)
{
	struct slot_ctx ctx = { .q = q, .job = qj, .link = link,
	    .next_renew_ms = util_mono_ms() + (uint64_t)c->heartbeat * 1000 };
	struct runner_hooks hooks = { .poll_cb = slot_poll, .arg = &ctx, .extra_fd = link };
	struct job_error err;
	json_object *result = NULL;
	const char *status;
	struct job j;
	uint64_t t0 = util_mono_ms();

	if (c->noop) {	/* benchmark only: measures the queue path without a sandbox */
		result = json_object_new_object();
		json_object_object_add(result, "exit_code", json_object_new_int(0));
		slot_finish(q, c, id, qj, "completed", result, false);
		json_object_put(result);
		return;
	}
	if (qj->request == NULL || job_parse(&j, qj->request, c, langs, &err) < 0) {
		if (qj->request == NULL)
			log_error("job %s: the stored request is not JSON", qj->id);
		else
			log_error("job %s: stored request is not valid: %s: %s", qj->id, err.field, err.msg);
		result = json_object_new_object();
		json_object_object_add(result, "error",
		    json_object_new_string("internal error: the stored job failed validation in the worker"));
		json_object_object_add(result, "exit_code", json_object_new_int(-1));
		slot_finish(q, c, id, qj, "internal_error", result, false);
		json_object_put(result);
		return;
	}
	status = runner_run(&j, sc, slot, &hooks, &result);
	if (stopping && !ctx.lost && strcmp(status, "cancelled") == 0 && !q->cancel_seen) {
		log_info("job %s: released for another worker (shutting down)", qj->id);
		slot_finish(q, c, id, qj, status, result, true);
	} else if (ctx.lost && !q->cancel_seen) {
		log_warn("job %s attempt %d: lease lost while running; stopped", qj->id, qj->attempt);
	} else {
		slot_finish(q, c, id, qj, status, result, false);
		log_info("job %s attempt %d: %s in %llu ms", qj->id, qj->attempt, status,
		    (unsigned long long)(util_mono_ms() - t0));
	}
	json_object_put(result);
	job_free(&j);
}

/* Parses a LINK_JOB payload into qj; returns 0, or -1 when it is malformed. */
static int slot_parse_job(char *msg, const char *id, struct q_job *qj)
{
	char *attempt, *worker, *request;
	memset(qj, 0, sizeof *qj);
	if ((attempt = strchr(msg, '\n')) == NULL || (worker = strchr(attempt + 1, '\n')) == NULL ||
	    (request = strchr(worker + 1, '\n')) == NULL)
		return -1;
	*attempt++ = '\0';
	*worker++ = '\0';
	*request++ = '\0';
	if (strlen(msg) >= sizeof qj->id || strcmp(worker, id) != 0)
		return -1;
	snprintf(qj->id, sizeof qj->id, "%s", msg);
	qj->attempt = atoi(attempt);
	qj->request = json_tokener_parse(request);
	return 0;
}

/* Waits until the link is readable; returns 0, or -1 when a stop was asked for. */
static int slot_wait_link(int link)
{
	struct pollfd p = { .fd = link, .events = POLLIN };
	while (!stopping) {
		if (poll(&p, 1, -1) > 0)
			return 0;
		if (errno != EINTR) {
			log_error("slot: poll: %s", strerror(errno));
			return -1;
		}
	}
	return -1;
}

/* The slot process: say it is idle, run the job the main process hands over, record its
 * result; until told to stop or the main process goes away. */
static void slot_main(const struct conf *c, const struct lang_table *langs, const struct sbx_config *sc,
    int slot, const char *worker_id, pid_t parent, int link, const sigset_t *mask)
{
	char *id = xasprintf("%s/%d", worker_id, slot), *cause = NULL;
	struct q q;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, "corral-slot");
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, NULL);
	if (slot_connect(&q, c, id) < 0)
		_exit(0);
	while (!stopping) {
		struct q_job qj;
		char type = 0, *msg = NULL;
		size_t len;
		int rc;

		if (!c->noop && sbx_pool_fill(sc, slot, (uint64_t)c->disk_default << 20, &cause) < 0) {
			log_warn("%s: preparing a sandbox ahead: %s", id, cause);	/* the job makes its own */
			free(cause);
			cause = NULL;
		}
		if (link_send(link, LINK_IDLE, "", 0, &cause) < 0)
			break;
		do {
			free(msg);
			msg = NULL;
			if (slot_wait_link(link) < 0)
				goto out;
			rc = link_recv(link, &type, &msg, &len, &cause);
			if (rc <= 0)
				goto out;	/* the main process is gone */
		} while (type != LINK_JOB);	/* a late cancellation of a job already done */
		if (slot_parse_job(msg, id, &qj) < 0) {
			log_error("%s: malformed job message from the main process", id);
			free(msg);
			continue;
		}
		free(msg);
		snprintf(q.job_id, sizeof q.job_id, "%s", qj.id);
		q.cancel_seen = false;
		slot_job(&q, c, langs, sc, slot, id, &qj, link);
		q.job_id[0] = '\0';
		q_job_free(&qj);
	}
out:
	sbx_pool_free();
	if (cause != NULL) {
		log_error("%s: %s", id, cause);
		free(cause);
	}
	q_close(&q);
	free(id);
	_exit(0);
}

/* Maps the cgroup setting to the sandbox's mode. */
static int cgroup_mode(const char *s)
{
	if (strcmp(s, "v1") == 0)
		return SBX_CG_V1;
	if (strcmp(s, "v2") == 0)
		return SBX_CG_V2;
	if (strcmp(s, "none") == 0)
		return SBX_CG_NONE;
	if (strcmp(s, "auto") == 0)
		return SBX_CG_AUTO;
	die("cgroup = %s: expected auto, v1, v2 or none", s);
}

/* One slot as the main process sees it. */
struct slot_rec {
	pid_t	 pid;		/* 0 when not running */
	int	 fd;		/* the main process's end of the socketpair; -1 when closed */
	bool	 idle;		/* said LINK_IDLE and was handed nothing since */
	char	*id;		/* "<worker id>/<n>": jobs.worker_id of the jobs it runs */
	char	 job[37];	/* the job handed to it, "" when none */
};

/* The main process: its connection, its slots and what it knows of the queue. */
struct disp {
	const struct conf	*c;
	struct q		 q;		/* q.db is NULL while the database is away */
	struct slot_rec		*slots;
	int			 n;
	bool			 dirty;		/* jobs may be pending: a NOTIFY came, or the last claim left some */
	unsigned long long	 claims, claimed;
};

/* Starts slot i with a fresh socketpair; sets its pid (0 when fork failed, logged). */
static void spawn_slot(struct disp *d, const struct lang_table *langs, const struct sbx_config *sc,
    int i, const char *worker_id, const sigset_t *mask)
{
	struct slot_rec *s = &d->slots[i];
	pid_t parent = getpid(), pid;
	int sv[2];

	s->pid = 0;
	s->idle = false;
	s->job[0] = '\0';
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		for (int k = 0; k < d->n; k++)
			if (d->slots[k].fd >= 0)
				close(d->slots[k].fd);
		if (d->q.db != NULL)
			close(PQsocket(d->q.db));	/* the main process's; never PQfinish it here */
		slot_main(d->c, langs, sc, i, worker_id, parent, sv[1], mask);
	}
	close(sv[1]);
	s->fd = sv[0];
	s->pid = pid;
}

/* q_notifications callback: a new job marks the queue dirty; a cancellation goes to the
 * slot running that job. */
static void disp_notify(void *arg, const char *channel, const char *payload)
{
	struct disp *d = arg;
	if (strcmp(channel, "corral_jobs") == 0) {
		d->dirty = true;
		return;
	}
	if (strcmp(channel, "corral_cancel") != 0)
		return;
	for (int i = 0; i < d->n; i++) {
		char *cause = NULL;
		if (d->slots[i].fd < 0 || strcmp(d->slots[i].job, payload) != 0)
			continue;
		if (link_send(d->slots[i].fd, LINK_CANCEL, payload, strlen(payload), &cause) < 0) {
			log_warn("slot %d: %s", i, cause);
			free(cause);
		}
	}
}

/* Hands a claimed job to its slot; gives it back to the queue when the slot cannot take it. */
static void disp_hand(struct disp *d, struct q_claimed *cl)
{
	char *msg, *cause = NULL;
	int i;
	for (i = 0; i < d->n && strcmp(d->slots[i].id, cl->worker_id) != 0; i++)
		;
	if (i < d->n && d->slots[i].fd >= 0 && d->slots[i].idle) {
		msg = xasprintf("%s\n%d\n%s\n%s", cl->id, cl->attempt, cl->worker_id, cl->request);
		if (link_send(d->slots[i].fd, LINK_JOB, msg, strlen(msg), &cause) == 0) {
			d->slots[i].idle = false;
			snprintf(d->slots[i].job, sizeof d->slots[i].job, "%s", cl->id);
			free(msg);
			return;
		}
		log_warn("slot %d: %s", i, cause);
		free(cause);
		cause = NULL;
		free(msg);
	}
	if (q_release_claimed(&d->q, cl, &cause) < 0) {
		log_error("job %s: release: %s (its lease will expire)", cl->id, cause);
		free(cause);
	}
}

/* Claims one job per idle slot in one statement and hands them over. Returns 0, or -1 when
 * the database connection failed (logged). */
static int disp_claim(struct disp *d)
{
	const char **ids = xcalloc((size_t)d->n, sizeof *ids);
	struct q_claimed *got = xcalloc((size_t)d->n, sizeof *got);
	char *cause = NULL;
	bool more = false;
	int k = 0, n;

	for (int i = 0; i < d->n; i++)
		if (d->slots[i].idle && d->slots[i].fd >= 0)
			ids[k++] = d->slots[i].id;
	n = k == 0 ? 0 : q_claim_batch(&d->q, ids, k, got, &more, &cause);
	if (n < 0) {
		log_error("claim: %s", cause);
		free(cause);
	} else if (k > 0) {
		d->claims++;
		d->claimed += (unsigned long long)n;
		d->dirty = more;	/* claim again as soon as a slot is free */
		for (int j = 0; j < n; j++) {
			disp_hand(d, &got[j]);
			q_claimed_free(&got[j]);
		}
	}
	free(ids);
	free(got);
	return n < 0 ? -1 : 0;
}

/* (Re)connects the main process: LISTEN, register the worker row. Returns 0 or -1 (logged). */
static int disp_connect(struct disp *d, const char *worker_id, const char *host)
{
	char *cause = NULL;
	if (d->q.db != NULL)
		q_close(&d->q);
	if (q_open(&d->q, d->c, worker_id, false, &cause) < 0 ||
	    q_register(&d->q, host, d->n, sbx_cgroup_desc(), &cause) < 0) {
		log_error("database: %s", cause);
		free(cause);
		q_close(&d->q);
		return -1;
	}
	d->dirty = true;	/* NOTIFYs sent while we were away are lost: look at the queue */
	return 0;
}

/* Reads a message from slot i: LINK_IDLE marks it idle; end of file closes its link. */
static void disp_read_slot(struct disp *d, int i)
{
	char type, *msg = NULL, *cause = NULL;
	size_t len;
	int rc = link_recv(d->slots[i].fd, &type, &msg, &len, &cause);
	if (rc <= 0) {
		if (rc < 0) {
			log_warn("slot %d: %s", i, cause);
			free(cause);
		}
		close(d->slots[i].fd);
		d->slots[i].fd = -1;
		d->slots[i].idle = false;
		return;
	}
	if (type == LINK_IDLE) {
		d->slots[i].idle = true;
		d->slots[i].job[0] = '\0';
	}
	free(msg);
}

/* Starts the worker: configuration, sandbox setup, the slots, then the main loop. */
int main(int argc, char **argv)
{
	const char *conf_arg = NULL;
	struct conf c;
	struct lang_table langs;
	struct sbx_config sc;
	struct disp d;
	struct pollfd *pfd;
	sigset_t block, orig;
	struct sigaction sa;
	char host[256], *worker_id, *cause = NULL;
	int nslots, opt;
	uint64_t next_beat = 0, next_poll = 0, now;

	log_init("corral-worker");
	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		if (opt == 'c')
			conf_arg = optarg;
		else {
			fprintf(opt == 'h' ? stdout : stderr, "usage: corral-worker [-c CONFIG]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	conf_init(&c);
	if (conf_load(&c, conf_path(conf_arg), &cause) < 0)
		die("%s", cause);
	if (geteuid() != 0)
		die("corral-worker must start as root: it creates namespaces, cgroups and per-slot users");
	if (lang_table_load(&langs, c.languages_file, &cause) < 0)
		die("%s", cause);
	if (mkdir(c.box_dir, 0700) < 0 && errno != EEXIST)
		die("box_dir %s: %s", c.box_dir, strerror(errno));
	memset(&sc, 0, sizeof sc);
	sc.box_dir = c.box_dir;
	sc.uid_base = (uid_t)c.uid_base;
	sc.gid_base = (gid_t)c.uid_base;
	sc.cgroup_mode = cgroup_mode(c.cgroup);
	sc.allow_weak = c.weak_limits;
	sc.etc_extra = (const char *const *)lang_etc(&langs);	/* e.g. /etc/mono */
	sc.binds = (const char *const *)lang_binds(&langs);	/* e.g. /var/lib/ghc */
	if (sbx_global_init(&sc, &cause) < 0)
		die("sandbox: %s", cause);
	nslots = c.worker_slots > 0 ? c.worker_slots : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nslots < 1)
		nslots = 1;
	if (c.worker_name[0] != '\0')
		snprintf(host, sizeof host, "%s", c.worker_name);
	else if (gethostname(host, sizeof host) < 0)
		snprintf(host, sizeof host, "localhost");
	worker_id = xasprintf("%s:%ld", host, (long)getpid());
	stop_signals();
	memset(&d, 0, sizeof d);
	d.c = &c;
	d.n = nslots;
	d.slots = xcalloc((size_t)nslots, sizeof *d.slots);
	for (int i = 0; i < nslots; i++) {
		d.slots[i].fd = -1;
		d.slots[i].id = xasprintf("%s/%d", worker_id, i);
	}
	if (q_open(&d.q, &c, worker_id, false, &cause) < 0 ||
	    q_register(&d.q, host, nslots, sbx_cgroup_desc(), &cause) < 0)
		die("%s", cause);
	d.dirty = true;
	log_info("worker %s: %d slots, cgroups %s, %zu languages", worker_id, nslots, sbx_cgroup_desc(), langs.n);
	if (c.noop)
		log_warn("noop = yes: jobs are completed without running them (benchmark only)");

	if (runner_init(&c, &langs, &sc, &cause) < 0)
		die("%s", cause);
	/* Signals reach the main process only inside ppoll: no lost wake-up between a check
	 * and the wait. The slots get the original mask back. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_child;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	for (int i = 0; i < nslots; i++)
		spawn_slot(&d, &langs, &sc, i, worker_id, &orig);
	pfd = xcalloc((size_t)nslots + 1, sizeof *pfd);

	while (!stopping) {
		struct timespec ts;
		uint64_t wait_ms;
		bool any_idle = false;
		pid_t dead;
		int status, np = 0;

		while ((dead = waitpid(-1, &status, WNOHANG)) > 0) {
			for (int i = 0; i < nslots; i++) {
				if (d.slots[i].pid != dead)
					continue;
				log_error("slot %d (pid %ld) ended (status %d); starting it again", i, (long)dead, status);
				if (d.slots[i].fd >= 0)
					close(d.slots[i].fd);
				d.slots[i].fd = -1;
				sleep(1);
				spawn_slot(&d, &langs, &sc, i, worker_id, &orig);
			}
		}
		if (util_mono_ms() >= next_beat) {
			if (d.q.db == NULL || q_heartbeat(&d.q, d.claims, d.claimed, &cause) < 0) {
				if (cause != NULL) {
					log_error("heartbeat: %s", cause);
					free(cause);
					cause = NULL;
				}
				disp_connect(&d, worker_id, host);
			}
			next_beat = util_mono_ms() + (uint64_t)c.heartbeat * 1000;
		}
		/* NOTIFYs that arrived while a statement ran are already read off the socket,
		 * which poll() would not report again: take them first. */
		if (d.q.db != NULL && q_notifications(&d.q, disp_notify, &d, &cause) < 0) {
			log_error("%s", cause);
			free(cause);
			cause = NULL;
			disp_connect(&d, worker_id, host);
		}
		for (int i = 0; i < nslots; i++)
			any_idle = any_idle || (d.slots[i].idle && d.slots[i].fd >= 0);
		/* Claim when a NOTIFY (or a full batch) says jobs may wait, and every poll
		 * seconds in any case: a NOTIFY may have been missed. */
		if (d.q.db != NULL && any_idle && (d.dirty || util_mono_ms() >= next_poll)) {
			if (disp_claim(&d) < 0) {
				disp_connect(&d, worker_id, host);
				d.dirty = false;	/* try again after poll seconds, not in a loop */
			}
			next_poll = util_mono_ms() + (uint64_t)c.poll * 1000;
			continue;	/* slots may still be idle and the batch full: look again */
		}

		if (d.q.db != NULL && PQsocket(d.q.db) >= 0)
			pfd[np++] = (struct pollfd){ .fd = PQsocket(d.q.db), .events = POLLIN };
		for (int i = 0; i < nslots; i++)
			if (d.slots[i].fd >= 0)
				pfd[np++] = (struct pollfd){ .fd = d.slots[i].fd, .events = POLLIN };
		now = util_mono_ms();
		wait_ms = next_beat > now ? next_beat - now : 0;
		if (any_idle && d.q.db != NULL) {
			uint64_t poll_ms = next_poll > now ? next_poll - now : 0;
			if (poll_ms < wait_ms)
				wait_ms = poll_ms;
		}
		ts.tv_sec = (time_t)(wait_ms / 1000);
		ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
		if (ppoll(pfd, (nfds_t)np, &ts, &orig) <= 0)
			continue;	/* timeout or a signal */
		for (int k = 0; k < np; k++) {
			if (pfd[k].revents == 0)
				continue;
			if (d.q.db != NULL && pfd[k].fd == PQsocket(d.q.db)) {
				if (q_notifications(&d.q, disp_notify, &d, &cause) < 0) {
					log_error("%s", cause);
					free(cause);
					cause = NULL;
					disp_connect(&d, worker_id, host);
				}
				continue;
			}
			for (int i = 0; i < nslots; i++)
				if (d.slots[i].fd == pfd[k].fd) {
					disp_read_slot(&d, i);
					break;
				}
		}
	}

	log_info("stopping: asking %d slots to finish", nslots);
	for (int i = 0; i < nslots; i++)
		if (d.slots[i].pid > 0)
			kill(d.slots[i].pid, SIGTERM);
	for (int waited = 0; waited < 100; waited++) {
		int left = 0;
		for (int i = 0; i < nslots; i++) {
			if (d.slots[i].pid > 0 && waitpid(d.slots[i].pid, NULL, WNOHANG) == d.slots[i].pid)
				d.slots[i].pid = 0;
			left += d.slots[i].pid > 0;
		}
		if (left == 0)
			break;
		usleep(100 * 1000);
	}
	for (int i = 0; i < nslots; i++)
		if (d.slots[i].pid > 0) {
			kill(d.slots[i].pid, SIGKILL);
			waitpid(d.slots[i].pid, NULL, 0);
		}
	if (d.q.db == NULL || q_heartbeat(&d.q, d.claims, d.claimed, &cause) < 0 ||
	    q_unregister(&d.q, &cause) < 0)
		log_error("unregister: %s", cause ? cause : "no connection");
	q_close(&d.q);
	for (int i = 0; i < nslots; i++) {
		if (d.slots[i].fd >= 0)
			close(d.slots[i].fd);
		free(d.slots[i].id);
	}
	free(d.slots);
	free(pfd);
	free(worker_id);
	lang_table_free(&langs);
	conf_free(&c);
	log_info("stopped");
	return 0;
}
