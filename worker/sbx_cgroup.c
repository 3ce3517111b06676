/*
 * sbx_cgroup.c: per-run cgroups, v1 and v2.
 *
 * cg_init (called by sbx_global_init) finds where this process sits in each
 * hierarchy and makes a "corral" parent there; every run gets its own child
 * r<slot>-<pid>-<seq> that the slot creates, limits, attaches the proxy to,
 * reads after the run and removes.
 *
 * v1 (this dev machine): memory (+memsw if swap accounting is on), pids,
 * cpu (CFS quota) and cpuacct (usage), each possibly mounted separately or
 * co-mounted ("cpu,cpuacct"); a controller's mount root is stripped from the
 * path found in /proc/self/cgroup (containers mount a subtree).
 *
 * v2 (pure unified hierarchy, detected by /sys/fs/cgroup/cgroup.controllers):
 * because of the "no internal processes" rule, the processes of our own
 * cgroup are moved into a "supervisor" leaf before the controllers are
 * enabled in cgroup.subtree_control; runs live under <own>/corral.  Under
 * systemd the worker unit needs Delegate=yes.  Written to the kernel docs,
 * not testable on the dev machine.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sbx.h"

#ifndef SBX_CG2_ROOT                  /* overridable at build time to exercise the v2 code on a v1 host */
#define SBX_CG2_ROOT "/sys/fs/cgroup"
#endif

enum { CG_MEMORY, CG_PIDS, CG_CPU, CG_CPUACCT, CG_NCTL };

static const char *const cg_ctl_names[CG_NCTL] = { "memory", "pids", "cpu", "cpuacct" };

static struct {
	enum cg_version ver;
	char *parent[CG_NCTL];   /* v1: the "corral" dir of each hierarchy, NULL if absent */
	bool memsw;              /* v1: memory.memsw.* available */
	char *v2_parent;         /* v2: <own cgroup>/corral */
	bool v2_has[CG_NCTL];    /* v2: controllers enabled for runs (cpuacct = cpu.stat, always) */
	char desc[160];
	unsigned seq;
} cg;

struct cg_run {
	char *dir[CG_NCTL];      /* v1: one per controller; co-mounted ones share a string */
	char *v2dir;
	bool v2_peak_file;       /* memory.peak exists (Linux >= 5.19) */
	uint64_t peak_sample;    /* v2 without memory.peak: max of sampled memory.current */
};

/* Writes the string val to dir/file; returns 0 or -errno. */
static int cg_write(const char *dir, const char *file, const char *val)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

/* Reads dir/file into buf (NUL-terminated); returns bytes read or -errno. */
static ssize_t cg_read(const char *dir, const char *file, char *buf, size_t size)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	return (ssize_t)got;
}

/* Reads a single number from dir/file; returns 0 or -1. */
static int cg_read_u64(const char *dir, const char *file, uint64_t *val)
{
	char buf[64];
	if (cg_read(dir, file, buf, sizeof buf) <= 0)
		return -1;
	if (!isdigit((unsigned char)buf[0]))
		return -1;
	*val = strtoull(buf, NULL, 10);
	return 0;
}

/* Reads the value of "key N" from a flat keyed file such as memory.events; 0 or -1. */
static int cg_read_key(const char *dir, const char *file, const char *key, uint64_t *val)
{
	char buf[4096];
	if (cg_read(dir, file, buf, sizeof buf) <= 0)
		return -1;
	size_t kl = strlen(key);
	for (char *line = buf; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n');
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			*val = strtoull(line + kl + 1, NULL, 10);
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

/* Returns true if dir/file exists. */
static bool cg_exists(const char *dir, const char *file)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

/* Makes dir (mode 0755) unless it exists; 0 or -1 with cause. */
static int cg_mkdir(const char *dir, char **cause)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return sbx_set_error(cause, "mkdir %s: %s", dir, strerror(errno));
	return 0;
}

/* Finds the path of this process in the hierarchy holding controller ctl ("" for v2's "0::"); malloc'd or NULL. */
static char *cg_own_path(const char *ctl)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (f == NULL)
		return NULL;
	char line[4096], *found = NULL;
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		char *list = c1 + 1;
		bool match = false;
		if (*ctl == '\0')
			match = c1 == line + 1 && line[0] == '0' && *list == '\0';
		else
			for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ","))
				if (strcmp(tok, ctl) == 0)
					match = true;
		if (match) {
			found = strdup(c2 + 1);
			break;
		}
	}
	fclose(f);
	return found;
}

/* Finds the v1 mount of controller ctl in mountinfo: *mnt and *root malloc'd; 0 or -1. */
static int cg_v1_mount(const char *ctl, char **mnt, char **root)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return -1;
	char line[4096];
	int rc = -1;
	while (rc < 0 && fgets(line, sizeof line, f) != NULL) {
		/* id parent maj:min root mountpoint opts [tags] - fstype source superopts */
		char *sep = strstr(line, " - ");
		if (sep == NULL)
			continue;
		char fstype[64], source[256], sopts[1024];
		if (sscanf(sep + 3, "%63s %255s %1023s", fstype, source, sopts) != 3 ||
		    strcmp(fstype, "cgroup") != 0)
			continue;
		bool match = false;
		for (char *tok = strtok(sopts, ","); tok != NULL; tok = strtok(NULL, ","))
			if (strcmp(tok, ctl) == 0)
				match = true;
		if (!match)
			continue;
		char r[2048], m[2048];
		if (sscanf(line, "%*s %*s %*s %2047s %2047s", r, m) != 2)
			continue;
		*root = strdup(r);
		*mnt = strdup(m);
		rc = (*root && *mnt) ? 0 : -1;
	}
	fclose(f);
	return rc;
}

/* Removes run cgroups left in parent by processes that no longer exist. */
static void cg_clean_leftovers(const char *parent)
{
	DIR *d = opendir(parent);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		unsigned slot, seq;
		int pid;
		if (sscanf(de->d_name, "r%u-%d-%u", &slot, &pid, &seq) != 3)
			continue;
		if (pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", parent, de->d_name);
		rmdir(path);
	}
	closedir(d);
}

/* Sets up v1: a "corral" parent in each hierarchy; 0, or -1 if memory or pids is missing. */
static int cg_init_v1(char **cause)
{
	for (int i = 0; i < CG_NCTL; i++) {
		char *mnt = NULL, *root = NULL, *own = NULL;
		if (cg_v1_mount(cg_ctl_names[i], &mnt, &root) == 0 &&
		    (own = cg_own_path(cg_ctl_names[i])) != NULL) {
			const char *rel = own;
			size_t rl = strlen(root);
			if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0)
				rel = own + rl;
			if (strcmp(rel, "/") == 0)
				rel = "";
			char *p = NULL;
			if (asprintf(&p, "%s%s/corral", mnt, rel) < 0)
				p = NULL;
			if (p != NULL && cg_mkdir(p, NULL) == 0 && access(p, W_OK) == 0)
				cg.parent[i] = p;
			else
				free(p);
		}
		free(mnt);
		free(root);
		free(own);
	}
	if (cg.parent[CG_MEMORY] == NULL || cg.parent[CG_PIDS] == NULL)
		return sbx_set_error(cause, "cgroup v1: memory and pids controllers are needed (memory %s, pids %s)",
		    cg.parent[CG_MEMORY] ? "ok" : "missing", cg.parent[CG_PIDS] ? "ok" : "missing");
	cg.memsw = cg_exists(cg.parent[CG_MEMORY], "memory.memsw.limit_in_bytes");
	for (int i = 0; i < CG_NCTL; i++)
		if (cg.parent[i] != NULL)
			cg_clean_leftovers(cg.parent[i]);

	char list[64] = "";
	for (int i = 0; i < CG_NCTL; i++)
		if (cg.parent[i] != NULL)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			    list[0] ? "," : "", cg_ctl_names[i]);
	snprintf(cg.desc, sizeof cg.desc, "v1 (%s%s)", list, cg.memsw ? ",memsw" : "");
	cg.ver = CG_V1;
	return 0;
}

/* Returns true if the space-separated list contains word. */
static bool cg_word_in(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += wl)
		if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\n' || p[wl] == '\0'))
			return true;
	return false;
}

/* v2: moves every process of base into base/supervisor so controllers can be enabled in base; 0 or -1. */
static int cg_v2_evacuate(const char *base, char **cause)
{
	char *leaf = NULL;
	if (asprintf(&leaf, "%s/supervisor", base) < 0)
		return sbx_set_error(cause, "out of memory");
	if (cg_mkdir(leaf, cause) < 0) {
		free(leaf);
		return -1;
	}
	char buf[65536];
	for (int round = 0; round < 10; round++) {
		if (cg_read(base, "cgroup.procs", buf, sizeof buf) < 0 || buf[0] == '\0')
			break;
		for (char *tok = strtok(buf, "\n"); tok != NULL; tok = strtok(NULL, "\n"))
			cg_write(leaf, "cgroup.procs", tok);
	}
	free(leaf);
	return 0;
}

/* v2: enables memory, pids and cpu in dir's subtree_control; fills cg.v2_has; 0 or -1. */
static int cg_v2_enable(const char *dir, char **cause)
{
	char avail[1024];
	if (cg_read(dir, "cgroup.controllers", avail, sizeof avail) < 0)
		return sbx_set_error(cause, "cgroup v2: cannot read %s/cgroup.controllers", dir);
	for (int i = 0; i <= CG_CPU; i++) {
		char op[32];
		if (!cg_word_in(avail, cg_ctl_names[i])) {
			cg.v2_has[i] = false;
			continue;
		}
		snprintf(op, sizeof op, "+%s", cg_ctl_names[i]);
		int e = cg_write(dir, "cgroup.subtree_control", op);
		if (e < 0 && i != CG_CPU)
			return sbx_set_error(cause, "cgroup v2: enable %s in %s: %s",
			    cg_ctl_names[i], dir, strerror(-e));
		cg.v2_has[i] = e == 0;
	}
	return 0;
}

/* Sets up v2 under this process's own cgroup; 0 or -1. */
static int cg_init_v2(char **cause)
{
	char *own = cg_own_path(""), *base = NULL;
	if (own == NULL)
		return sbx_set_error(cause, "cgroup v2: no 0:: line in /proc/self/cgroup");
	if (asprintf(&base, SBX_CG2_ROOT "%s", strcmp(own, "/") == 0 ? "" : own) < 0) {
		free(own);
		return sbx_set_error(cause, "out of memory");
	}
	int rc = -1;
	/*
	 * The real root cgroup may hold processes and still delegate; anywhere
	 * else (a unit's cgroup, or "/" seen through a container's cgroup ns)
	 * our processes must first leave for a leaf.  At "/" only try that when
	 * enabling fails, so a worker in the host's root never moves others.
	 */
	if (strcmp(own, "/") != 0 && cg_v2_evacuate(base, cause) < 0)
		goto out;
	if (cg_v2_enable(base, cause) < 0) {
		if (strcmp(own, "/") != 0)
			goto out;
		if (cause != NULL) {
			free(*cause);
			*cause = NULL;
		}
		if (cg_v2_evacuate(base, cause) < 0 || cg_v2_enable(base, cause) < 0)
			goto out;
	}
	if (asprintf(&cg.v2_parent, "%s/corral", base) < 0) {
		cg.v2_parent = NULL;
		sbx_set_error(cause, "out of memory");
		goto out;
	}
	if (cg_mkdir(cg.v2_parent, cause) < 0 || cg_v2_enable(cg.v2_parent, cause) < 0)
		goto out;
	if (!cg.v2_has[CG_MEMORY] || !cg.v2_has[CG_PIDS]) {
		sbx_set_error(cause, "cgroup v2: memory and pids controllers are needed in %s", base);
		goto out;
	}
	cg.v2_has[CG_CPUACCT] = true;  /* cpu.stat usage_usec exists without the cpu controller */
	cg_clean_leftovers(cg.v2_parent);
	snprintf(cg.desc, sizeof cg.desc, "v2 (memory,pids%s)", cg.v2_has[CG_CPU] ? ",cpu" : "");
	cg.ver = CG_V2;
	rc = 0;
out:
	free(own);
	free(base);
	return rc;
}

/* Detects and prepares cgroups for mode (enum sbx_cg_mode); 0, or -1 with cause if unusable. */
int cg_init(int mode, char **cause)
{
	bool v2 = access(SBX_CG2_ROOT "/cgroup.controllers", F_OK) == 0;

	cg.ver = CG_NONE;
	snprintf(cg.desc, sizeof cg.desc, "none (weak limits: rlimits only)");
	switch (mode) {
	case SBX_CG_NONE:
		return 0;
	case SBX_CG_V1:
		return cg_init_v1(cause);
	case SBX_CG_V2:
		return cg_init_v2(cause);
	default:
		return v2 ? cg_init_v2(cause) : cg_init_v1(cause);
	}
}

/* Returns the cgroup version in use. */
enum cg_version cg_version(void)
{
	return cg.ver;
}

/* Returns a static description of the cgroup setup. */
const char *cg_desc(void)
{
	return cg.desc;
}

/* Applies the limits to a v1 run (its tasks: the proxy only) and restarts its peak memory; 0 or -1 with cause. */
static int cg_limit_v1(struct cg_run *run, const struct sbx_limits *lim, char **cause)
{
	char v[64];
	int e;

	if (lim->memory_bytes > 0) {
		snprintf(v, sizeof v, "%" PRIu64, lim->memory_bytes);
		if ((e = cg_write(run->dir[CG_MEMORY], "memory.limit_in_bytes", v)) < 0)
			return sbx_set_error(cause, "cgroup memory.limit_in_bytes: %s", strerror(-e));
		if (cg.memsw && (e = cg_write(run->dir[CG_MEMORY], "memory.memsw.limit_in_bytes", v)) < 0)
			return sbx_set_error(cause, "cgroup memory.memsw.limit_in_bytes: %s", strerror(-e));
	}
	/* the peak so far is the proxy building the root: the run's peak starts now */
	cg_write(run->dir[CG_MEMORY], "memory.max_usage_in_bytes", "0");
	if (cg.memsw)
		cg_write(run->dir[CG_MEMORY], "memory.memsw.max_usage_in_bytes", "0");
	snprintf(v, sizeof v, "%u", lim->processes + 1);     /* + the proxy */
	if ((e = cg_write(run->dir[CG_PIDS], "pids.max", v)) < 0)
		return sbx_set_error(cause, "cgroup pids.max: %s", strerror(-e));
	if (run->dir[CG_CPU] != NULL) {
		cg_write(run->dir[CG_CPU], "cpu.cfs_period_us", "100000");
		if (lim->vcpu > 0)
			snprintf(v, sizeof v, "%u", lim->vcpu * 100000u);
		else
			snprintf(v, sizeof v, "-1");
		if ((e = cg_write(run->dir[CG_CPU], "cpu.cfs_quota_us", v)) < 0)
			return sbx_set_error(cause, "cgroup cpu.cfs_quota_us: %s", strerror(-e));
	}
	return 0;
}

/* Applies the limits to a v2 run (its tasks: the proxy only); 0 or -1 with cause. */
static int cg_limit_v2(struct cg_run *run, const struct sbx_limits *lim, char **cause)
{
	char v[64];
	int e;

	if (lim->memory_bytes > 0) {
		snprintf(v, sizeof v, "%" PRIu64, lim->memory_bytes);
		if ((e = cg_write(run->v2dir, "memory.max", v)) < 0)
			return sbx_set_error(cause, "cgroup memory.max: %s", strerror(-e));
		if (cg_exists(run->v2dir, "memory.swap.max"))
			cg_write(run->v2dir, "memory.swap.max", "0");
	}
	snprintf(v, sizeof v, "%u", lim->processes + 1);     /* + the proxy */
	if ((e = cg_write(run->v2dir, "pids.max", v)) < 0)
		return sbx_set_error(cause, "cgroup pids.max: %s", strerror(-e));
	if (cg.v2_has[CG_CPU]) {
		if (lim->vcpu > 0)
			snprintf(v, sizeof v, "%u 100000", lim->vcpu * 100000u);
		else
			snprintf(v, sizeof v, "max 100000");
		if ((e = cg_write(run->v2dir, "cpu.max", v)) < 0)
			return sbx_set_error(cause, "cgroup cpu.max: %s", strerror(-e));
	}
	run->v2_peak_file = cg_exists(run->v2dir, "memory.peak");
	return 0;
}

/* Creates the cgroup(s) of one run, without limits yet (cg_run_limit); *run malloc'd
 * (cg_run_destroy frees it); 0 or -1. */
int cg_run_create(struct cg_run **runp, int slot, char **cause)
{
	struct cg_run *run = calloc(1, sizeof *run);
	if (run == NULL)
		return sbx_set_error(cause, "out of memory");
	*runp = run;
	if (cg.ver == CG_NONE)
		return 0;

	if (cg.seq % 64 == 63) {         /* runs of slots killed by SIGKILL leave empty cgroups */
		for (int i = 0; i < CG_NCTL; i++)
			if (cg.parent[i] != NULL)
				cg_clean_leftovers(cg.parent[i]);
		if (cg.v2_parent != NULL)
			cg_clean_leftovers(cg.v2_parent);
	}
	char name[64];
	snprintf(name, sizeof name, "r%d-%d-%u", slot, (int)getpid(), cg.seq++);
	if (cg.ver == CG_V2) {
		if (asprintf(&run->v2dir, "%s/%s", cg.v2_parent, name) < 0) {
			run->v2dir = NULL;
			goto oom;
		}
		if (mkdir(run->v2dir, 0755) < 0) {
			sbx_set_error(cause, "mkdir %s: %s", run->v2dir, strerror(errno));
			free(run->v2dir);
			run->v2dir = NULL;
			goto fail;
		}
		return 0;
	}

	for (int i = 0; i < CG_NCTL; i++) {
		if (cg.parent[i] == NULL)
			continue;
		for (int j = 0; j < i; j++)         /* co-mounted: same directory */
			if (cg.parent[j] != NULL && strcmp(cg.parent[i], cg.parent[j]) == 0)
				run->dir[i] = run->dir[j];
		if (run->dir[i] != NULL)
			continue;
		if (asprintf(&run->dir[i], "%s/%s", cg.parent[i], name) < 0) {
			run->dir[i] = NULL;
			goto oom;
		}
		if (mkdir(run->dir[i], 0755) < 0) {
			sbx_set_error(cause, "mkdir %s: %s", run->dir[i], strerror(errno));
			free(run->dir[i]);
			run->dir[i] = NULL;
			goto fail;
		}
	}
	return 0;
oom:
	sbx_set_error(cause, "out of memory");
fail:
	cg_run_destroy(run);
	*runp = NULL;
	return -1;
}

/* Applies the run's limits (before its program starts); 0 or -1 with cause. */
int cg_run_limit(struct cg_run *run, const struct sbx_limits *lim, char **cause)
{
	if (cg.ver == CG_V2)
		return cg_limit_v2(run, lim, cause);
	if (cg.ver == CG_V1)
		return cg_limit_v1(run, lim, cause);
	return 0;
}

/* Moves pid (0: the calling process) into the run's cgroup(s); 0 or -1 with cause. */
int cg_run_attach(struct cg_run *run, pid_t pid, char **cause)
{
	char v[32];
	snprintf(v, sizeof v, "%d", (int)pid);
	if (cg.ver == CG_V2) {
		int e = cg_write(run->v2dir, "cgroup.procs", v);
		if (e < 0)
			return sbx_set_error(cause, "attach to %s: %s", run->v2dir, strerror(-e));
		return 0;
	}
	for (int i = 0; i < CG_NCTL; i++) {
		if (run->dir[i] == NULL)
			continue;
		bool dup = false;
		for (int j = 0; j < i; j++)
			dup |= run->dir[j] == run->dir[i];
		if (dup)
			continue;
		int e = cg_write(run->dir[i], "cgroup.procs", v);
		if (e < 0)
			return sbx_set_error(cause, "attach to %s: %s", run->dir[i], strerror(-e));
	}
	return 0;
}

/* Reads the run's cpu usage so far (and samples memory on old v2 kernels); 0 or -1 if unknown. */
int cg_run_cpu_us(struct cg_run *run, uint64_t *cpu_us)
{
	uint64_t v;
	if (cg.ver == CG_V2) {
		if (!run->v2_peak_file && cg_read_u64(run->v2dir, "memory.current", &v) == 0 &&
		    v > run->peak_sample)
			run->peak_sample = v;
		if (cg_read_key(run->v2dir, "cpu.stat", "usage_usec", &v) < 0)
			return -1;
		*cpu_us = v;
		return 0;
	}
	if (cg.ver == CG_V1 && run->dir[CG_CPUACCT] != NULL &&
	    cg_read_u64(run->dir[CG_CPUACCT], "cpuacct.usage", &v) == 0) {
		*cpu_us = v / 1000;
		return 0;
	}
	return -1;
}

/* Fills st with the run's final cpu, peak memory and OOM kill count (have_* say what is known). */
void cg_run_stats(struct cg_run *run, struct cg_stats *st)
{
	memset(st, 0, sizeof *st);
	if (cg.ver == CG_NONE)
		return;
	st->have_cpu = cg_run_cpu_us(run, &st->cpu_us) == 0;
	if (cg.ver == CG_V2) {
		if (run->v2_peak_file)
			st->have_memory = cg_read_u64(run->v2dir, "memory.peak", &st->memory_peak) == 0;
		else if (run->peak_sample > 0) {
			st->memory_peak = run->peak_sample;
			st->have_memory = true;
		}
		st->have_oom = cg_read_key(run->v2dir, "memory.events", "oom_kill", &st->oom_kills) == 0;
		return;
	}
	const char *m = run->dir[CG_MEMORY];
	st->have_memory = cg_read_u64(m, "memory.max_usage_in_bytes", &st->memory_peak) == 0;
	st->have_oom = cg_read_key(m, "memory.oom_control", "oom_kill", &st->oom_kills) == 0;
}

/* SIGKILLs every task still in the run's cgroup (a safety net: the PID namespace normally did it). */
void cg_run_kill(struct cg_run *run)
{
	if (cg.ver == CG_NONE || run == NULL)
		return;
	if (cg.ver == CG_V2 && cg_write(run->v2dir, "cgroup.kill", "1") == 0)
		return;
	const char *dir = cg.ver == CG_V2 ? run->v2dir : run->dir[CG_PIDS];
	char buf[65536];
	if (cg_read(dir, "cgroup.procs", buf, sizeof buf) <= 0)
		return;
	for (char *tok = strtok(buf, "\n"); tok != NULL; tok = strtok(NULL, "\n")) {
		int pid = atoi(tok);
		if (pid > 1)
			kill(pid, SIGKILL);
	}
}

/* Removes a directory of the run, retrying while the last tasks finish exiting. */
static void cg_rmdir_retry(const char *dir)
{
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			return;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Removes the run's cgroup(s) and frees run. */
void cg_run_destroy(struct cg_run *run)
{
	if (run == NULL)
		return;
	if (run->v2dir != NULL) {
		cg_rmdir_retry(run->v2dir);
		free(run->v2dir);
	}
	for (int i = 0; i < CG_NCTL; i++) {
		if (run->dir[i] == NULL)
			continue;
		bool dup = false;
		for (int j = i + 1; j < CG_NCTL; j++)
			if (run->dir[j] == run->dir[i])
				dup = true;
		if (dup)
			continue;  /* freed with the last controller sharing it */
		cg_rmdir_retry(run->dir[i]);
		free(run->dir[i]);
	}
	free(run);
}
