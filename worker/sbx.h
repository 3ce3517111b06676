/*
 * sbx: the corral sandbox module (one header for sbx.c, sbx_cgroup.c,
 * sbx_seccomp.c; the command-line front end is sbx_cli.c).
 *
 * Process model of one run. A run's sandbox is prepared ahead (sbx_pool_fill when the slot
 * is idle, or spec.prepare_next during the step before), else at the start of sbx_box_run:
 *
 *   slot (root, caller)            proxy (root, PID 1 of new PID ns)      program (slot uid)
 *   ---------------------          ---------------------------------      ------------------
 *   prepare (sbx_pre_start):
 *   make cgroup (no limits), pipes
 *   clone(NEWPID|NEWNS|NEWIPC|
 *         NEWUTS|NEWNET) ---------> PDEATHSIG=SIGKILL; joins the run's
 *   (returns at once)               cgroup itself (the slot never waits
 *                                   on a cgroup migration); tmpfs root,
 *                                   binds, /proc, /dev, /tmp, pivot_root,
 *                                   hostname, lo up; waits for the job
 *   run (sbx_box_run):
 *   write the job's limits to the
 *   cgroup (peak memory restarted),
 *   semitrusted: veth crh<n> with
 *   its peer as eth0 in the proxy's
 *   netns, nft table (sbx_net.c),
 *   job message: limits, argv,
 *   env, box size, address -------> /tmp, /dev/shm resized to the box;
 *                                   semitrusted: eth0 address and route
 *                                   fork ------------------------------> rlimits, setgroups,
 *                                                                        setresgid/uid, caps
 *                                                                        dropped, no_new_privs,
 *                                                                        seccomp, execve
 *   poll: stdin/stdout/stderr,  <-- 'S' (exec done, start time)
 *   status pipe, wall clock,        reap everything; when the main
 *   cgroup cpu, poll_cb             program exits:
 *                               <-- 'R' (wait status, rusage, end time)
 *                                   _exit -> kernel kills the whole
 *                                   PID namespace (daemons included)
 *   waitpid(proxy); drain pipes;
 *   read cgroup stats; rmdir cgroup;
 *   semitrusted: delete veth, table
 *
 * A prepared sandbox serves one run of one box, then is gone; a box (tmpfs) serves one job.
 * Nothing of a job can be in a sandbox prepared before it: the prepared root holds only
 * read-only host binds, generated /etc files, empty /tmp, /dev/shm and the job's own box.
 *
 * Timeouts, cancel and output floods are handled by SIGKILLing the proxy,
 * which takes down every process of the PID namespace.
 *
 * What the callers must know:
 * - sbx_global_init moves the calling process into a private mount namespace
 *   (unshare(CLONE_NEWNS) + MS_REC|MS_PRIVATE on "/"): the box tmpfs mounts
 *   it and its children make never show on the host (inspect them with
 *   nsenter -t <worker pid> -m).  Call it before starting any thread
 *   (unshare(CLONE_NEWNS) fails in a process sharing its fs_struct), as root.
 *   It also sets SIGPIPE to SIG_IGN (the program gets SIG_DFL back).
 *   A second call is a no-op returning 0 (the first config stays).
 * - sbx_box_run must be called from a single-threaded process (a slot) that
 *   does not reap children it did not start (no waitpid(-1) in a SIGCHLD
 *   handler); it blocks until the run is over.
 * - Names: box dirs are <box_dir>/b<slot>-<pid>-<n>, run cgroups
 *   <own cgroup>/corral/r<slot>-<pid>-<n>.  Leftovers of dead processes are
 *   removed by sbx_global_init (and every 64 runs).
 * - Result status, first match wins: killed by us for cancel / wall time /
 *   cpu time / output flood => SBX_CANCELLED / SBX_TIMEOUT / SBX_CPU_LIMIT /
 *   SBX_OUTPUT_LIMIT; else an OOM kill in the run's cgroup => SBX_MEMORY_LIMIT;
 *   else SIGXCPU or cpu time over the limit => SBX_CPU_LIMIT; else SBX_OK.
 * - Output: up to output_bytes per stream are kept; the rest is read, counted
 *   (out_dropped) and flagged (out_truncated); once a stream has dropped more
 *   than 4 x output_bytes + 8 MiB the run is killed (SBX_OUTPUT_LIMIT).
 * - Environment: PATH=/usr/local/bin:/usr/bin:/bin, HOME=/box and
 *   LANG=C.UTF-8, then the job's NAME=VALUE entries: NAME is
 *   [A-Za-z_][A-Za-z0-9_]{0,254}; PATH, HOME and LD_* are refused (a fixed
 *   loader and search path keep the language runtimes predictable); LANG may
 *   be overridden; at most 256 entries.
 * - Box layout: the box tmpfs root is root's and no run sees it; its subdir "box" is /box
 *   and its subdir "artifacts" is /tmp/artifacts in every run (both the slot uid's, 0700).
 *   sbx_box_artifacts reads the regular files of the latter through a dir fd after a run.
 * - Extra read-only host paths (cfg->binds, e.g. /var/lib/ghc) are exposed at the same place.
 * - Without usable cgroups (allow_weak): memory is capped by RLIMIT_DATA,
 *   processes by RLIMIT_NPROC, cpu by RLIMIT_CPU per process; no vcpu quota;
 *   cpu and peak memory come from rusage (unknown for killed runs).
 */
#ifndef CORRAL_SBX_H
#define CORRAL_SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sbx_cg_mode { SBX_CG_AUTO, SBX_CG_V1, SBX_CG_V2, SBX_CG_NONE };

struct sbx_config {            /* global, filled by the worker from its config file */
	const char *box_dir;   /* root-owned 0700 dir for per-box work dirs, e.g. /run/corral/boxes */
	uid_t uid_base;        /* slot N runs as uid_base+N ... */
	gid_t gid_base;        /* ... and gid_base+N; never 0 */
	int cgroup_mode;       /* enum sbx_cg_mode */
	bool allow_weak;       /* run without usable cgroups (rlimits only) instead of refusing */
	const char *const *etc_extra; /* NULL-terminated names under /etc to expose read-only
	                                 besides the defaults ("foo*" = prefix), or NULL */
	const char *const *binds;     /* NULL-terminated absolute host paths (outside /usr, /etc,
	                                 ...) to expose read-only at the same place, e.g.
	                                 /var/lib/ghc; or NULL */
};

struct sbx_limits {
	uint64_t wall_ms;      /* 0 = no wall limit (not advised) */
	uint64_t cpu_ms;       /* 0 = no cpu limit */
	uint64_t memory_bytes; /* 0 = no memory limit */
	uint64_t fsize_bytes;  /* 0 = no file size limit */
	uint64_t output_bytes; /* kept per stream; 0 = 64 KiB */
	uint64_t stack_bytes;  /* 0 = 64 MiB */
	unsigned processes;    /* tasks (threads count); 0 = 64 */
	unsigned open_files;   /* 0 = 1024 */
	unsigned vcpu;         /* cpu quota in cores; 0 = unlimited */
};

struct sbx_run_spec {
	char *const *argv;     /* argv[0]: absolute path inside the box, e.g. /usr/bin/python3 */
	char *const *env;      /* extra NAME=VALUE entries from the job (NULL-terminated or NULL) */
	const void *stdin_data;
	size_t stdin_len;
	struct sbx_limits lim;
	int network;           /* 0 = zerotrust (own netns, lo only); 1 = semitrusted (veth +
	                          NAT egress, see sbx_net.c; never the host, its LAN, private,
	                          loopback, link-local or multicast ranges) */
	int (*poll_cb)(void *arg); /* called at least every 200 ms; nonzero => kill, cancelled */
	void *poll_arg;
	int extra_fd;          /* fd added to the poll set (poll_cb called when readable), -1 if none */
	bool prepare_next;     /* once this run's program started, prepare the box's next sandbox
	                          (e.g. during a compile step, for the run step that follows) */
};

enum sbx_status {
	SBX_OK,                /* ran to completion (whatever its exit code) */
	SBX_TIMEOUT,           /* wall limit */
	SBX_CPU_LIMIT,         /* cpu time limit */
	SBX_MEMORY_LIMIT,      /* the OOM killer fired in the run's cgroup */
	SBX_OUTPUT_LIMIT,      /* killed for flooding stdout/stderr */
	SBX_CANCELLED,         /* poll_cb asked to stop */
	SBX_ERROR              /* sandbox failure (sbx_box_run returned -1) */
};

struct sbx_result {
	enum sbx_status status;
	int exit_code;         /* -1 if killed by a signal */
	int signal;            /* signal that killed the main process, 0 if none */
	uint64_t wall_us, cpu_us, memory_peak_bytes;
	bool oom_killed, timed_out, cpu_exceeded, cancelled, output_exceeded;
	char *out;             /* malloc'd, NUL-terminated, owned by the result */
	size_t out_len;
	bool out_truncated;
	uint64_t out_dropped;
	char *err;
	size_t err_len;
	bool err_truncated;
	uint64_t err_dropped;
	uint64_t setup_us;     /* sbx_box_run called -> program exec'd: the sandbox on the job's path */
	uint64_t teardown_us;  /* program reaped -> sbx_box_run returns (namespace gone, stats read,
	                          cgroup removed) */
	uint64_t cpu_wait_us;  /* the main program's time waiting for a CPU (runnable, not running) */
	bool prepared;         /* the run used a sandbox prepared ahead of it */
};

struct sbx_box;

struct sbx_artifact {          /* one file returned to the client */
	char *name;            /* malloc'd */
	char *data;            /* malloc'd */
	size_t len;
};

struct sbx_artifacts {         /* what a job returns, with its caps; zero-initialise */
	size_t max_files;      /* caps: files, bytes of one file, bytes in all */
	uint64_t max_file, max_total;
	struct sbx_artifact *v;
	size_t n;
	uint64_t total;        /* bytes in v */
	char *note;            /* malloc'd: what was left out and why; NULL if nothing */
};

/* --- sbx.c: public API --- */
int sbx_global_init(struct sbx_config *cfg, char **cause);
const char *sbx_cgroup_desc(void);
int sbx_box_init(struct sbx_box **box, const struct sbx_config *cfg, int slot,
    uint64_t disk_bytes, char **cause);
int sbx_pool_fill(const struct sbx_config *cfg, int slot, uint64_t disk_bytes, char **cause);
void sbx_pool_free(void);
int sbx_box_put(struct sbx_box *box, const char *name, const void *data,
    size_t len, mode_t mode, char **cause);
int sbx_box_get(struct sbx_box *box, const char *name, size_t max, char **data,
    size_t *len, char **cause);
int sbx_box_run(struct sbx_box *box, const struct sbx_run_spec *spec,
    struct sbx_result *res, char **cause);
void sbx_result_free(struct sbx_result *res);
void sbx_box_free(struct sbx_box *box);
int sbx_box_artifacts(struct sbx_box *box, struct sbx_artifacts *a, char **cause);
int sbx_artifacts_add(struct sbx_artifacts *a, const char *name, char *data, size_t len);
void sbx_artifacts_note(struct sbx_artifacts *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sbx_artifacts_free(struct sbx_artifacts *a);
const char *sbx_status_name(enum sbx_status st);
bool sbx_valid_name(const char *name, size_t len);
int sbx_set_error(char **cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- sbx_cgroup.c: cgroup v1/v2 (internal to the module) --- */
enum cg_version { CG_NONE = 0, CG_V1 = 1, CG_V2 = 2 };

struct cg_run;                 /* one run's cgroup(s) */

struct cg_stats {
	uint64_t cpu_us;           /* cpu time used by the run's cgroup */
	uint64_t memory_peak;      /* bytes, 0 if unknown */
	uint64_t oom_kills;        /* OOM kills inside the cgroup */
	bool have_cpu, have_memory, have_oom;
};

int cg_init(int mode, char **cause);
enum cg_version cg_version(void);
const char *cg_desc(void);
int cg_run_create(struct cg_run **run, int slot, char **cause);
int cg_run_limit(struct cg_run *run, const struct sbx_limits *lim, char **cause);
int cg_run_attach(struct cg_run *run, pid_t pid, char **cause);
int cg_run_cpu_us(struct cg_run *run, uint64_t *cpu_us);
void cg_run_stats(struct cg_run *run, struct cg_stats *st);
void cg_run_kill(struct cg_run *run);
void cg_run_destroy(struct cg_run *run);

/* --- sbx_net.c: semitrusted egress (internal to the module) --- */
struct sbn_link {              /* one run's veth + nft table */
	int idx;               /* crh<idx> / corral_<idx>, -1 if none */
	uint32_t host_ip, box_ip; /* network byte order */
	bool table;
};
int sbn_init(char **cause);
int sbn_up(struct sbn_link *l, pid_t proxy, char **cause);
void sbn_down(struct sbn_link *l);
int sbn_ifconf(const char *ifname, uint32_t addr, uint32_t mask);
int sbn_box_side(uint32_t box_ip, uint32_t gw_ip);

/* --- sbx_seccomp.c: the filter (internal to the module) --- */
struct sock_fprog;
int sbx_seccomp_build(struct sock_fprog **prog, char **cause);
void sbx_seccomp_free(struct sock_fprog *prog);

#endif
