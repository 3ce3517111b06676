/* corral-worker: one daemon per host. The main process registers the worker, heartbeats,
 * requeues expired leases and supervises N single-threaded slot processes; each slot
 * claims jobs from PostgreSQL and runs them, one fresh sandbox per job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "job.h"
#include "lang.h"
#include "queue.h"
#include "runner.h"
#include "sbx.h"
#include "util.h"

static volatile sig_atomic_t stopping;

struct slot_ctx {
	struct q		*q;
	const struct q_job	*job;
	uint64_t		 next_renew_ms;
	bool			 lost;		/* lease lost or cancellation asked for */
	bool			 db_down;
};

/* Records that a stop was asked for. */
static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
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

/* Sandbox poll hook: renews the lease, notices cancellation and shutdown. */
static int slot_poll(void *arg)
{
	struct slot_ctx *s = arg;
	char *cause = NULL;
	if (stopping)
		return 1;
	if (!s->db_down && q_drain(s->q, &cause) < 0) {
		log_warn("slot: %s", cause);
		free(cause);
		cause = NULL;
		s->db_down = true;	/* keep running; the result is written after reconnecting */
	}
	if (s->q->cancel_seen)
		return 1;
	if (!s->db_down && util_mono_ms() >= s->next_renew_ms) {
		int rc = q_renew(s->q, s->job, &cause);
		s->next_renew_ms = util_mono_ms() + (uint64_t)s->q->conf->heartbeat * 1000;
		if (rc == 0) {
			s->lost = true;
			return 1;
		}
		if (rc < 0) {
			log_warn("slot: lease renewal: %s", cause);
			free(cause);
			s->db_down = true;
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
		sleep(1);
		if (slot_connect(q, c, id) < 0)
			return;
	}
}

/* Validates the stored request again and runs it. */
static void slot_job(struct q *q, const struct conf *c, const struct lang_table *langs,
    const struct sbx_config *sc, int slot, const char *id, struct q_job *qj)
{
	struct slot_ctx ctx = { .q = q, .job = qj, .next_renew_ms = util_mono_ms() + (uint64_t)c->heartbeat * 1000 };
	struct runner_hooks hooks = { .poll_cb = slot_poll, .arg = &ctx, .extra_fd = PQsocket(q->db) };
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
	if (job_parse(&j, qj->request, c, langs, &err) < 0) {
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

/* The slot process: claim, run, complete, until told to stop. */
static void slot_main(const struct conf *c, const struct lang_table *langs, const struct sbx_config *sc,
    int slot, const char *worker_id, pid_t parent)
{
	char *id = xasprintf("%s/%d", worker_id, slot), *cause = NULL;
	struct q q;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, "corral-slot");
	if (slot_connect(&q, c, id) < 0)
		_exit(0);
	while (!stopping) {
		struct q_job qj;
		if (!c->noop && sbx_pool_fill(sc, slot, (uint64_t)c->disk_default << 20, &cause) < 0) {
			log_warn("%s: preparing a sandbox ahead: %s", id, cause);	/* the job makes its own */
			free(cause);
			cause = NULL;
		}
		int rc = q_claim(&q, &qj, &cause);
		if (rc < 0) {
			log_error("%s: claim: %s", id, cause);
			free(cause);
			cause = NULL;
			q_close(&q);
			sleep(1);
			if (slot_connect(&q, c, id) < 0)
				break;
			continue;
		}
		if (rc == 0) {
			if (q_wait(&q, c->poll * 1000, &cause) < 0) {
				log_error("%s: wait: %s", id, cause);
				free(cause);
				cause = NULL;
				q_close(&q);
				if (slot_connect(&q, c, id) < 0)
					break;
			}
			continue;
		}
		slot_job(&q, c, langs, sc, slot, id, &qj);
		q_job_free(&qj);
	}
	sbx_pool_free();
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

/* Starts slot i; returns its pid. */
static pid_t spawn_slot(const struct conf *c, const struct lang_table *langs, const struct sbx_config *sc,
    int i, const char *worker_id)
{
	pid_t parent = getpid(), pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		slot_main(c, langs, sc, i, worker_id, parent);
	return pid;
}

int main(int argc, char **argv)
{
	const char *conf_arg = NULL;
	struct conf c;
	struct lang_table langs;
	struct sbx_config sc;
	struct q q;
	char host[256], *worker_id, *cause = NULL;
	pid_t *pids;
	int nslots, opt;
	uint64_t next_beat = 0;

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
	if (q_open(&q, &c, worker_id, false, &cause) < 0 ||
	    q_register(&q, host, nslots, sbx_cgroup_desc(), &cause) < 0)
		die("%s", cause);
	log_info("worker %s: %d slots, cgroups %s, %zu languages", worker_id, nslots, sbx_cgroup_desc(), langs.n);
	if (c.noop)
		log_warn("noop = yes: jobs are completed without running them (benchmark only)");

	if (runner_init(&c, &langs, &sc, &cause) < 0)
		die("%s", cause);
	pids = xcalloc((size_t)nslots, sizeof *pids);
	for (int i = 0; i < nslots; i++)
		pids[i] = spawn_slot(&c, &langs, &sc, i, worker_id);

	while (!stopping) {
		pid_t dead;
		int status;
		while ((dead = waitpid(-1, &status, WNOHANG)) > 0) {
			for (int i = 0; i < nslots; i++) {
				if (pids[i] != dead)
					continue;
				log_error("slot %d (pid %ld) ended (status %d); starting it again", i, (long)dead, status);
				sleep(1);
				pids[i] = spawn_slot(&c, &langs, &sc, i, worker_id);
			}
		}
		if (util_mono_ms() >= next_beat) {
			if (q_heartbeat(&q, &cause) < 0) {
				log_error("heartbeat: %s", cause);
				free(cause);
				cause = NULL;
				q_close(&q);
				if (q_open(&q, &c, worker_id, false, &cause) < 0 ||
				    q_register(&q, host, nslots, sbx_cgroup_desc(), &cause) < 0) {
					log_error("reconnect: %s", cause);
					free(cause);
					cause = NULL;
				}
			}
			next_beat = util_mono_ms() + (uint64_t)c.heartbeat * 1000;
		}
		usleep(200 * 1000);
	}

	log_info("stopping: asking %d slots to finish", nslots);
	for (int i = 0; i < nslots; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	for (int waited = 0; waited < 100; waited++) {
		int left = 0;
		for (int i = 0; i < nslots; i++) {
			if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == pids[i])
				pids[i] = 0;
			left += pids[i] > 0;
		}
		if (left == 0)
			break;
		usleep(100 * 1000);
	}
	for (int i = 0; i < nslots; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
		}
	if (q.db == NULL || q_unregister(&q, &cause) < 0)
		log_error("unregister: %s", cause ? cause : "no connection");
	q_close(&q);
	free(pids);
	free(worker_id);
	lang_table_free(&langs);
	conf_free(&c);
	log_info("stopped");
	return 0;
}
