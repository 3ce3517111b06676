/*
 * sbx_seccomp.c: the seccomp filter every sandboxed program runs under.
 *
 * Default allow, with a deny list of the kernel interfaces a job has no use
 * for and that are not (or not fully) confined by namespaces, cgroups and
 * the dropped capabilities.  Most of these would fail anyway for a non-root
 * process without capabilities; the filter is a second wall for the day a
 * kernel bug makes one of them reachable.
 *
 * The filter is built once, in sbx_global_init, with libseccomp and
 * exported to a plain BPF program in memory.  The program child installs
 * it with prctl(PR_SET_SECCOMP) right before execve, so nothing after the
 * fork needs libseccomp or malloc.
 *
 * Only the native ABI is allowed: a syscall made through the 32-bit x86 ABI
 * (int 0x80) or the x32 ABI kills the process (SCMP_FLTATR_ACT_BADARCH),
 * which closes the classic "the filter only checks x86_64 numbers" hole.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <seccomp.h>

#include "sbx.h"

struct scf_rule {
	const char *name;      /* syscall name as libseccomp knows it */
	int err;               /* errno returned (ENOSYS for clone3) */
	const char *why;       /* one-line reason, also for the README table */
};

/* Syscalls denied whatever their arguments. */
static const struct scf_rule scf_deny[] = {
	{ "mount", EPERM, "mounting could reshape the sandbox's view of the host" },
	{ "umount2", EPERM, "unmounting could uncover what the sandbox root hides" },
	{ "umount", EPERM, "same as umount2 (legacy entry point)" },
	{ "pivot_root", EPERM, "changing the root is how chroot-style escapes start" },
	{ "chroot", EPERM, "chroot tricks are the classic jail escape" },
	{ "move_mount", EPERM, "new mount API: same powers as mount" },
	{ "open_tree", EPERM, "new mount API: clones mount trees" },
	{ "fsopen", EPERM, "new mount API: creates filesystems" },
	{ "fsconfig", EPERM, "new mount API: configures filesystems" },
	{ "fsmount", EPERM, "new mount API: makes mounts" },
	{ "fspick", EPERM, "new mount API: reconfigures mounts" },
	{ "mount_setattr", EPERM, "new mount API: changes mount flags" },
	{ "ptrace", EPERM, "tracing other processes can hijack them" },
	{ "process_vm_readv", EPERM, "reads another process's memory" },
	{ "process_vm_writev", EPERM, "writes another process's memory" },
	{ "pidfd_getfd", EPERM, "steals file descriptors from another process" },
	{ "process_madvise", EPERM, "acts on another process's memory" },
	{ "kexec_load", EPERM, "loads a new kernel" },
	{ "kexec_file_load", EPERM, "loads a new kernel" },
	{ "init_module", EPERM, "loads kernel code" },
	{ "finit_module", EPERM, "loads kernel code" },
	{ "delete_module", EPERM, "unloads kernel code" },
	{ "bpf", EPERM, "eBPF is a large kernel attack surface" },
	{ "perf_event_open", EPERM, "perf is a large attack surface and a side channel" },
	{ "keyctl", EPERM, "kernel keyrings are not namespaced" },
	{ "add_key", EPERM, "kernel keyrings are not namespaced" },
	{ "request_key", EPERM, "kernel keyrings are not namespaced" },
	{ "unshare", EPERM, "new namespaces (user ns above all) widen the attack surface" },
	{ "setns", EPERM, "joining other namespaces is an escape" },
	{ "clone3", ENOSYS, "its flags sit in memory a filter cannot read; ENOSYS makes libc fall back to clone" },
	{ "io_uring_setup", EPERM, "io_uring bypasses seccomp and has had many kernel bugs" },
	{ "io_uring_enter", EPERM, "io_uring bypasses seccomp and has had many kernel bugs" },
	{ "io_uring_register", EPERM, "io_uring bypasses seccomp and has had many kernel bugs" },
	{ "userfaultfd", EPERM, "a favourite tool for winning kernel races" },
	{ "swapon", EPERM, "host administration" },
	{ "swapoff", EPERM, "host administration" },
	{ "reboot", EPERM, "host administration" },
	{ "acct", EPERM, "host administration (process accounting)" },
	{ "quotactl", EPERM, "host administration (disk quotas)" },
	{ "quotactl_fd", EPERM, "host administration (disk quotas)" },
	{ "name_to_handle_at", EPERM, "file handles bypass path-based confinement" },
	{ "open_by_handle_at", EPERM, "file handles bypass path-based confinement (shocker)" },
	{ "syslog", EPERM, "the kernel log is host information" },
	{ "settimeofday", EPERM, "the clock is shared with the host" },
	{ "clock_settime", EPERM, "the clock is shared with the host" },
	{ "clock_adjtime", EPERM, "the clock is shared with the host" },
	{ "adjtimex", EPERM, "the clock is shared with the host" },
	{ "stime", EPERM, "the clock is shared with the host" },
	{ "uselib", EPERM, "obsolete loader entry point" },
	{ "lookup_dcookie", EPERM, "profiling interface, host information" },
	{ "iopl", EPERM, "raw I/O port access" },
	{ "ioperm", EPERM, "raw I/O port access" },
	{ "fanotify_init", EPERM, "filesystem-wide monitoring" },
	{ "vhangup", EPERM, "terminal control of the host" },
	{ "nfsservctl", EPERM, "obsolete NFS server control" },
};

/* CLONE_NEW* flags that clone() must not carry (CLONE_NEWTIME only exists for clone3/unshare). */
static const unsigned long scf_clone_ns[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

/* Socket families a job has no use for (AF_NETLINK is handled apart). */
static const struct { int family; const char *why; } scf_families[] = {
	{ AF_PACKET, "raw link-layer access" },
	{ AF_VSOCK, "talks to the hypervisor / host, not namespaced" },
	{ AF_KEY, "IPsec key management" },
	{ AF_ALG, "kernel crypto API, a recurring source of kernel bugs" },
};

/* Adds one unconditional deny rule; unknown names (old libseccomp or arch) are skipped. */
static int scf_add_simple(scmp_filter_ctx ctx, const struct scf_rule *r, char **cause)
{
	int nr = seccomp_syscall_resolve_name(r->name);
	if (nr == __NR_SCMP_ERROR)
		return 0;
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(r->err), nr, 0);
	if (rc < 0 && rc != -EDOM)
		return sbx_set_error(cause, "seccomp rule %s: %s", r->name, strerror(-rc));
	return 0;
}

/* Adds all the rules to ctx. */
static int scf_add_rules(scmp_filter_ctx ctx, char **cause)
{
	int rc;

	for (size_t i = 0; i < sizeof scf_deny / sizeof scf_deny[0]; i++)
		if (scf_add_simple(ctx, &scf_deny[i], cause) < 0)
			return -1;

	/* clone with any namespace flag: new namespaces widen the attack surface */
	for (size_t i = 0; i < sizeof scf_clone_ns / sizeof scf_clone_ns[0]; i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, scf_clone_ns[i], scf_clone_ns[i]));
		if (rc < 0)
			return sbx_set_error(cause, "seccomp rule clone: %s", strerror(-rc));
	}

	/* socket families without a use for a job */
	for (size_t i = 0; i < sizeof scf_families / sizeof scf_families[0]; i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)scf_families[i].family));
		if (rc < 0)
			return sbx_set_error(cause, "seccomp rule socket(%d): %s",
			    scf_families[i].family, strerror(-rc));
	}

	/* netlink: only NETLINK_ROUTE (getaddrinfo/if_nameindex use it); the rest talks to host subsystems */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 2,
	    SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE));
	if (rc < 0)
		return sbx_set_error(cause, "seccomp rule netlink: %s", strerror(-rc));
	return 0;
}

/* Reads the exported BPF program back from fd into a malloc'd sock_fprog (owned by the caller). */
static int scf_read_prog(int fd, struct sock_fprog **prog, char **cause)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_size <= 0 ||
	    sb.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
	    sb.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return sbx_set_error(cause, "seccomp export: bad program size");

	struct sock_fprog *p = calloc(1, sizeof *p);
	struct sock_filter *ins = malloc((size_t)sb.st_size);
	if (p == NULL || ins == NULL) {
		free(p);
		free(ins);
		return sbx_set_error(cause, "out of memory");
	}
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t n = pread(fd, (char *)ins + got, (size_t)sb.st_size - got, (off_t)got);
		if (n <= 0) {
			free(p);
			free(ins);
			return sbx_set_error(cause, "seccomp export read: %s",
			    n == 0 ? "short file" : strerror(errno));
		}
		got += (size_t)n;
	}
	p->len = (unsigned short)(sb.st_size / (off_t)sizeof(struct sock_filter));
	p->filter = ins;
	*prog = p;
	return 0;
}

/* Builds the filter; *prog is malloc'd, freed with sbx_seccomp_free. */
int sbx_seccomp_build(struct sock_fprog **prog, char **cause)
{
	int fd = -1, rc;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL)
		return sbx_set_error(cause, "seccomp_init failed");

	/* any non-native ABI (i386 int 0x80, x32) kills the whole process */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		sbx_set_error(cause, "seccomp badarch: %s", strerror(-rc));
		goto fail;
	}
	/* no_new_privs is set by the sandbox itself, before loading */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (scf_add_rules(ctx, cause) < 0)
		goto fail;

	fd = memfd_create("corral-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		sbx_set_error(cause, "memfd_create: %s", strerror(errno));
		goto fail;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		sbx_set_error(cause, "seccomp_export_bpf: %s", strerror(-rc));
		goto fail;
	}
	if (scf_read_prog(fd, prog, cause) < 0)
		goto fail;
	close(fd);
	seccomp_release(ctx);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return -1;
}

/* Frees a program made by sbx_seccomp_build. */
void sbx_seccomp_free(struct sock_fprog *prog)
{
	if (prog == NULL)
		return;
	free(prog->filter);
	free(prog);
}
