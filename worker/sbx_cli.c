/*
 * sbx_cli.c: corral-sandbox, the command-line front end of the sandbox for
 * tests and debugging.
 *
 *   corral-sandbox [options] -- /usr/bin/python3 main.py [--- /next/command args]...
 *
 * Each "---" starts another command run in the same box (e.g. compile then
 * run), each in fresh namespaces.  With --json every run prints one JSON
 * object on its own line; otherwise the program's stdout and stderr are
 * passed through.  Exit status: 0 if the sandbox ran (whatever the program
 * did), 2 on a sandbox failure (cause on stderr), 1 on bad usage, 3 if a
 * --get file could not be read (a symlink, a FIFO, missing, too large).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "sbx.h"

#define CLI_MAX_FILES 64
#define CLI_MAX_ENV   64

struct cli {
	struct sbx_config cfg;
	struct sbx_limits lim;
	uint64_t disk_bytes;
	int slot;
	bool json, verbose;
	const char *files[CLI_MAX_FILES];
	int nfiles;
	char *env[CLI_MAX_ENV + 1];
	int nenv;
	const char *stdin_file;
	const char *gets[CLI_MAX_FILES];
	int ngets;
	uint64_t cancel_after_ms;
	uint64_t t_cancel;
	int network;
};

/* Prints the usage text to f. */
static void cli_usage(FILE *f)
{
	fputs("usage: corral-sandbox [options] -- /abs/program [args...] [--- /abs/program2 args...]\n"
	    "  --wall-ms N --cpu-ms N --mem-mb N --procs N --disk-mb N --fsize-mb N\n"
	    "  --output-bytes N --open-files N --vcpu N --slot N\n"
	    "  --file NAME=HOSTPATH (repeatable)  --stdin-file PATH  --env K=V (repeatable)\n"
	    "  --box-dir DIR (default /run/corral/boxes)  --uid-base N (default 60000)\n"
	    "  --cgroup auto|v1|v2|none  --allow-weak  --cancel-after-ms N\n"
	    "  --get NAME (print a file the job left in the box, after the runs; repeatable)\n"
	    "  --network zerotrust|semitrusted (default zerotrust)\n"
	    "  --json  -v|--verbose  --cgroup-desc (print the cgroup setup and exit)\n", f);
}

/* Parses an unsigned decimal option value or exits with usage. */
static uint64_t cli_num(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || *s == '-') {
		fprintf(stderr, "corral-sandbox: bad value for %s: %s\n", opt, s);
		exit(1);
	}
	return v;
}

/* Reads a whole host file into a malloc'd buffer (caller frees); NULL on error. */
static char *cli_slurp(const char *path, size_t *len, mode_t *mode)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)sb.st_size + 1);
	size_t got = 0;
	while (buf != NULL && got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	if (mode != NULL)
		*mode = (sb.st_mode & 0111) ? 0755 : 0644;
	return buf;
}

/* poll_cb for --cancel-after-ms: asks to stop once the time has come. */
static int cli_poll(void *arg)
{
	struct cli *c = arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	return c->cancel_after_ms > 0 && now >= c->t_cancel;
}

/* Prints one result as a JSON object on one line. */
static void cli_print_json(const struct sbx_result *r)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string(sbx_status_name(r->status)));
	json_object_object_add(o, "exit_code", json_object_new_int(r->exit_code));
	json_object_object_add(o, "signal", json_object_new_int(r->signal));
	json_object_object_add(o, "wall_ms", json_object_new_int64((int64_t)(r->wall_us / 1000)));
	json_object_object_add(o, "wall_us", json_object_new_int64((int64_t)r->wall_us));
	json_object_object_add(o, "cpu_ms", json_object_new_int64((int64_t)(r->cpu_us / 1000)));
	json_object_object_add(o, "cpu_us", json_object_new_int64((int64_t)r->cpu_us));
	json_object_object_add(o, "memory_kb", json_object_new_int64((int64_t)(r->memory_peak_bytes / 1024)));
	json_object_object_add(o, "oom", json_object_new_boolean(r->oom_killed));
	json_object_object_add(o, "timed_out", json_object_new_boolean(r->timed_out));
	json_object_object_add(o, "cpu_exceeded", json_object_new_boolean(r->cpu_exceeded));
	json_object_object_add(o, "cancelled", json_object_new_boolean(r->cancelled));
	json_object_object_add(o, "output_exceeded", json_object_new_boolean(r->output_exceeded));
	json_object_object_add(o, "stdout", json_object_new_string_len(r->out, (int)r->out_len));
	json_object_object_add(o, "stdout_truncated", json_object_new_boolean(r->out_truncated));
	json_object_object_add(o, "stdout_dropped", json_object_new_int64((int64_t)r->out_dropped));
	json_object_object_add(o, "stderr", json_object_new_string_len(r->err, (int)r->err_len));
	json_object_object_add(o, "stderr_truncated", json_object_new_boolean(r->err_truncated));
	json_object_object_add(o, "stderr_dropped", json_object_new_int64((int64_t)r->err_dropped));
	json_object_object_add(o, "cgroup", json_object_new_string(sbx_cgroup_desc()));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
}

/* Passes a result's output through to our stdout/stderr (and a summary with -v). */
static void cli_print_plain(const struct cli *c, const struct sbx_result *r)
{
	fwrite(r->out, 1, r->out_len, stdout);
	fflush(stdout);
	fwrite(r->err, 1, r->err_len, stderr);
	if (c->verbose)
		fprintf(stderr, "[corral-sandbox] status=%s exit=%d signal=%d wall=%" PRIu64 "ms cpu=%"
		    PRIu64 "ms mem=%" PRIu64 "kB oom=%d dropped=%" PRIu64 "/%" PRIu64 "\n",
		    sbx_status_name(r->status), r->exit_code, r->signal, r->wall_us / 1000,
		    r->cpu_us / 1000, r->memory_peak_bytes / 1024, r->oom_killed,
		    r->out_dropped, r->err_dropped);
}

/* Parses the options into c; returns the index of the first command word. */
static int cli_parse(struct cli *c, int argc, char **argv)
{
	enum { O_WALL = 256, O_CPU, O_MEM, O_PROCS, O_DISK, O_FSIZE, O_OUT, O_NOFILE, O_VCPU,
	    O_SLOT, O_FILE, O_STDIN, O_ENV, O_JSON, O_BOXDIR, O_UID, O_CG, O_WEAK, O_CANCEL, O_DESC, O_GET, O_NET };
	static const struct option opts[] = {
		{ "wall-ms", 1, NULL, O_WALL }, { "cpu-ms", 1, NULL, O_CPU },
		{ "mem-mb", 1, NULL, O_MEM }, { "procs", 1, NULL, O_PROCS },
		{ "disk-mb", 1, NULL, O_DISK }, { "fsize-mb", 1, NULL, O_FSIZE },
		{ "output-bytes", 1, NULL, O_OUT }, { "open-files", 1, NULL, O_NOFILE },
		{ "vcpu", 1, NULL, O_VCPU }, { "slot", 1, NULL, O_SLOT },
		{ "file", 1, NULL, O_FILE }, { "stdin-file", 1, NULL, O_STDIN },
		{ "env", 1, NULL, O_ENV }, { "json", 0, NULL, O_JSON },
		{ "box-dir", 1, NULL, O_BOXDIR }, { "uid-base", 1, NULL, O_UID },
		{ "cgroup", 1, NULL, O_CG }, { "allow-weak", 0, NULL, O_WEAK },
		{ "cancel-after-ms", 1, NULL, O_CANCEL }, { "cgroup-desc", 0, NULL, O_DESC },
		{ "get", 1, NULL, O_GET }, { "network", 1, NULL, O_NET },
		{ "verbose", 0, NULL, 'v' }, { "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (o) {
		case O_WALL: c->lim.wall_ms = cli_num("--wall-ms", optarg); break;
		case O_CPU: c->lim.cpu_ms = cli_num("--cpu-ms", optarg); break;
		case O_MEM: c->lim.memory_bytes = cli_num("--mem-mb", optarg) << 20; break;
		case O_PROCS: c->lim.processes = (unsigned)cli_num("--procs", optarg); break;
		case O_DISK: c->disk_bytes = cli_num("--disk-mb", optarg) << 20; break;
		case O_FSIZE: c->lim.fsize_bytes = cli_num("--fsize-mb", optarg) << 20; break;
		case O_OUT: c->lim.output_bytes = cli_num("--output-bytes", optarg); break;
		case O_NOFILE: c->lim.open_files = (unsigned)cli_num("--open-files", optarg); break;
		case O_VCPU: c->lim.vcpu = (unsigned)cli_num("--vcpu", optarg); break;
		case O_SLOT: c->slot = (int)cli_num("--slot", optarg); break;
		case O_FILE:
			if (c->nfiles == CLI_MAX_FILES || strchr(optarg, '=') == NULL) {
				fprintf(stderr, "corral-sandbox: bad or too many --file\n");
				exit(1);
			}
			c->files[c->nfiles++] = optarg;
			break;
		case O_STDIN: c->stdin_file = optarg; break;
		case O_GET:
			if (c->ngets == CLI_MAX_FILES) {
				fprintf(stderr, "corral-sandbox: too many --get\n");
				exit(1);
			}
			c->gets[c->ngets++] = optarg;
			break;
		case O_ENV:
			if (c->nenv == CLI_MAX_ENV) {
				fprintf(stderr, "corral-sandbox: too many --env\n");
				exit(1);
			}
			c->env[c->nenv++] = optarg;
			break;
		case O_JSON: c->json = true; break;
		case O_BOXDIR: c->cfg.box_dir = optarg; break;
		case O_UID:
			c->cfg.uid_base = (uid_t)cli_num("--uid-base", optarg);
			c->cfg.gid_base = (gid_t)c->cfg.uid_base;
			break;
		case O_CG:
			c->cfg.cgroup_mode = strcmp(optarg, "v1") == 0 ? SBX_CG_V1 :
			    strcmp(optarg, "v2") == 0 ? SBX_CG_V2 :
			    strcmp(optarg, "none") == 0 ? SBX_CG_NONE : SBX_CG_AUTO;
			break;
		case O_WEAK: c->cfg.allow_weak = true; break;
		case O_NET:
			if (strcmp(optarg, "zerotrust") == 0)
				c->network = 0;
			else if (strcmp(optarg, "semitrusted") == 0)
				c->network = 1;
			else {
				cli_usage(stderr);
				exit(1);
			}
			break;
		case O_CANCEL: c->cancel_after_ms = cli_num("--cancel-after-ms", optarg); break;
		case O_DESC: c->verbose = true; c->slot = -1; break;
		case 'v': c->verbose = true; break;
		case 'h': cli_usage(stdout); exit(0);
		default: cli_usage(stderr); exit(1);
		}
	}
	return optind;
}

/* Puts the --file entries into the box; 0 or -1 (message printed). */
static int cli_put_files(struct cli *c, struct sbx_box *box)
{
	for (int i = 0; i < c->nfiles; i++) {
		char *spec = strdup(c->files[i]), *eq = strchr(spec, '=');
		*eq = '\0';
		size_t len = 0;
		mode_t mode = 0644;
		char *data = cli_slurp(eq + 1, &len, &mode), *cause = NULL;
		if (data == NULL) {
			fprintf(stderr, "corral-sandbox: cannot read %s\n", eq + 1);
			free(spec);
			return -1;
		}
		int rc = sbx_box_put(box, spec, data, len, mode, &cause);
		free(data);
		if (rc < 0) {
			fprintf(stderr, "corral-sandbox: %s\n", cause);
			free(cause);
			free(spec);
			return -1;
		}
		free(spec);
	}
	return 0;
}

/* Prints the --get files (JSON lines with --json, else raw content on stdout); 0, or -1 if one failed. */
static int cli_get_files(struct cli *c, struct sbx_box *box)
{
	int rc = 0;
	for (int i = 0; i < c->ngets; i++) {
		char *data = NULL, *cause = NULL;
		size_t len = 0;
		int r = sbx_box_get(box, c->gets[i], 16u << 20, &data, &len, &cause);
		if (c->json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "get", json_object_new_string(c->gets[i]));
			json_object_object_add(o, "ok", json_object_new_boolean(r == 0));
			if (r == 0)
				json_object_object_add(o, "data", json_object_new_string_len(data, (int)len));
			else
				json_object_object_add(o, "error", json_object_new_string(cause));
			puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
			json_object_put(o);
		} else if (r == 0) {
			fwrite(data, 1, len, stdout);
		} else {
			fprintf(stderr, "corral-sandbox: %s\n", cause);
		}
		if (r < 0)
			rc = -1;
		free(data);
		free(cause);
	}
	fflush(stdout);
	return rc;
}

/* Runs one command in the box and prints its result (more: another command follows, whose
 * sandbox is prepared during this one); 0, or -1 on sandbox failure. */
static int cli_run_one(struct cli *c, struct sbx_box *box, char **argv, const char *in, size_t inlen,
    bool more)
{
	struct sbx_run_spec spec;
	struct sbx_result res;
	char *cause = NULL;

	memset(&spec, 0, sizeof spec);
	spec.argv = argv;
	spec.env = c->env;
	spec.stdin_data = in;
	spec.stdin_len = inlen;
	spec.lim = c->lim;
	spec.extra_fd = -1;
	spec.network = c->network;
	spec.prepare_next = more;	/* the next command's sandbox is built during this one */
	if (c->cancel_after_ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		c->t_cancel = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + c->cancel_after_ms;
		spec.poll_cb = cli_poll;
		spec.poll_arg = c;
	}
	if (sbx_box_run(box, &spec, &res, &cause) < 0) {
		fprintf(stderr, "corral-sandbox: %s\n", cause ? cause : "run failed");
		free(cause);
		sbx_result_free(&res);
		return -1;
	}
	if (c->json)
		cli_print_json(&res);
	else
		cli_print_plain(c, &res);
	sbx_result_free(&res);
	return 0;
}

/* Entry point: parse, init, make the box, run each command, clean up. */
int main(int argc, char **argv)
{
	struct cli c;
	char *cause = NULL;
	int rc = 2;

	memset(&c, 0, sizeof c);
	c.cfg.box_dir = "/run/corral/boxes";
	c.cfg.uid_base = 60000;
	c.cfg.gid_base = 60000;
	c.cfg.cgroup_mode = SBX_CG_AUTO;
	c.lim.wall_ms = 5000;
	c.lim.memory_bytes = 256u << 20;
	c.lim.fsize_bytes = 16u << 20;
	c.lim.vcpu = 1;
	c.disk_bytes = 64u << 20;
	int first = cli_parse(&c, argc, argv);
	if (c.slot >= 0 && first >= argc) {
		cli_usage(stderr);
		return 1;
	}
	if (strcmp(c.cfg.box_dir, "/run/corral/boxes") == 0)
		mkdir("/run/corral", 0755);
	if (sbx_global_init(&c.cfg, &cause) < 0) {
		fprintf(stderr, "corral-sandbox: %s\n", cause);
		free(cause);
		return 2;
	}
	if (c.slot < 0) {
		printf("%s\n", sbx_cgroup_desc());
		return 0;
	}

	size_t inlen = 0;
	char *in = NULL;
	if (c.stdin_file != NULL && (in = cli_slurp(c.stdin_file, &inlen, NULL)) == NULL) {
		fprintf(stderr, "corral-sandbox: cannot read %s\n", c.stdin_file);
		return 2;
	}
	struct sbx_box *box = NULL;
	if (sbx_box_init(&box, &c.cfg, c.slot, c.disk_bytes, &cause) < 0) {
		fprintf(stderr, "corral-sandbox: %s\n", cause);
		free(cause);
		free(in);
		return 2;
	}
	if (cli_put_files(&c, box) == 0) {
		rc = 0;
		for (int i = first; i < argc && rc == 0;) {
			int j = i;
			while (j < argc && strcmp(argv[j], "---") != 0)
				j++;
			argv[j < argc ? j : argc] = NULL;    /* argv[argc] is NULL already */
			if (j > i && cli_run_one(&c, box, argv + i, in, inlen, j < argc) < 0)
				rc = 2;
			i = j + 1;
		}
		if (rc == 0 && cli_get_files(&c, box) < 0)
			rc = 3;
	}
	sbx_box_free(box);
	sbx_pool_free();	/* finishes the runs' teardown */
	free(in);
	return rc;
}
