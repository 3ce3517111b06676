/*
 * sbx.c: the sandbox core: global setup, boxes, one run (slot side, proxy,
 * program).  See sbx.h for the process model.
 *
 * Rules this file keeps (see ../shared/reference/peers.md):
 * - no path-based file operation by root inside a directory the sandbox
 *   can write: files go into the box with openat(O_CREAT|O_EXCL|O_NOFOLLOW)
 *   on the box dir fd; cleanup is umount(MNT_DETACH) + rmdir, never a walk
 *   or a chown of paths inside the box;
 * - no shell and no command strings: execve with an argv array;
 * - after clone the proxy and the program only use memory prepared before
 *   the clone (the slot is single-threaded, so libc locks are free anyway).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>

#include "sbx.h"

#define SBX_PATH_ENV   "PATH=/usr/local/bin:/usr/bin:/bin"
#define SBX_HOME_ENV   "HOME=/box"
#define SBX_LANG_ENV   "LANG=C.UTF-8"
#define SBX_HOSTNAME   "corral"
#define SBX_MAX_ENV    256
#define SBX_MAX_ETC    64
#define SBX_TICK_US    100000          /* cpu / poll_cb check period */
#define SBX_SETUP_US   (10 * 1000000)  /* proxy must exec the program within this */
#define SBX_FLOOD_SLACK (8u << 20)     /* output read beyond 4 x cap + this => kill */
#define SBX_SUB_WORK    "box"          /* box tmpfs subdir shown as /box */
#define SBX_SUB_ARTIFACTS "artifacts"  /* box tmpfs subdir shown as /tmp/artifacts */
#define SBX_ART_SCAN   4096            /* directory entries looked at when collecting */
#define SBX_MAX_BINDS  32

/* Module state, set once by sbx_global_init. */
static struct {
	bool ready;
	struct sbx_config cfg;   /* copy; box_dir strdup'd */
	int box_dir_fd;
	char *root_mnt;          /* <box_dir>/.root: where each proxy builds its root */
	struct sock_fprog *filter;
	cap_t nocaps;            /* an empty capability set */
	char *etc[SBX_MAX_ETC];  /* /etc entries to expose (relative names) */
	size_t n_etc;
	char *binds[SBX_MAX_BINDS]; /* host paths outside /usr exposed read-only at the same place */
	size_t n_binds;
	unsigned seq;
	char *net_cause;         /* why semitrusted is unavailable, NULL if it is */
	struct sbx_box *pool;    /* a box with a prepared sandbox for this process's next job */
	struct {                 /* finished runs whose proxy is still to reap, cgroup to remove */
		pid_t proxy;
		struct cg_run *cg;
	} defer[8];
	size_t n_defer;
} G = { .box_dir_fd = -1 };

/* A prepared sandbox: the run's cgroup made, the proxy cloned into fresh namespaces, where
 * it joins the cgroup, builds the root and waits on the sync pipe for the job (sbx_job). */
struct sbx_pre {
	pid_t proxy;             /* -1 once reaped */
	struct cg_run *cg;
	int in_w, out_r, err_r, sync_w, stat_r;   /* the slot's ends of the proxy's pipes */
};

static void sbx_pre_free(struct sbx_pre *p);
static bool sbx_pre_alive(struct sbx_pre *p);

struct sbx_box {
	int slot;
	uid_t uid;
	gid_t gid;
	uint64_t disk_bytes;
	char *name;              /* entry in box_dir */
	char *path;              /* box_dir/name (root-only parent) */
	int dirfd;               /* the work dir (/box): SBX_SUB_WORK of the box tmpfs */
	int artfd;               /* the artifacts dir (/tmp/artifacts): SBX_SUB_ARTIFACTS */
	struct sbx_pre *pre;     /* the box's next sandbox, prepared ahead; NULL if none */
};

/* /etc entries exposed read-only by default (never shadow, ssl/private, ...). */
static const char *const sbx_etc_default[] = {
	"resolv.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
	"timezone", "alternatives", "ssl/certs", "ssl/openssl.cnf", "mime.types",
	"protocols", "services", "gai.conf", "host.conf", "networks", "os-release",
	"debian_version", "java-*", "python3*", "perl", "fpc*", "gnucobol", NULL,
};

/* Top-level directories of the host exposed read-only (or recreated as symlinks). */
static const char *const sbx_top_dirs[] = {
	"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL,
};

/* Device nodes of the minimal /dev. */
static const struct { const char *name; unsigned maj, min; } sbx_devs[] = {
	{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
	{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

/* Message from the proxy to the slot on the status pipe (one write each, < PIPE_BUF). */
struct sbx_msg {
	char type;               /* 'S' started, 'R' result, 'E' error */
	int status;              /* wait status of the main program ('R') */
	uint64_t t_us;           /* CLOCK_MONOTONIC: exec done ('S') or program reaped ('R') */
	struct rusage ru;        /* main program ('R') */
	struct rusage ru_children; /* everything the proxy reaped ('R') */
	uint64_t run_delay_ns;   /* time the main program waited for a CPU ('R'; its schedstat) */
	char text[256];          /* 'E' */
};

/* What the proxy and the program need: the box part is set before clone (sbx_ctx_box),
 * the job part (argv, envp, lim, network) arrives in the job message (sbx_job). */
struct sbx_ctx {
	const struct sbx_box *box;
	struct cg_run *cg;       /* the proxy joins it first thing */
	uint64_t disk_bytes;     /* size /tmp and /dev/shm are mounted with */
	char *const *argv;
	char **envp;
	struct sbx_limits lim;
	int network;
	char passwd[512], group[256];
	char tmp_opts[128], shm_opts[128];
	int in_r, out_w, err_w, sync_r, stat_w;
};

/* The job message, slot -> prepared proxy on the sync pipe; then blob bytes: argc argv
 * strings then envc environment strings, each NUL-terminated. */
struct sbx_job {
	char go;                 /* 'j' */
	uint32_t box_ip, gw_ip;  /* network byte order; 0 for zerotrust */
	int network;
	struct sbx_limits lim;
	uint64_t disk_bytes;     /* the box's size: /tmp and /dev/shm are resized to it */
	uint32_t argc, envc, blob;
};

#define SBX_MAX_BLOB   (4u << 20)      /* argv + environment bytes of one run */

/* Failure report of the program child before execve. */
struct sbx_exec_err {
	int step;                /* -1: about to execve (t_us set); else index in sbx_steps */
	int err;
	uint64_t t_us;
};

static const char *const sbx_steps[] = {
	"setting up fds", "chdir /box", "setrlimit", "setgroups", "setresgid",
	"dropping the capability bounding set", "clearing ambient capabilities",
	"setresuid", "clearing capabilities", "checking credentials",
	"no_new_privs", "loading seccomp", "execve", "reading the job",
};

/* Sets *cause (if cause is not NULL) to a malloc'd message; always returns -1. */
int sbx_set_error(char **cause, const char *fmt, ...)
{
	if (cause == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) < 0)
		*cause = NULL;
	va_end(ap);
	return -1;
}

/* Returns the static name of a status ("ok", "timeout", ...). */
const char *sbx_status_name(enum sbx_status st)
{
	switch (st) {
	case SBX_OK: return "ok";
	case SBX_TIMEOUT: return "timeout";
	case SBX_CPU_LIMIT: return "cpu_limit";
	case SBX_MEMORY_LIMIT: return "memory_limit";
	case SBX_OUTPUT_LIMIT: return "output_limit";
	case SBX_CANCELLED: return "cancelled";
	case SBX_ERROR: return "error";
	}
	return "error";
}

/* Returns the static description of the cgroup setup, for /health and logs. */
const char *sbx_cgroup_desc(void)
{
	return cg_desc();
}

/* Returns CLOCK_MONOTONIC in microseconds. */
static uint64_t sbx_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* True if name is a valid file name for the box: not empty, <= 255 bytes, no '/', no NUL, not . or .. */
bool sbx_valid_name(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > 255)
		return false;
	if (memchr(name, '\0', len) != NULL || memchr(name, '/', len) != NULL)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return true;
}

/* True if pid names a live process (or one we may not signal). */
static bool sbx_pid_alive(int pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* Removes empty box dirs left in box_dir by dead processes (their mounts died with their mount ns). */
static void sbx_clean_boxes(void)
{
	int fd = openat(G.box_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		int slot, pid;
		unsigned seq;
		if (sscanf(de->d_name, "b%d-%d-%u", &slot, &pid, &seq) == 3 && !sbx_pid_alive(pid))
			unlinkat(G.box_dir_fd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* Adds one /etc entry name (strdup'd) to G.etc, skipping anything that looks secret. */
static void sbx_etc_add(const char *name)
{
	if (G.n_etc >= SBX_MAX_ETC || name[0] == '/' || name[0] == '\0' ||
	    strstr(name, "..") != NULL || strstr(name, "shadow") != NULL ||
	    strstr(name, "private") != NULL || strncmp(name, "sudo", 4) == 0 ||
	    strncmp(name, "ssh", 3) == 0)
		return;
	for (size_t i = 0; i < G.n_etc; i++)
		if (strcmp(G.etc[i], name) == 0)
			return;
	char *s = strdup(name);
	if (s != NULL)
		G.etc[G.n_etc++] = s;
}

/* Expands one pattern ("foo" or "foo*") against the host /etc into G.etc. */
static void sbx_etc_expand(const char *pat)
{
	size_t pl = strlen(pat);
	if (pl == 0 || pat[pl - 1] != '*') {
		sbx_etc_add(pat);
		return;
	}
	DIR *d = opendir("/etc");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, pat, pl - 1) == 0 && de->d_name[0] != '.')
			sbx_etc_add(de->d_name);
	closedir(d);
}

/* Adds one extra read-only host path (strdup'd) to G.binds: absolute, no "." or ".."
 * component, no "//", not under a place the sandbox builds itself; paths under the
 * directories exposed anyway (usr, lib, ...) are dropped; 0 or -1 with cause. */
static int sbx_bind_add(const char *path, char **cause)
{
	static const char *const own[] = { "etc", "proc", "dev", "tmp", "box", "sys", "run", "root", NULL };
	size_t n = strlen(path), first;
	if (n < 2 || n >= 512 || path[0] != '/' || path[n - 1] == '/' || strstr(path, "//") != NULL ||
	    strstr(path, "/./") != NULL || strstr(path, "/../") != NULL ||
	    (n >= 2 && strcmp(path + n - 2, "/.") == 0) || (n >= 3 && strcmp(path + n - 3, "/..") == 0))
		return sbx_set_error(cause, "bind path '%s' must be an absolute, normalized path", path);
	first = strcspn(path + 1, "/");
	for (size_t i = 0; own[i] != NULL; i++)
		if (strlen(own[i]) == first && strncmp(path + 1, own[i], first) == 0)
			return sbx_set_error(cause, "bind path '%s' is in a directory the sandbox builds", path);
	for (size_t i = 0; sbx_top_dirs[i] != NULL; i++)
		if (strlen(sbx_top_dirs[i]) == first && strncmp(path + 1, sbx_top_dirs[i], first) == 0)
			return 0;               /* already visible */
	for (size_t i = 0; i < G.n_binds; i++)
		if (strcmp(G.binds[i], path) == 0)
			return 0;
	if (G.n_binds >= SBX_MAX_BINDS)
		return sbx_set_error(cause, "more than %d bind paths", SBX_MAX_BINDS);
	if ((G.binds[G.n_binds] = strdup(path)) == NULL)
		return sbx_set_error(cause, "out of memory");
	G.n_binds++;
	return 0;
}

/* Opens (creating it 0700 if missing) and checks box_dir: a root-owned directory nobody else can use; 0 or -1. */
static int sbx_open_box_dir(const char *dir, char **cause)
{
	if (dir == NULL || dir[0] != '/')
		return sbx_set_error(cause, "box_dir must be an absolute path");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return sbx_set_error(cause, "mkdir %s: %s", dir, strerror(errno));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sbx_set_error(cause, "open %s: %s", dir, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_uid != 0 || (sb.st_mode & 077) != 0) {
		close(fd);
		return sbx_set_error(cause, "%s must be a directory owned by root with mode 0700", dir);
	}
	if (mkdirat(fd, ".root", 0755) < 0 && errno != EEXIST) {
		int e = errno;
		close(fd);
		return sbx_set_error(cause, "mkdir %s/.root: %s", dir, strerror(e));
	}
	G.box_dir_fd = fd;
	return 0;
}

/* Once per worker: private mount ns, SIGPIPE ignored, box_dir, cgroups, seccomp; 0 or -1 with cause. */
int sbx_global_init(struct sbx_config *cfg, char **cause)
{
	char *cgcause = NULL;

	if (G.ready)
		return 0;
	if (geteuid() != 0)
		return sbx_set_error(cause, "the sandbox needs root");
	if (cfg->uid_base == 0 || cfg->gid_base == 0 ||
	    cfg->uid_base > (uid_t)INT32_MAX - 65536 || cfg->gid_base > (gid_t)INT32_MAX - 65536)
		return sbx_set_error(cause, "uid_base and gid_base must be in 1..2^31-65537");
	if (cfg->cgroup_mode == SBX_CG_NONE && !cfg->allow_weak)
		return sbx_set_error(cause, "cgroups disabled but weak limits not allowed");

	signal(SIGPIPE, SIG_IGN);
	if (unshare(CLONE_NEWNS) < 0)
		return sbx_set_error(cause, "unshare(CLONE_NEWNS): %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return sbx_set_error(cause, "making / private: %s", strerror(errno));
	if (sbx_open_box_dir(cfg->box_dir, cause) < 0)
		return -1;

	if (cg_init(cfg->cgroup_mode, &cgcause) < 0) {
		if (!cfg->allow_weak) {
			sbx_set_error(cause, "no usable cgroups (%s); set allow_weak to run with weaker limits",
			    cgcause ? cgcause : "?");
			free(cgcause);
			return -1;
		}
		free(cgcause);
		cg_init(SBX_CG_NONE, NULL);
	}
	if (sbx_seccomp_build(&G.filter, cause) < 0)
		return -1;
	if ((G.nocaps = cap_init()) == NULL)
		return sbx_set_error(cause, "cap_init failed");
	if (sbn_init(&G.net_cause) < 0 && G.net_cause == NULL)
		G.net_cause = strdup("?");

	for (size_t i = 0; sbx_etc_default[i] != NULL; i++)
		sbx_etc_expand(sbx_etc_default[i]);
	for (size_t i = 0; cfg->etc_extra != NULL && cfg->etc_extra[i] != NULL; i++)
		sbx_etc_expand(cfg->etc_extra[i]);
	for (size_t i = 0; cfg->binds != NULL && cfg->binds[i] != NULL; i++)
		if (sbx_bind_add(cfg->binds[i], cause) < 0)
			return -1;

	G.cfg = *cfg;
	G.cfg.etc_extra = NULL;
	G.cfg.binds = NULL;
	if ((G.cfg.box_dir = strdup(cfg->box_dir)) == NULL ||
	    asprintf(&G.root_mnt, "%s/.root", cfg->box_dir) < 0)
		return sbx_set_error(cause, "out of memory");
	sbx_clean_boxes();
	G.ready = true;
	return 0;
}

/* Makes one subdir of a fresh box tmpfs, owned by the slot uid, mode 0700; its fd or -1. */
static int sbx_box_subdir(const struct sbx_box *box, int rootfd, const char *name)
{
	int fd;
	if (mkdirat(rootfd, name, 0700) < 0 ||
	    (fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (fchown(fd, box->uid, box->gid) < 0 || fchmod(fd, 0700) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Formats the mount options of a box tmpfs of the given size into opts. */
static void sbx_box_opts(char *opts, size_t size, uint64_t disk_bytes, bool remount)
{
	uint64_t inodes = disk_bytes / 1024;
	inodes = inodes < 4096 ? 4096 : inodes > 1048576 ? 1048576 : inodes;
	snprintf(opts, size, "size=%" PRIu64 ",nr_inodes=%" PRIu64 "%s", disk_bytes, inodes,
	    remount ? "" : ",mode=0755,uid=0,gid=0");
}

/* Creates a fresh box: a size-limited tmpfs under box_dir with the slot uid's work and artifacts dirs; 0 or -1. */
static int sbx_box_new(struct sbx_box **boxp, const struct sbx_config *cfg, int slot,
    uint64_t disk_bytes, char **cause)
{
	*boxp = NULL;
	if (!G.ready)
		return sbx_set_error(cause, "sbx_global_init was not called");
	if (slot < 0 || slot >= 65536)
		return sbx_set_error(cause, "bad slot %d", slot);
	struct sbx_box *box = calloc(1, sizeof *box);
	if (box == NULL)
		return sbx_set_error(cause, "out of memory");
	box->slot = slot;
	box->uid = cfg->uid_base + (uid_t)slot;
	box->gid = cfg->gid_base + (gid_t)slot;
	box->disk_bytes = disk_bytes ? disk_bytes : 64u << 20;
	box->dirfd = -1;
	box->artfd = -1;
	if (asprintf(&box->name, "b%d-%d-%u", slot, (int)getpid(), G.seq++) < 0 ||
	    asprintf(&box->path, "%s/%s", G.cfg.box_dir, box->name) < 0) {
		free(box);
		return sbx_set_error(cause, "out of memory");
	}
	if (mkdirat(G.box_dir_fd, box->name, 0700) < 0) {
		sbx_set_error(cause, "mkdir %s: %s", box->path, strerror(errno));
		free(box->name);
		free(box->path);
		free(box);
		return -1;
	}

	char opts[256];
	/* the tmpfs root is root's and never shown to a run: runs see its two subdirs only, so
	 * no run can rename or replace them and the proxy may bind them by path */
	sbx_box_opts(opts, sizeof opts, box->disk_bytes, false);
	if (mount("corral-box", box->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		sbx_set_error(cause, "mount tmpfs on %s: %s", box->path, strerror(errno));
		goto fail;
	}
	int rootfd = openat(G.box_dir_fd, box->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct statfs sf;
	if (rootfd < 0 || fstatfs(rootfd, &sf) < 0 || sf.f_type != TMPFS_MAGIC ||
	    (box->dirfd = sbx_box_subdir(box, rootfd, SBX_SUB_WORK)) < 0 ||
	    (box->artfd = sbx_box_subdir(box, rootfd, SBX_SUB_ARTIFACTS)) < 0) {
		sbx_set_error(cause, "making the box tmpfs %s failed: %s", box->path, strerror(errno));
		if (rootfd >= 0)
			close(rootfd);
		goto fail;
	}
	close(rootfd);
	*boxp = box;
	return 0;
fail:
	sbx_box_free(box);
	return -1;
}

/* Gives the box for slot's next job: the pool's (prepared ahead by sbx_pool_fill, resized to
 * disk_bytes if needed) or a fresh one; *boxp freed by sbx_box_free; 0 or -1 with cause. */
int sbx_box_init(struct sbx_box **boxp, const struct sbx_config *cfg, int slot,
    uint64_t disk_bytes, char **cause)
{
	uint64_t want = disk_bytes ? disk_bytes : 64u << 20;
	struct sbx_box *b = G.pool;

	if (b != NULL && b->slot == slot && b->uid == cfg->uid_base + (uid_t)slot &&
	    b->gid == cfg->gid_base + (gid_t)slot) {
		G.pool = NULL;
		char opts[256];
		sbx_box_opts(opts, sizeof opts, want, true);
		if (b->disk_bytes == want ||
		    mount(NULL, b->path, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) == 0) {
			b->disk_bytes = want;
			*boxp = b;
			return 0;
		}
		sbx_box_free(b);
	}
	return sbx_box_new(boxp, cfg, slot, disk_bytes, cause);
}

/* Writes a new file (name must not exist) into the box, owned by the slot uid; 0 or -1 with cause. */
int sbx_box_put(struct sbx_box *box, const char *name, const void *data, size_t len,
    mode_t mode, char **cause)
{
	if (name == NULL || !sbx_valid_name(name, strlen(name)))
		return sbx_set_error(cause, "invalid file name");
	int fd = openat(box->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY |
	    O_CLOEXEC, 0600);
	if (fd < 0)
		return sbx_set_error(cause, "create %s: %s", name, strerror(errno));
	const char *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			unlinkat(box->dirfd, name, 0);
			return sbx_set_error(cause, "write %s: %s", name,
			    e == ENOSPC ? "disk limit of the box reached" : strerror(e));
		}
		done += (size_t)n;
	}
	if (fchown(fd, box->uid, box->gid) < 0 || fchmod(fd, mode & 0777) < 0) {
		int e = errno;
		close(fd);
		unlinkat(box->dirfd, name, 0);
		return sbx_set_error(cause, "chown/chmod %s: %s", name, strerror(e));
	}
	close(fd);
	return 0;
}

/* Reads up to size bytes of an opened regular file and closes fd; returns a malloc'd,
 * NUL-terminated buffer (caller frees) with *got bytes, or NULL when out of memory. */
static char *sbx_read_fd(int fd, size_t size, size_t *got)
{
	char *buf = malloc(size + 1);
	*got = 0;
	if (buf == NULL) {
		close(fd);
		return NULL;
	}
	while (*got < size) {
		ssize_t n = read(fd, buf + *got, size - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*got += (size_t)n;
	}
	close(fd);
	buf[*got] = '\0';
	return buf;
}

/*
 * Reads a regular file the job left in the box (an artifact) into *data
 * (malloc'd, NUL-terminated, caller frees): at most max bytes, else an error.
 * Symlinks (O_NOFOLLOW), FIFOs (O_NONBLOCK, then S_ISREG) and names with '/'
 * are refused, so a job cannot make root read a host file or hang.
 */
int sbx_box_get(struct sbx_box *box, const char *name, size_t max, char **data, size_t *len,
    char **cause)
{
	struct stat sb;

	*data = NULL;
	*len = 0;
	if (name == NULL || !sbx_valid_name(name, strlen(name)))
		return sbx_set_error(cause, "invalid file name");
	int fd = openat(box->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return sbx_set_error(cause, "open %s: %s", name,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return sbx_set_error(cause, "%s is not a regular file", name);
	}
	if ((uint64_t)sb.st_size > max) {
		close(fd);
		return sbx_set_error(cause, "%s is larger than %zu bytes", name, max);
	}
	if ((*data = sbx_read_fd(fd, (size_t)sb.st_size, len)) == NULL)
		return sbx_set_error(cause, "out of memory");
	return 0;
}

/* Appends "; "-separated text to the artifacts' note (bounded: past 2000 bytes, "..." once). */
void sbx_artifacts_note(struct sbx_artifacts *a, const char *fmt, ...)
{
	char line[512], *n;
	size_t old = a->note != NULL ? strlen(a->note) : 0;
	va_list ap;
	if (old >= 2000) {
		if (strcmp(a->note + old - 3, "...") != 0 && (n = realloc(a->note, old + 6)) != NULL) {
			memcpy(n + old, "; ...", 6);
			a->note = n;
		}
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if ((n = realloc(a->note, old + strlen(line) + 3)) == NULL)
		return;
	if (old > 0) {
		memcpy(n + old, "; ", 2);
		old += 2;
	}
	strcpy(n + old, line);
	a->note = n;
}

/* Takes data (malloc'd) as the next artifact if the caps allow it; else frees it, notes why
 * and returns -1. */
int sbx_artifacts_add(struct sbx_artifacts *a, const char *name, char *data, size_t len)
{
	struct sbx_artifact *v;
	char *nm;
	if (a->n >= a->max_files) {
		sbx_artifacts_note(a, "%s: over the limit of %zu files", name, a->max_files);
	} else if (len > a->max_file) {
		sbx_artifacts_note(a, "%s: %zu bytes, over the limit of %" PRIu64 " bytes per file",
		    name, len, a->max_file);
	} else if (a->total + len > a->max_total) {
		sbx_artifacts_note(a, "%s: over the limit of %" PRIu64 " bytes in all", name, a->max_total);
	} else if ((nm = strdup(name)) != NULL && (v = realloc(a->v, (a->n + 1) * sizeof *v)) != NULL) {
		a->v = v;
		a->v[a->n].name = nm;
		a->v[a->n].data = data;
		a->v[a->n].len = len;
		a->n++;
		a->total += len;
		return 0;
	} else {
		free(nm);
		sbx_artifacts_note(a, "%s: out of memory", name);
	}
	free(data);
	return -1;
}

/* Orders names (for qsort). */
static int sbx_name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Reads one entry of the artifacts dir (dfd) as the next artifact: regular files only,
 * never through a link (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK, then S_ISREG). */
static void sbx_artifact_take(struct sbx_artifacts *a, int dfd, const char *name)
{
	struct stat sb;
	char *buf;
	size_t got;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		sbx_artifacts_note(a, "%s: %s", name, errno == ELOOP ?
		    "a symbolic link (not followed)" : strerror(errno));
		return;
	}
	if (fstat(fd, &sb) < 0)
		sb.st_mode = 0;
	if (!S_ISREG(sb.st_mode)) {
		sbx_artifacts_note(a, "%s: %s", name, S_ISDIR(sb.st_mode) ?
		    "a directory (not looked into)" : "not a regular file");
		close(fd);
		return;
	}
	if (a->n >= a->max_files || (uint64_t)sb.st_size > a->max_file ||
	    a->total + (uint64_t)sb.st_size > a->max_total) {
		close(fd);
		sbx_artifacts_add(a, name, NULL, (size_t)sb.st_size);   /* notes why */
		return;
	}
	if ((buf = sbx_read_fd(fd, (size_t)sb.st_size, &got)) == NULL) {
		sbx_artifacts_note(a, "%s: out of memory", name);
		return;
	}
	sbx_artifacts_add(a, name, buf, got);
}

/*
 * Collects the files a run left in /tmp/artifacts (the box's artifacts dir, read through
 * the fd root opened before any run) into a, in name order, within its caps: regular files
 * only, no link followed, no subdirectory entered; what is left out is noted. Call it when
 * no program of the box runs any more. 0, or -1 with cause.
 */
int sbx_box_artifacts(struct sbx_box *box, struct sbx_artifacts *a, char **cause)
{
	char **names = NULL;
	size_t n = 0, more = 0;
	struct dirent *de;
	int dfd = openat(box->artfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (d == NULL) {
		if (dfd >= 0)
			close(dfd);
		return sbx_set_error(cause, "opening the artifacts dir: %s", strerror(errno));
	}
	if ((names = calloc(SBX_ART_SCAN, sizeof *names)) == NULL) {
		closedir(d);
		return sbx_set_error(cause, "out of memory");
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n >= SBX_ART_SCAN || !sbx_valid_name(de->d_name, strlen(de->d_name)) ||
		    (names[n] = strdup(de->d_name)) == NULL)
			more++;
		else
			n++;
	}
	qsort(names, n, sizeof *names, sbx_name_cmp);
	for (size_t i = 0; i < n; i++)
		sbx_artifact_take(a, dirfd(d), names[i]);
	if (more > 0)
		sbx_artifacts_note(a, "%zu more entries not looked at", more);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return 0;
}

/* Frees what the artifacts hold (the caps stay). */
void sbx_artifacts_free(struct sbx_artifacts *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].name);
		free(a->v[i].data);
	}
	free(a->v);
	free(a->note);
	a->v = NULL;
	a->note = NULL;
	a->n = 0;
	a->total = 0;
}

/* Unmounts (MNT_DETACH) and removes the box, frees it; never walks paths inside the box. */
void sbx_box_free(struct sbx_box *box)
{
	if (box == NULL)
		return;
	sbx_pre_free(box->pre);
	if (box->dirfd >= 0)
		close(box->dirfd);
	if (box->artfd >= 0)
		close(box->artfd);
	if (box->path != NULL) {
		umount2(box->path, MNT_DETACH | UMOUNT_NOFOLLOW);
		unlinkat(G.box_dir_fd, box->name, AT_REMOVEDIR);
	}
	free(box->name);
	free(box->path);
	free(box);
}

/* Frees what a result owns. */
void sbx_result_free(struct sbx_result *res)
{
	if (res == NULL)
		return;
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
	res->out_len = res->err_len = 0;
}

/* ------------------------------------------------------------------ */
/* Inside: the proxy (PID 1 of the new namespaces) and the program.    */
/* Only async-signal-safe-ish calls on memory prepared before clone.   */
/* ------------------------------------------------------------------ */

/* Writes a message to the slot on the status pipe (fd 4 in the proxy). */
static void sbx_send(struct sbx_msg *m)
{
	ssize_t n;
	do
		n = write(4, m, sizeof *m);
	while (n < 0 && errno == EINTR);
}

/* Reports a setup error to the slot and exits the proxy. */
static void __attribute__((noreturn, format(printf, 1, 2))) sbx_proxy_fail(const char *fmt, ...)
{
	struct sbx_msg m;
	memset(&m, 0, sizeof m);
	m.type = 'E';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m.text, sizeof m.text, fmt, ap);
	va_end(ap);
	sbx_send(&m);
	_exit(1);
}

/* Closes every fd >= lowfd. */
static void sbx_close_from(int lowfd)
{
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0u) == 0)
		return;
	for (int fd = lowfd; fd < 65536; fd++)
		close(fd);
}

/* Joins dir and name into buf (proxy helper; paths are short and checked). */
static const char *sbx_join(char *buf, size_t size, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size)
		sbx_proxy_fail("path too long: %s/%s", dir, name);
	return buf;
}

/* Bind-mounts src on dst (created as a dir or an empty file) read-only, nosuid, nodev. */
static void sbx_bind_ro(const char *src, const char *dst, bool dir)
{
	if (dir) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			sbx_proxy_fail("mkdir %s: %s", dst, strerror(errno));
	} else {
		int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
		if (fd < 0)
			sbx_proxy_fail("create %s: %s", dst, strerror(errno));
		close(fd);
	}
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		sbx_proxy_fail("bind %s: %s", src, strerror(errno));
	if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		sbx_proxy_fail("remount %s read-only: %s", dst, strerror(errno));
}

/*
 * Exposes host path src at dst: dirs and regular files are bound read-only;
 * symlinks are recreated, except an absolute link to a regular file outside
 * /usr and /etc (e.g. resolv.conf -> /run/...), whose target file is bound.
 */
static void sbx_expose(const char *src, const char *dst)
{
	struct stat sb, tb;
	char target[PATH_MAX];

	if (lstat(src, &sb) < 0)
		return;                             /* absent on this host: skip */
	if (S_ISLNK(sb.st_mode)) {
		ssize_t n = readlink(src, target, sizeof target - 1);
		if (n < 0)
			return;
		target[n] = '\0';
		if (target[0] == '/' && strncmp(target, "/usr/", 5) != 0 &&
		    strncmp(target, "/etc/", 5) != 0 && stat(src, &tb) == 0 && S_ISREG(tb.st_mode)) {
			sbx_bind_ro(src, dst, false);   /* mount(2) follows the link */
			return;
		}
		if (symlink(target, dst) < 0)
			sbx_proxy_fail("symlink %s: %s", dst, strerror(errno));
	} else if (S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)) {
		sbx_bind_ro(src, dst, S_ISDIR(sb.st_mode));
	}
}

/* Writes a small generated file into the (still writable) new root. */
static void sbx_write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		sbx_proxy_fail("write %s: %s", path, strerror(errno));
	close(fd);
}

/* Mounts a tmpfs on dst (created) with opts and flags. */
static void sbx_tmpfs(const char *dst, const char *opts, unsigned long flags)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		sbx_proxy_fail("mkdir %s: %s", dst, strerror(errno));
	if (mount("corral", dst, "tmpfs", flags, opts) < 0)
		sbx_proxy_fail("mount tmpfs on %s: %s", dst, strerror(errno));
}

/* Exposes the host path host (absolute, checked by sbx_global_init) at the same place in R,
 * making its missing parent directories in the root tmpfs first. */
static void sbx_expose_path(const char *R, const char *host)
{
	char p[PATH_MAX];
	for (const char *s = strchr(host + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		snprintf(p, sizeof p, "%s%.*s", R, (int)(s - host), host);
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			sbx_proxy_fail("mkdir %s: %s", p, strerror(errno));
	}
	if ((size_t)snprintf(p, sizeof p, "%s%s", R, host) >= sizeof p)
		sbx_proxy_fail("path too long: %s", host);
	sbx_expose(host, p);
}

/* Builds /etc in the new root R: generated passwd/group/hosts/nsswitch, the rest exposed from the host. */
static void sbx_setup_etc(const struct sbx_ctx *c, const char *R)
{
	char p[PATH_MAX], h[PATH_MAX];

	sbx_join(p, sizeof p, R, "etc");
	if (mkdir(p, 0755) < 0)
		sbx_proxy_fail("mkdir %s: %s", p, strerror(errno));
	sbx_write_file(sbx_join(p, sizeof p, R, "etc/passwd"), c->passwd, 0644);
	sbx_write_file(sbx_join(p, sizeof p, R, "etc/group"), c->group, 0644);
	sbx_write_file(sbx_join(p, sizeof p, R, "etc/hosts"),
	    "127.0.0.1\tlocalhost " SBX_HOSTNAME "\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0644);
	sbx_write_file(sbx_join(p, sizeof p, R, "etc/hostname"), SBX_HOSTNAME "\n", 0644);
	sbx_write_file(sbx_join(p, sizeof p, R, "etc/nsswitch.conf"),
	    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
	    "protocols: files\nservices: files\n", 0644);

	for (size_t i = 0; i < G.n_etc; i++) {
		const char *e = G.etc[i];
		const char *slash = strchr(e, '/');
		if (slash != NULL) {                /* e.g. ssl/certs: make etc/ssl first */
			snprintf(p, sizeof p, "%s/etc/%.*s", R, (int)(slash - e), e);
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				sbx_proxy_fail("mkdir %s: %s", p, strerror(errno));
		}
		snprintf(h, sizeof h, "/etc/%s", e);
		snprintf(p, sizeof p, "%s/etc/%s", R, e);
		sbx_expose(h, p);
	}
}

/* Builds the minimal /dev in R: device nodes, fd symlinks, a fresh /dev/shm. */
static void sbx_setup_dev(const struct sbx_ctx *c, const char *R)
{
	char p[PATH_MAX], h[64];

	sbx_tmpfs(sbx_join(p, sizeof p, R, "dev"), "size=64k,nr_inodes=64,mode=0755",
	    MS_NOSUID | MS_NOEXEC);
	for (size_t i = 0; i < sizeof sbx_devs / sizeof sbx_devs[0]; i++) {
		snprintf(p, sizeof p, "%s/dev/%s", R, sbx_devs[i].name);
		if (mknod(p, S_IFCHR | 0666, makedev(sbx_devs[i].maj, sbx_devs[i].min)) == 0)
			continue;
		snprintf(h, sizeof h, "/dev/%s", sbx_devs[i].name);   /* no CAP_MKNOD: bind the host node */
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0)
			sbx_proxy_fail("create %s: %s", p, strerror(errno));
		close(fd);
		if (mount(h, p, NULL, MS_BIND, NULL) < 0)
			sbx_proxy_fail("bind %s: %s", h, strerror(errno));
	}
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
	};
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
		snprintf(p, sizeof p, "%s/dev/%s", R, links[i][1]);
		if (symlink(links[i][0], p) < 0)
			sbx_proxy_fail("symlink %s: %s", p, strerror(errno));
	}
	sbx_tmpfs(sbx_join(p, sizeof p, R, "dev/shm"), c->shm_opts, MS_NOSUID | MS_NODEV);
	sbx_join(p, sizeof p, R, "dev");
	if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
		sbx_proxy_fail("remount /dev read-only: %s", strerror(errno));
}

/* Binds the subdir sub of the box tmpfs (by its path: only root can reach the tmpfs root,
 * no run sees it) on dst (created), read-write, nosuid, nodev. */
static void sbx_bind_box(const struct sbx_ctx *c, const char *sub, const char *dst)
{
	char src[PATH_MAX];
	sbx_join(src, sizeof src, c->box->path, sub);
	if (mkdir(dst, 0755) < 0 || mount(src, dst, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
		sbx_proxy_fail("bind the box's %s on %s: %s", sub, dst, strerror(errno));
}

/* Builds the whole root in G.root_mnt and pivots into it (proxy, in its own mount ns). */
static void sbx_setup_fs(const struct sbx_ctx *c)
{
	const char *R = G.root_mnt;
	char p[PATH_MAX], h[PATH_MAX];

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		sbx_proxy_fail("making / private: %s", strerror(errno));
	if (mount("corral-root", R, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") < 0)
		sbx_proxy_fail("mount root tmpfs: %s", strerror(errno));

	for (size_t i = 0; sbx_top_dirs[i] != NULL; i++) {
		snprintf(h, sizeof h, "/%s", sbx_top_dirs[i]);
		sbx_expose(h, sbx_join(p, sizeof p, R, sbx_top_dirs[i]));
	}
	sbx_setup_etc(c, R);
	sbx_setup_dev(c, R);

	sbx_join(p, sizeof p, R, "proc");
	if (mkdir(p, 0555) < 0 ||
	    mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
		sbx_proxy_fail("mount /proc: %s", strerror(errno));
	sbx_tmpfs(sbx_join(p, sizeof p, R, "tmp"), c->tmp_opts, MS_NOSUID | MS_NODEV);
	sbx_bind_box(c, SBX_SUB_ARTIFACTS, sbx_join(p, sizeof p, R, "tmp/artifacts"));
	for (size_t i = 0; i < G.n_binds; i++)
		sbx_expose_path(R, G.binds[i]);

	sbx_bind_box(c, SBX_SUB_WORK, sbx_join(p, sizeof p, R, "box"));

	if (chdir(R) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		sbx_proxy_fail("pivot_root: %s", strerror(errno));
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		sbx_proxy_fail("detaching the old root: %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		sbx_proxy_fail("remount / read-only: %s", strerror(errno));
}

/* Brings up lo in the (new, empty) network namespace. */
static void sbx_setup_net(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		sbx_proxy_fail("lo: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		sbx_proxy_fail("lo up: %s", strerror(errno));
	close(s);
}

/* Sets one rlimit (soft = hard = v, capped at the current hard limit when we cannot raise it). */
static int sbx_rlimit(int res, rlim_t v)
{
	struct rlimit cur, rl = { v, v };
	if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    (v == RLIM_INFINITY || v > cur.rlim_max))
		rl.rlim_cur = rl.rlim_max = cur.rlim_max;
	return setrlimit(res, &rl);
}

/* Applies the program's rlimits; 0 or -1. */
static int sbx_set_rlimits(const struct sbx_limits *l)
{
	rlim_t cpu = RLIM_INFINITY, nproc = l->processes;
	if (l->cpu_ms > 0)
		cpu = (rlim_t)((l->cpu_ms + 999) / 1000);
	if (sbx_rlimit(RLIMIT_CORE, 0) < 0 || sbx_rlimit(RLIMIT_MEMLOCK, 0) < 0 ||
	    sbx_rlimit(RLIMIT_NOFILE, l->open_files) < 0 ||
	    sbx_rlimit(RLIMIT_STACK, l->stack_bytes) < 0 ||
	    sbx_rlimit(RLIMIT_NPROC, nproc) < 0 || sbx_rlimit(RLIMIT_MSGQUEUE, 0) < 0 ||
	    sbx_rlimit(RLIMIT_FSIZE, l->fsize_bytes ? l->fsize_bytes : RLIM_INFINITY) < 0)
		return -1;
	if (cpu != RLIM_INFINITY) {               /* SIGXCPU at the soft limit, SIGKILL a second later */
		struct rlimit rl = { cpu, cpu + 1 };
		if (setrlimit(RLIMIT_CPU, &rl) < 0)
			return -1;
	}
	/* without cgroups, RLIMIT_DATA is the only memory cap (never RLIMIT_AS: JVM, Go) */
	if (cg_version() == CG_NONE && l->memory_bytes > 0 && sbx_rlimit(RLIMIT_DATA, l->memory_bytes) < 0)
		return -1;
	return 0;
}

/* Drops every privilege: groups, gid, uid, capabilities (bounding, ambient, I/P/E); returns the failed step or -1. */
static int sbx_drop_privs(const struct sbx_box *b)
{
	if (setgroups(0, NULL) < 0)
		return 3;
	if (setresgid(b->gid, b->gid, b->gid) < 0)
		return 4;
	for (int cap = 0; cap < 64; cap++)
		if (CAP_IS_SUPPORTED(cap) && cap_drop_bound(cap) < 0)
			return 5;
	if (cap_reset_ambient() < 0 && errno != EINVAL)
		return 6;
	if (setresuid(b->uid, b->uid, b->uid) < 0)
		return 7;
	if (cap_set_proc(G.nocaps) < 0)
		return 8;
	uid_t r, e, s;
	if (getresuid(&r, &e, &s) < 0 || r == 0 || e == 0 || s == 0 || r != b->uid ||
	    prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 || getgroups(0, NULL) != 0)
		return 9;
	return -1;
}

/* Reads exactly len bytes from fd; 0, or -1 at EOF or on an error. */
static int sbx_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* Reads one job message (header and blob) from fd into *jm and *blob (malloc'd, lives until
 * the process exits); 0, 1 at EOF before any byte (the slot dropped the sandbox unused),
 * -1 if the message is bad or short. Used by the proxy and by the program child. */
static int sbx_job_read(int fd, struct sbx_job *jm, char **blob)
{
	ssize_t n;
	do
		n = read(fd, jm, 1);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 1;
	if (n != 1 || sbx_read_full(fd, (char *)jm + 1, sizeof *jm - 1) < 0)
		return -1;
	if (jm->go != 'j' || jm->argc < 1 || jm->argc > SBX_MAX_BLOB / 2 || jm->envc > SBX_MAX_ENV + 4 ||
	    jm->blob < jm->argc + jm->envc || jm->blob > SBX_MAX_BLOB)
		return -1;
	if ((*blob = malloc(jm->blob)) == NULL || sbx_read_full(fd, *blob, jm->blob) < 0 ||
	    (*blob)[jm->blob - 1] != '\0')
		return -1;
	return 0;
}

/* Fills the job part of c (argv, envp, lim, network) from a message sbx_job_read returned;
 * the arrays point into blob; 0 or -1. */
static int sbx_job_parse(struct sbx_ctx *c, const struct sbx_job *jm, char *blob)
{
	size_t k = 0, want = (size_t)jm->argc + jm->envc;
	char **v = calloc(want + 2, sizeof *v);
	if (v == NULL)
		return -1;
	for (char *s = blob; s < blob + jm->blob && k < want; s += strlen(s) + 1)
		v[k++] = s;
	if (k != want)
		return -1;
	memmove(v + jm->argc + 1, v + jm->argc, jm->envc * sizeof *v);
	v[jm->argc] = NULL;                          /* argv's end; envp's NULL is v[want + 1] */
	c->argv = v;
	c->envp = v + jm->argc + 1;
	c->lim = jm->lim;
	c->network = jm->network;
	return 0;
}

/* The program child, forked while the sandbox is prepared: fds, credentials dropped,
 * seccomp; then it waits on jobfd for the job (the proxy forwards the slot's message),
 * lowers its rlimits to the job's and execs. Never returns; failures go to errfd. */
static void __attribute__((noreturn)) sbx_exec_program(const struct sbx_ctx *pc, int errfd, int jobfd)
{
	struct sbx_exec_err ee = { 0, 0, 0 };
	struct sbx_ctx cc = *pc, *c = &cc;
	struct sbx_job jm;
	char *blob = NULL;
	sigset_t all;

	if ((errfd != 3 && dup3(errfd, 3, O_CLOEXEC) < 0) || (jobfd = fcntl(jobfd, F_DUPFD_CLOEXEC, 4)) < 0 ||
	    (jobfd != 4 && dup3(jobfd, 4, O_CLOEXEC) < 0))
		_exit(127);
	sbx_close_from(5);
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();

	ee.step = 1;
	if (chdir("/box") < 0)
		goto fail;
	int step = sbx_drop_privs(c->box);
	if (step >= 0) {
		ee.step = step;
		goto fail;
	}
	ee.step = 10;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail;
	ee.step = 11;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, G.filter, 0, 0) < 0)
		goto fail;

	/* prepared: from here on it is the job's time */
	int rc = sbx_job_read(4, &jm, &blob);
	if (rc == 1)
		_exit(0);                            /* dropped unused */
	ee.step = 13;
	errno = EPROTO;
	if (rc < 0 || sbx_job_parse(c, &jm, blob) < 0)
		goto fail;
	close(4);
	ee.step = 2;                                 /* only lowers what the proxy had: no privilege needed */
	if (sbx_set_rlimits(&c->lim) < 0)
		goto fail;
	ee.step = -1;                                /* start of the wall clock */
	ee.t_us = sbx_now_us();
	if (write(3, &ee, sizeof ee) < 0)
		_exit(127);
	ee.step = 12;
	execve(c->argv[0], c->argv, c->envp);
fail:
	ee.err = errno;
	if (write(3, &ee, sizeof ee) < 0)
		_exit(127);
	_exit(127);
}

/* The time a (zombie) process waited on a run queue, from /proc/PID/schedstat; 0 if unknown. */
static uint64_t sbx_run_delay(pid_t pid)
{
	char path[64], buf[128];
	unsigned long long on_cpu, delay;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return sscanf(buf, "%llu %llu", &on_cpu, &delay) == 2 ? (uint64_t)delay : 0;
}

/* Resizes the tmpfs mounted at path (proxy, after pivot_root). */
static void sbx_resize_tmpfs(const char *path, uint64_t bytes)
{
	char opts[64];
	snprintf(opts, sizeof opts, "size=%" PRIu64, bytes);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) < 0)
		sbx_proxy_fail("resizing %s: %s", path, strerror(errno));
}

/* The proxy: PID 1 of the new namespaces; joins the run's cgroup, builds the root, waits for
 * the job, runs the program, reports; never returns. */
static void __attribute__((noreturn)) sbx_proxy(const struct sbx_ctx *pc)
{
	struct sbx_ctx cc = *pc, *c = &cc;
	struct sbx_msg m;
	struct sbx_job jm;
	char *blob = NULL;
	int ep[2], jp[2];

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);          /* our memory is a copy of the worker's */
	/* only the slot's SIGKILL ends us: a worker's group-wide SIGTERM must not cut a run short
	 * or run the worker's handlers here (the program gets SIG_DFL for everything back) */
	static const int quiet[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
	    SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE };
	for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++)
		signal(quiet[i], SIG_IGN);
	/* fds: 0 stdin pipe, 1 stdout pipe, 2 stderr pipe, 3 sync, 4 status; nothing else */
	int fds[5] = { c->in_r, c->out_w, c->err_w, c->sync_r, c->stat_w };
	for (int i = 0; i < 5; i++)
		if ((fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
			_exit(1);
	for (int i = 0; i < 5; i++)
		if (dup3(fds[i], i, i >= 3 ? O_CLOEXEC : 0) < 0)
			_exit(1);
	sbx_close_from(5);
	umask(0);

	/* into the run's cgroup before anything else: all below is charged and limited there
	 * (writing "0" moves the writer; doing it here keeps the slot from waiting on it) */
	char *cause = NULL;
	if (c->cg != NULL && cg_run_attach(c->cg, 0, &cause) < 0)
		sbx_proxy_fail("%s", cause ? cause : "joining the run's cgroup failed");
	sbx_setup_fs(c);
	if (sethostname(SBX_HOSTNAME, strlen(SBX_HOSTNAME)) < 0)
		sbx_proxy_fail("sethostname: %s", strerror(errno));
	sbx_setup_net();

	/* the program child too: forked, its privileges dropped, waiting for the job */
	if (pipe2(ep, O_CLOEXEC) < 0 || pipe2(jp, O_CLOEXEC) < 0)
		sbx_proxy_fail("pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		sbx_proxy_fail("fork: %s", strerror(errno));
	if (child == 0)
		sbx_exec_program(c, ep[1], jp[0]);
	close(ep[1]);
	close(jp[0]);
	close(0);
	close(1);
	close(2);

	/* prepared: everything from here on is on the job's path */
	int rc = sbx_job_read(3, &jm, &blob);
	if (rc == 1)
		_exit(0);                            /* dropped unused */
	if (rc < 0 || sbx_job_parse(c, &jm, blob) < 0)
		sbx_proxy_fail("bad job message");
	close(3);
	if (jm.disk_bytes != c->disk_bytes) {
		sbx_resize_tmpfs("/tmp", jm.disk_bytes);
		sbx_resize_tmpfs("/dev/shm", jm.disk_bytes);
	}
	if (c->network) {
		int e = jm.box_ip ? sbn_box_side(jm.box_ip, jm.gw_ip) : EINVAL;
		if (e != 0)
			sbx_proxy_fail("eth0: %s", strerror(e));
	}
	/* hand the job on; a child that died meanwhile has left its reason in ep */
	if (write(jp[1], &jm, sizeof jm) == (ssize_t)sizeof jm) {
		for (size_t done = 0; done < jm.blob;) {
			ssize_t w = write(jp[1], blob + done, jm.blob - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			done += (size_t)w;
		}
	}
	close(jp[1]);

	struct sbx_exec_err ee;
	ssize_t n;
	uint64_t t_exec = 0;
	for (;;) {                                   /* {-1, t} then EOF = exec done, else an error */
		do
			n = read(ep[0], &ee, sizeof ee);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof ee || ee.step != -1)
			break;
		t_exec = ee.t_us;
	}
	if (n == (ssize_t)sizeof ee) {
		int step = ee.step >= 0 && ee.step < (int)(sizeof sbx_steps / sizeof sbx_steps[0]) ?
		    ee.step : 0;
		sbx_proxy_fail("%s%s%s: %s", sbx_steps[step], step == 12 ? " " : "",
		    step == 12 ? c->argv[0] : "", strerror(ee.err));
	}
	close(ep[0]);
	memset(&m, 0, sizeof m);
	m.type = 'S';
	m.t_us = t_exec ? t_exec : sbx_now_us();
	sbx_send(&m);

	/* reap everything; the main program's exit ends the run */
	memset(&m, 0, sizeof m);
	for (;;) {
		int st;
		struct rusage ru;
		siginfo_t si;                        /* the main program's schedstat before reaping it */
		if (m.run_delay_ns == 0 && waitid(P_PID, child, &si, WEXITED | WNOWAIT) == 0)
			m.run_delay_ns = sbx_run_delay(child);
		pid_t p = wait4(-1, &st, __WALL, &ru);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			sbx_proxy_fail("wait: %s", strerror(errno));
		if (p == child) {
			m.status = st;
			m.ru = ru;
			break;
		}
	}
	m.type = 'R';
	m.t_us = sbx_now_us();
	getrusage(RUSAGE_CHILDREN, &m.ru_children);
	sbx_send(&m);
	_exit(0);                                    /* the kernel now kills the rest of the namespace */
}

/* ------------------------------------------------------------------ */
/* Outside: the slot's side of one run.                                */
/* ------------------------------------------------------------------ */

struct sbx_stream {
	int fd;
	char *buf;
	size_t len, alloc, cap;
	uint64_t dropped;
};

/* State of one run on the slot side. */
struct sbx_run {
	struct sbx_ctx ctx;
	struct cg_run *cg;
	pid_t proxy;
	int in_w, stat_r, sync_w;
	size_t in_done;
	struct sbx_stream out, err;
	struct sbx_msg msg;          /* last 'S'/'R'/'E' message */
	char msgbuf[sizeof(struct sbx_msg)];
	size_t msglen;
	bool started, reported, failed, stat_eof;
	uint64_t t_start, t_end, cpu_base;
	enum sbx_status kill_reason; /* SBX_OK = not killed by us */
	char errtext[256];
};

/* Checks the job's environment entries: NAME=VALUE, NAME [A-Za-z_][A-Za-z0-9_]*, not PATH/HOME/LD_*; 0 or -1. */
static int sbx_check_env(char *const *env, size_t *count, bool *has_lang, char **cause)
{
	size_t n = 0;
	*has_lang = false;
	for (; env != NULL && env[n] != NULL; n++) {
		const char *e = env[n], *eq = strchr(e, '=');
		size_t nl = eq ? (size_t)(eq - e) : 0;
		if (eq == NULL || nl == 0 || nl > 255 || isdigit((unsigned char)e[0]))
			return sbx_set_error(cause, "bad environment entry %zu", n);
		for (size_t i = 0; i < nl; i++)
			if (!isalnum((unsigned char)e[i]) && e[i] != '_')
				return sbx_set_error(cause, "bad environment variable name %.*s", (int)nl, e);
		if ((nl == 4 && strncmp(e, "PATH", 4) == 0) || (nl == 4 && strncmp(e, "HOME", 4) == 0) ||
		    strncmp(e, "LD_", 3) == 0)
			return sbx_set_error(cause, "environment variable %.*s may not be set", (int)nl, e);
		if (nl == 4 && strncmp(e, "LANG", 4) == 0)
			*has_lang = true;
	}
	if (n > SBX_MAX_ENV)
		return sbx_set_error(cause, "too many environment entries");
	*count = n;
	return 0;
}

/* Fills defaults into the limits. */
static void sbx_default_limits(struct sbx_limits *l)
{
	if (l->output_bytes == 0)
		l->output_bytes = 64u << 10;
	if (l->stack_bytes == 0)
		l->stack_bytes = 64u << 20;
	if (l->processes == 0)
		l->processes = 64;
	if (l->open_files == 0)
		l->open_files = 1024;
}

/* Fills the box part of a proxy's context: users, groups, /tmp and /dev/shm sizes. */
static void sbx_ctx_box(struct sbx_ctx *c, const struct sbx_box *box)
{
	c->box = box;
	c->disk_bytes = box->disk_bytes;
	snprintf(c->passwd, sizeof c->passwd,
	    "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
	    "sandbox:x:%u:%u:corral sandbox:/box:/bin/sh\n"
	    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	    (unsigned)box->uid, (unsigned)box->gid);
	snprintf(c->group, sizeof c->group, "root:x:0:\nsandbox:x:%u:\nnogroup:x:65534:\n",
	    (unsigned)box->gid);
	/* /tmp and /dev/shm: their own tmpfs each, as large as the box (pages count in the memory cgroup too) */
	snprintf(c->tmp_opts, sizeof c->tmp_opts, "size=%" PRIu64 ",nr_inodes=16384,mode=1777",
	    box->disk_bytes);
	snprintf(c->shm_opts, sizeof c->shm_opts, "size=%" PRIu64 ",nr_inodes=1024,mode=1777",
	    box->disk_bytes);
}

/* Checks the run's spec and prepares the job part of r->ctx (envp malloc'd); 0 or -1. */
static int sbx_prepare(struct sbx_run *r, struct sbx_box *box, const struct sbx_run_spec *spec,
    char **cause)
{
	struct sbx_ctx *c = &r->ctx;
	size_t nenv = 0;
	bool has_lang;

	if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] != '/')
		return sbx_set_error(cause, "argv[0] must be an absolute path");
	if (spec->network != 0 && spec->network != 1)
		return sbx_set_error(cause, "network mode %d is not supported", spec->network);
	if (spec->network == 1 && G.net_cause != NULL)
		return sbx_set_error(cause, "network mode semitrusted is unavailable: %s", G.net_cause);
	if (sbx_check_env(spec->env, &nenv, &has_lang, cause) < 0)
		return -1;
	c->box = box;
	c->argv = spec->argv;
	c->lim = spec->lim;
	c->network = spec->network;
	sbx_default_limits(&c->lim);
	if ((c->envp = calloc(nenv + 4, sizeof *c->envp)) == NULL)
		return sbx_set_error(cause, "out of memory");
	size_t k = 0;
	c->envp[k++] = (char *)SBX_PATH_ENV;
	c->envp[k++] = (char *)SBX_HOME_ENV;
	if (!has_lang)
		c->envp[k++] = (char *)SBX_LANG_ENV;
	for (size_t i = 0; i < nenv; i++)
		c->envp[k++] = spec->env[i];
	c->envp[k] = NULL;
	return 0;
}

/* Makes a pipe with both ends close-on-exec; the slot's end optionally non-blocking; 0 or -1. */
static int sbx_pipe(int p[2], int nonblock_end, char **cause)
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return sbx_set_error(cause, "pipe: %s", strerror(errno));
	if (nonblock_end >= 0)
		fcntl(p[nonblock_end], F_SETFL, fcntl(p[nonblock_end], F_GETFL) | O_NONBLOCK);
	return 0;
}

/* Closes *fd if open and marks it closed. */
static void sbx_close(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Clones the proxy into new namespaces; returns its pid or -1 with cause. */
static pid_t sbx_clone_proxy(const struct sbx_ctx *ctx, char **cause)
{
	/* a raw clone without a new stack behaves like fork(); the glibc clone() wrapper would need one */
	long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | SIGCHLD;
	pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return sbx_set_error(cause, "clone: %s", strerror(errno));
	if (pid == 0)
		sbx_proxy(ctx);
	return pid;
}

/* Reaps the proxies of finished runs and removes their cgroups: all of them (block), or the
 * ones already gone. sbx_box_run leaves this work for after the job's result is out. */
static void sbx_reap_deferred(bool block)
{
	size_t keep = 0;
	for (size_t i = 0; i < G.n_defer; i++) {
		pid_t p;
		do
			p = waitpid(G.defer[i].proxy, NULL, block ? 0 : WNOHANG);
		while (p < 0 && errno == EINTR);
		if (p == 0) {
			G.defer[keep++] = G.defer[i];
			continue;
		}
		cg_run_destroy(G.defer[i].cg);
	}
	G.n_defer = keep;
}

/* Kills and reaps a prepared sandbox's proxy, closes its pipes, removes its cgroup, frees p. */
static void sbx_pre_free(struct sbx_pre *p)
{
	if (p == NULL)
		return;
	if (p->proxy > 0) {
		kill(p->proxy, SIGKILL);
		while (waitpid(p->proxy, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int fds[] = { p->in_w, p->out_r, p->err_r, p->sync_w, p->stat_r };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	cg_run_destroy(p->cg);
	free(p);
}

/* True if the prepared proxy still waits for its job (false once it has exited, e.g. after
 * a setup error; it is then reaped). */
static bool sbx_pre_alive(struct sbx_pre *p)
{
	if (p->proxy <= 0)
		return false;
	if (waitpid(p->proxy, NULL, WNOHANG) == 0)
		return true;
	p->proxy = -1;
	return false;
}

/* Prepares the box's next sandbox: makes the run's cgroup and clones the proxy, which joins
 * it and builds the root on its own (the slot does not wait); *prep freed by sbx_pre_free; 0 or -1. */
static int sbx_pre_start(struct sbx_box *box, struct sbx_pre **prep, char **cause)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int sync[2] = { -1, -1 }, stat[2] = { -1, -1 };
	struct sbx_ctx ctx;
	struct sbx_pre *p = calloc(1, sizeof *p);

	*prep = NULL;
	if (p == NULL)
		return sbx_set_error(cause, "out of memory");
	p->proxy = -1;
	p->in_w = p->out_r = p->err_r = p->sync_w = p->stat_r = -1;
	memset(&ctx, 0, sizeof ctx);
	sbx_ctx_box(&ctx, box);
	if (cg_run_create(&p->cg, box->slot, cause) < 0 ||
	    sbx_pipe(in, 1, cause) < 0 || sbx_pipe(out, 0, cause) < 0 || sbx_pipe(err, 0, cause) < 0 ||
	    sbx_pipe(sync, 1, cause) < 0 || sbx_pipe(stat, 0, cause) < 0)
		goto fail;
	ctx.cg = p->cg;
	ctx.in_r = in[0];
	ctx.out_w = out[1];
	ctx.err_w = err[1];
	ctx.sync_r = sync[0];
	ctx.stat_w = stat[1];
	if ((p->proxy = sbx_clone_proxy(&ctx, cause)) < 0)
		goto fail;
	close(in[0]);
	close(out[1]);
	close(err[1]);
	close(sync[0]);
	close(stat[1]);
	p->in_w = in[1];
	p->out_r = out[0];
	p->err_r = err[0];
	p->sync_w = sync[1];
	p->stat_r = stat[0];
	*prep = p;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		int fds[] = { in[i], out[i], err[i], sync[i], stat[i] };
		for (size_t k = 0; k < sizeof fds / sizeof fds[0]; k++)
			if (fds[k] >= 0)
				close(fds[k]);
	}
	sbx_pre_free(p);
	return -1;
}

/* Makes sure this process has a box with a prepared sandbox for slot's next job (call when
 * idle or between jobs; the next sbx_box_init takes it); 0 or -1 with cause. */
int sbx_pool_fill(const struct sbx_config *cfg, int slot, uint64_t disk_bytes, char **cause)
{
	struct sbx_box *b = G.pool;

	if (!G.ready)
		return sbx_set_error(cause, "sbx_global_init was not called");
	sbx_reap_deferred(true);
	if (b != NULL && b->slot == slot && b->pre != NULL && sbx_pre_alive(b->pre))
		return 0;
	G.pool = NULL;
	sbx_box_free(b);
	if (sbx_box_new(&b, cfg, slot, disk_bytes, cause) < 0)
		return -1;
	if (sbx_pre_start(b, &b->pre, cause) < 0) {
		sbx_box_free(b);
		return -1;
	}
	G.pool = b;
	return 0;
}

/* Drops the pool's box and its prepared sandbox and finishes the teardown of earlier runs
 * (call before the process exits). */
void sbx_pool_free(void)
{
	sbx_reap_deferred(true);
	sbx_box_free(G.pool);
	G.pool = NULL;
}

static int sbx_read_status(struct sbx_run *r);

/* Sends the job message (limits, network, argv and environment) to the prepared proxy,
 * within the setup deadline; 0 or -1 with cause. */
static int sbx_send_job(struct sbx_run *r, const struct sbx_box *box, const struct sbn_link *link,
    char **cause)
{
	struct sbx_job jm;
	size_t argc = 0, envc = 0, blob = 0;

	memset(&jm, 0, sizeof jm);
	for (; r->ctx.argv[argc] != NULL; argc++)
		blob += strlen(r->ctx.argv[argc]) + 1;
	for (; r->ctx.envp[envc] != NULL; envc++)
		blob += strlen(r->ctx.envp[envc]) + 1;
	if (blob > SBX_MAX_BLOB)
		return sbx_set_error(cause, "arguments and environment are larger than %u bytes", SBX_MAX_BLOB);
	jm.go = 'j';
	jm.box_ip = link->box_ip;
	jm.gw_ip = link->host_ip;
	jm.network = r->ctx.network;
	jm.lim = r->ctx.lim;
	jm.disk_bytes = box->disk_bytes;
	jm.argc = (uint32_t)argc;
	jm.envc = (uint32_t)envc;
	jm.blob = (uint32_t)blob;

	char *msg = malloc(sizeof jm + blob), *w;
	if (msg == NULL)
		return sbx_set_error(cause, "out of memory");
	memcpy(msg, &jm, sizeof jm);
	w = msg + sizeof jm;
	for (size_t i = 0; i < argc; i++)
		w = stpcpy(w, r->ctx.argv[i]) + 1;
	for (size_t i = 0; i < envc; i++)
		w = stpcpy(w, r->ctx.envp[i]) + 1;

	size_t len = sizeof jm + blob, done = 0;
	uint64_t deadline = sbx_now_us() + SBX_SETUP_US;
	while (done < len) {
		ssize_t n = write(r->sync_w, msg + done, len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		uint64_t now = sbx_now_us();
		if (n < 0 && errno == EAGAIN && now < deadline) {
			struct pollfd pf = { r->sync_w, POLLOUT, 0 };
			poll(&pf, 1, (int)((deadline - now + 999) / 1000));
			continue;
		}
		int e = n < 0 ? errno : EIO;
		free(msg);
		sbx_read_status(r);                    /* a proxy that failed says why */
		if (r->failed)
			return sbx_set_error(cause, "sandbox: %s", r->errtext);
		return sbx_set_error(cause, "sending the job to the sandbox: %s",
		    e == EAGAIN ? "setup timed out" : strerror(e));
	}
	free(msg);
	return 0;
}

/* Reads what is available from a stream, keeping up to cap bytes; returns 1 at EOF, 0 otherwise. */
static int sbx_read_stream(struct sbx_stream *s)
{
	char scratch[65536];

	for (int rounds = 0; rounds < 64; rounds++) {
		char *dst = scratch;
		size_t room = sizeof scratch;
		if (s->len < s->cap) {
			if (s->alloc < s->cap + 1 && s->alloc - s->len < 4096 + 1) {
				size_t na = s->alloc ? s->alloc * 2 : 16384;
				if (na > s->cap + 1)
					na = s->cap + 1;
				char *nb = realloc(s->buf, na);
				if (nb != NULL) {
					s->buf = nb;
					s->alloc = na;
				}
			}
			if (s->alloc > s->len + 1) {
				dst = s->buf + s->len;
				room = s->alloc - 1 - s->len;
				if (room > s->cap - s->len)
					room = s->cap - s->len;
			}
		}
		ssize_t n = read(s->fd, dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : 1;
		if (n == 0)
			return 1;
		if (dst == scratch)
			s->dropped += (uint64_t)n;
		else
			s->len += (size_t)n;
	}
	return 0;
}

/* Reads the status pipe; records 'S', 'R' and 'E' messages; returns 1 at EOF. */
static int sbx_read_status(struct sbx_run *r)
{
	for (;;) {
		ssize_t n = read(r->stat_r, r->msgbuf + r->msglen, sizeof r->msgbuf - r->msglen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : 1;
		if (n == 0)
			return 1;
		r->msglen += (size_t)n;
		if (r->msglen < sizeof r->msgbuf)
			continue;
		r->msglen = 0;
		memcpy(&r->msg, r->msgbuf, sizeof r->msg);
		if (r->msg.type == 'S') {
			r->started = true;
			r->t_start = r->msg.t_us;
			if (cg_run_cpu_us(r->cg, &r->cpu_base) < 0)
				r->cpu_base = 0;
		} else if (r->msg.type == 'R') {
			r->reported = true;
			r->t_end = r->msg.t_us;
		} else if (r->msg.type == 'E') {
			r->failed = true;
			r->msg.text[sizeof r->msg.text - 1] = '\0';
			snprintf(r->errtext, sizeof r->errtext, "%s", r->msg.text);
		}
	}
}

/* Writes pending stdin without blocking; closes the pipe when done or when the program stopped reading. */
static void sbx_write_stdin(struct sbx_run *r, const struct sbx_run_spec *spec)
{
	while (r->in_w >= 0 && r->in_done < spec->stdin_len) {
		ssize_t n = write(r->in_w, (const char *)spec->stdin_data + r->in_done,
		    spec->stdin_len - r->in_done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;                            /* EPIPE: the program does not read; fine */
		r->in_done += (size_t)n;
	}
	sbx_close(&r->in_w);
}

/* Kills the whole run (SIGKILL to the proxy takes the PID namespace down) and records why. */
static void sbx_kill(struct sbx_run *r, enum sbx_status why)
{
	if (r->kill_reason == SBX_OK)
		r->kill_reason = why;
	if (r->t_end == 0)
		r->t_end = sbx_now_us();
	kill(r->proxy, SIGKILL);
}

/* True if a stream read so much beyond its cap that the run must stop. */
static bool sbx_flooding(const struct sbx_stream *s)
{
	return s->dropped > 4 * (uint64_t)s->cap + SBX_FLOOD_SLACK;
}

/* Runs the poll loop until the proxy exits or the run is killed. */
static void sbx_loop(struct sbx_run *r, const struct sbx_run_spec *spec)
{
	uint64_t t_go = sbx_now_us(), next_tick = t_go + SBX_TICK_US, last_cb = 0;

	/* until the proxy is gone, or has reported the program's end with no output pending */
	while (!r->stat_eof && r->kill_reason == SBX_OK &&
	    !(r->reported && r->out.fd < 0 && r->err.fd < 0)) {
		uint64_t now = sbx_now_us(), deadline;
		bool running = r->started && !r->reported;   /* after 'R' only EOF is awaited */
		if (running && spec->lim.wall_ms > 0 && now >= r->t_start + spec->lim.wall_ms * 1000) {
			sbx_kill(r, SBX_TIMEOUT);
			break;
		}
		if (!r->started && now >= t_go + SBX_SETUP_US) {
			snprintf(r->errtext, sizeof r->errtext, "sandbox setup timed out");
			r->failed = true;
			sbx_kill(r, SBX_ERROR);
			break;
		}
		if (now >= next_tick) {
			uint64_t cpu;
			next_tick = now + SBX_TICK_US;
			if (running && spec->lim.cpu_ms > 0 && cg_run_cpu_us(r->cg, &cpu) == 0 &&
			    cpu > r->cpu_base && cpu - r->cpu_base > spec->lim.cpu_ms * 1000) {
				sbx_kill(r, SBX_CPU_LIMIT);
				break;
			}
		}
		if (!r->reported && spec->poll_cb != NULL && now >= last_cb + SBX_TICK_US) {
			last_cb = now;
			if (spec->poll_cb(spec->poll_arg) != 0) {
				sbx_kill(r, SBX_CANCELLED);
				break;
			}
		}

		struct pollfd pf[5];
		int n = 0, i_stat, i_out = -1, i_err = -1, i_in = -1, i_x = -1;
		pf[i_stat = n++] = (struct pollfd){ r->stat_r, POLLIN, 0 };
		if (r->out.fd >= 0)
			pf[i_out = n++] = (struct pollfd){ r->out.fd, POLLIN, 0 };
		if (r->err.fd >= 0)
			pf[i_err = n++] = (struct pollfd){ r->err.fd, POLLIN, 0 };
		if (r->in_w >= 0)
			pf[i_in = n++] = (struct pollfd){ r->in_w, POLLOUT, 0 };
		if (spec->extra_fd >= 0 && spec->poll_cb != NULL && now >= last_cb + 10000)
			pf[i_x = n++] = (struct pollfd){ spec->extra_fd, POLLIN, 0 };

		deadline = next_tick;
		if (spec->poll_cb != NULL && last_cb + SBX_TICK_US < deadline)
			deadline = last_cb + SBX_TICK_US;
		if (running && spec->lim.wall_ms > 0 && r->t_start + spec->lim.wall_ms * 1000 < deadline)
			deadline = r->t_start + spec->lim.wall_ms * 1000;
		int timeout = deadline > now ? (int)((deadline - now + 999) / 1000) : 0;
		if (poll(pf, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(r->errtext, sizeof r->errtext, "poll: %s", strerror(errno));
			r->failed = true;
			sbx_kill(r, SBX_ERROR);
			break;
		}
		if (pf[i_stat].revents && sbx_read_status(r))
			r->stat_eof = true;
		if (i_out >= 0 && pf[i_out].revents && sbx_read_stream(&r->out))
			sbx_close(&r->out.fd);
		if (i_err >= 0 && pf[i_err].revents && sbx_read_stream(&r->err))
			sbx_close(&r->err.fd);
		if (i_in >= 0 && pf[i_in].revents)
			sbx_write_stdin(r, spec);
		if (i_x >= 0 && pf[i_x].revents) {
			last_cb = sbx_now_us();
			if (spec->poll_cb(spec->poll_arg) != 0)
				sbx_kill(r, SBX_CANCELLED);
		}
		if (!r->reported && (sbx_flooding(&r->out) || sbx_flooding(&r->err)))
			sbx_kill(r, SBX_OUTPUT_LIMIT);
	}
}

/* After the proxy is gone: reads what is left in the status and output pipes (all writers are dead). */
static void sbx_drain(struct sbx_run *r)
{
	if (!r->stat_eof)
		sbx_read_status(r);
	for (int round = 0; round < 100 && (r->out.fd >= 0 || r->err.fd >= 0); round++) {
		if (r->out.fd >= 0 && sbx_read_stream(&r->out))
			sbx_close(&r->out.fd);
		if (r->err.fd >= 0 && sbx_read_stream(&r->err))
			sbx_close(&r->err.fd);
		if (sbx_flooding(&r->out) || sbx_flooding(&r->err))
			break;
		if (r->out.fd >= 0 || r->err.fd >= 0) {
			struct pollfd pf[2] = { { r->out.fd, POLLIN, 0 }, { r->err.fd, POLLIN, 0 } };
			poll(pf, 2, 10);
		}
	}
}

/* Hands a stream's buffer to the result (always a NUL-terminated malloc'd string); 0 or -1. */
static int sbx_take_stream(struct sbx_stream *s, char **out, size_t *len, bool *trunc, uint64_t *dropped)
{
	if (s->buf == NULL && (s->buf = malloc(1)) == NULL)
		return -1;
	s->buf[s->len] = '\0';
	*out = s->buf;
	*len = s->len;
	*trunc = s->dropped > 0;
	*dropped = s->dropped;
	s->buf = NULL;
	return 0;
}

/* Fills res from the finished run; returns 0, or -1 with cause when the sandbox itself failed. */
static int sbx_fill_result(struct sbx_run *r, int proxy_status, const struct sbx_run_spec *spec,
    struct sbx_result *res, char **cause)
{
	struct cg_stats cs;
	cg_run_stats(r->cg, &cs);

	if (r->failed || (r->kill_reason == SBX_OK && !r->reported && cs.oom_kills == 0))
		return sbx_set_error(cause, "sandbox: %s", r->errtext[0] ? r->errtext :
		    WIFSIGNALED(proxy_status) ? "proxy killed" : "proxy exited without a report");

	res->exit_code = -1;
	res->signal = SIGKILL;
	if (r->reported) {
		int st = r->msg.status;
		res->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		res->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	}
	res->wall_us = r->started && r->t_end > r->t_start ? r->t_end - r->t_start : 0;
	res->cpu_wait_us = r->reported ? r->msg.run_delay_ns / 1000 : 0;
	const struct rusage *ru = &r->msg.ru_children;
	if (cs.have_cpu)
		res->cpu_us = cs.cpu_us > r->cpu_base ? cs.cpu_us - r->cpu_base : 0;
	else if (r->reported)
		res->cpu_us = (uint64_t)ru->ru_utime.tv_sec * 1000000 + (uint64_t)ru->ru_utime.tv_usec +
		    (uint64_t)ru->ru_stime.tv_sec * 1000000 + (uint64_t)ru->ru_stime.tv_usec;
	res->memory_peak_bytes = cs.have_memory ? cs.memory_peak :
	    r->reported ? (uint64_t)ru->ru_maxrss * 1024 : 0;
	res->oom_killed = cs.oom_kills > 0;
	res->timed_out = r->kill_reason == SBX_TIMEOUT;
	res->cancelled = r->kill_reason == SBX_CANCELLED;
	res->output_exceeded = r->kill_reason == SBX_OUTPUT_LIMIT;
	res->cpu_exceeded = r->kill_reason == SBX_CPU_LIMIT || res->signal == SIGXCPU ||
	    (spec->lim.cpu_ms > 0 && res->cpu_us > spec->lim.cpu_ms * 1000);

	if (r->kill_reason != SBX_OK)
		res->status = r->kill_reason;
	else if (res->oom_killed)
		res->status = SBX_MEMORY_LIMIT;
	else if (res->cpu_exceeded)
		res->status = SBX_CPU_LIMIT;
	else
		res->status = SBX_OK;

	if (sbx_take_stream(&r->out, &res->out, &res->out_len, &res->out_truncated, &res->out_dropped) < 0 ||
	    sbx_take_stream(&r->err, &res->err, &res->err_len, &res->err_truncated, &res->err_dropped) < 0)
		return sbx_set_error(cause, "out of memory");
	return 0;
}

/* Runs one program in fresh namespaces on the box (its prepared sandbox if it has one);
 * fills res; 0, or -1 with cause (res->status = SBX_ERROR). */
int sbx_box_run(struct sbx_box *box, const struct sbx_run_spec *spec, struct sbx_result *res,
    char **cause)
{
	struct sbx_run r;
	struct sbn_link link = { .idx = -1 };
	struct sbx_pre *pre = NULL;
	int rc = -1, proxy_status = 0;
	uint64_t t_enter = sbx_now_us();

	memset(res, 0, sizeof *res);
	res->status = SBX_ERROR;
	res->exit_code = -1;
	memset(&r, 0, sizeof r);
	r.proxy = -1;
	r.in_w = r.stat_r = r.sync_w = r.out.fd = r.err.fd = -1;
	if (!G.ready)
		return sbx_set_error(cause, "sbx_global_init was not called");
	sbx_reap_deferred(false);
	if (sbx_prepare(&r, box, spec, cause) < 0)
		goto out;
	r.out.cap = r.err.cap = (size_t)r.ctx.lim.output_bytes;

	pre = box->pre;
	box->pre = NULL;
	if (pre != NULL && !sbx_pre_alive(pre)) {    /* its setup failed: try once more, afresh */
		sbx_pre_free(pre);
		pre = NULL;
	}
	res->prepared = pre != NULL;
	if (pre == NULL && sbx_pre_start(box, &pre, cause) < 0)
		goto out;
	r.cg = pre->cg;                               /* r owns what pre held from here on */
	r.proxy = pre->proxy;
	r.in_w = pre->in_w;
	r.out.fd = pre->out_r;
	r.err.fd = pre->err_r;
	r.sync_w = pre->sync_w;
	r.stat_r = pre->stat_r;
	free(pre);

	if (cg_run_limit(r.cg, &r.ctx.lim, cause) < 0)
		goto out;
	if (spec->network == 1 && sbn_up(&link, r.proxy, cause) < 0)
		goto out;
	/* RLIMIT_NPROC counts every process of the slot's uid: the next run's sandbox, prepared
	 * during this one, holds one (its program child, confined and waiting); the pids cgroup
	 * (written above) keeps this run's own count exact. If that preparation fails, a run
	 * without cgroups (allow_weak) has one process to spare: the job starts before it. */
	if (spec->prepare_next && box->pre == NULL)
		r.ctx.lim.processes++;
	if (sbx_send_job(&r, box, &link, cause) < 0)
		goto out;
	sbx_close(&r.sync_w);
	if (spec->stdin_len == 0)
		sbx_close(&r.in_w);
	if (spec->prepare_next && box->pre == NULL) { /* while this run goes on (e.g. a compile) */
		char *pc = NULL;
		if (sbx_pre_start(box, &box->pre, &pc) < 0)
			free(pc);                     /* the next run prepares its own */
	}

	sbx_loop(&r, spec);
	sbx_close(&r.in_w);
	/* the usual end: the program was reaped and nothing holds its output any more; the
	 * proxy's exit (the kernel ending the namespaces) and the cgroup's removal are left for
	 * after the result is out (sbx_reap_deferred) */
	bool quick = r.kill_reason == SBX_OK && r.reported && !r.failed && r.out.fd < 0 &&
	    r.err.fd < 0 && G.n_defer < sizeof G.defer / sizeof G.defer[0];
	if (!quick) {
		while (waitpid(r.proxy, &proxy_status, 0) < 0 && errno == EINTR)
			;
		r.proxy = -1;
	}
	sbx_drain(&r);
	if (!quick)
		cg_run_kill(r.cg);        /* safety net: the namespace is already empty */
	rc = sbx_fill_result(&r, proxy_status, spec, res, cause);
	if (quick) {
		kill(r.proxy, SIGKILL);   /* it is exiting anyway; this makes sure */
		G.defer[G.n_defer].proxy = r.proxy;
		G.defer[G.n_defer++].cg = r.cg;
		r.proxy = -1;
		r.cg = NULL;
	}
	res->setup_us = r.started && r.t_start > t_enter ? r.t_start - t_enter : 0;
out:
	if (r.proxy > 0) {
		kill(r.proxy, SIGKILL);
		while (waitpid(r.proxy, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (rc < 0)
		res->status = SBX_ERROR;
	sbn_down(&link);
	cg_run_destroy(r.cg);
	if (r.t_end > 0 && rc == 0)
		res->teardown_us = sbx_now_us() - r.t_end;
	int fds[] = { r.in_w, r.out.fd, r.err.fd, r.sync_w, r.stat_r };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(r.out.buf);
	free(r.err.buf);
	free(r.ctx.envp);
	return rc;
}
