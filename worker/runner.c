/* runner: one job, one fresh box, never reused. */
#include "runner.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "util.h"

#define RUNNER_MAX_OUTPUT	(64u << 20)	/* largest compile output file the cache keeps */

static struct cache runner_cache = { .dirfd = -1 };
static const struct lang_table *runner_langs;
static char **runner_fp;		/* per language: toolchain identity for cache keys */
static struct sbx_artifacts runner_art_caps = { .max_files = 10, .max_file = 5u << 20,
    .max_total = 10u << 20 };		/* caps only; each job copies them */

/* Returns the length of a valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	unsigned cp;
	if (s[0] < 0x80)
		return s[0] == 0 ? 0 : 1;
	if ((s[0] & 0xe0) == 0xc0) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		need = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/* Makes a JSON string of valid UTF-8 from arbitrary bytes. */
json_object *runner_text(const char *s, size_t n)
{
	struct buf b;
	json_object *o;
	size_t i = 0;
	buf_init(&b, 0);
	while (i < n) {
		size_t k = utf8_len((const unsigned char *)s + i, n - i);
		if (k == 0) {
			buf_add(&b, "\xef\xbf\xbd", 3);
			i++;
		} else {
			buf_add(&b, s + i, k);
			i += k;
		}
	}
	o = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
	buf_free(&b);
	return o;
}

/* Compares outputs the way judges do: trailing white space of each line and of the end ignored. */
static int output_matches(const char *got, size_t glen, const char *want)
{
	size_t wlen = strlen(want), gi = 0, wi = 0;
	for (;;) {
		size_t ge = gi, we = wi, gt, wt;
		while (ge < glen && got[ge] != '\n')
			ge++;
		while (we < wlen && want[we] != '\n')
			we++;
		gt = ge;
		wt = we;
		while (gt > gi && (got[gt - 1] == ' ' || got[gt - 1] == '\t' || got[gt - 1] == '\r'))
			gt--;
		while (wt > wi && (want[wt - 1] == ' ' || want[wt - 1] == '\t' || want[wt - 1] == '\r'))
			wt--;
		if (gt - gi != wt - wi || memcmp(got + gi, want + wi, gt - gi) != 0)
			return 0;
		gi = ge < glen ? ge + 1 : ge;
		wi = we < wlen ? we + 1 : we;
		if (gi >= glen || wi >= wlen)
			break;
	}
	/* whatever is left on either side must be blank */
	for (; gi < glen; gi++)
		if (got[gi] != ' ' && got[gi] != '\n' && got[gi] != '\t' && got[gi] != '\r')
			return 0;
	for (; wi < wlen; wi++)
		if (want[wi] != ' ' && want[wi] != '\n' && want[wi] != '\t' && want[wi] != '\r')
			return 0;
	return 1;
}

/* Fills sandbox limits from the job's. */
static void runner_limits(const struct job *j, struct sbx_limits *l)
{
	memset(l, 0, sizeof *l);
	l->wall_ms = (uint64_t)j->lim.wall_s * 1000;
	l->cpu_ms = (uint64_t)j->lim.cpu_s * 1000;
	l->memory_bytes = (uint64_t)j->lim.memory_mb << 20;
	l->fsize_bytes = (uint64_t)j->lim.disk_mb << 20;
	l->output_bytes = (uint64_t)j->lim.output_bytes;
	l->processes = (unsigned)j->lim.processes;
	l->open_files = 256;
	l->vcpu = (unsigned)j->lim.vcpu;
}

/* Builds argv: the table's argv followed by extra (may be NULL); caller frees the array only. */
static char **runner_argv(char **base, char **extra)
{
	size_t n = 0, m = 0;
	char **v;
	while (base[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	v = xcalloc(n + m + 1, sizeof *v);
	memcpy(v, base, n * sizeof *v);
	if (m > 0)
		memcpy(v + n, extra, m * sizeof *v);
	return v;
}

/* A duration in microseconds as a json number of milliseconds with 3 decimals (new object). */
static json_object *runner_ms(uint64_t us)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%.3f", (double)us / 1000.0);
	return json_object_new_double_s((double)us / 1000.0, buf);
}

/* Adds the accounting of one sandbox run to the result object. */
static void runner_account(json_object *r, const struct sbx_result *s)
{
	json_object_object_add(r, "exit_code", json_object_new_int(s->exit_code));
	json_object_object_add(r, "exit_signal", s->signal ? json_object_new_int(s->signal) : NULL);
	json_object_object_add(r, "wall_ms", runner_ms(s->wall_us));
	json_object_object_add(r, "cpu_ms", runner_ms(s->cpu_us));
	json_object_object_add(r, "memory_kb", json_object_new_int64((int64_t)(s->memory_peak_bytes / 1024)));
}

/* Maps the sandbox's verdict to the result taxonomy (before output checks). */
static const char *runner_status(const struct sbx_result *s)
{
	switch (s->status) {
	case SBX_TIMEOUT:
	case SBX_CPU_LIMIT:
		return "timeout";
	case SBX_MEMORY_LIMIT:
		return "memory_limit";
	case SBX_OUTPUT_LIMIT:
		return "output_limit";
	case SBX_CANCELLED:
		return "cancelled";
	case SBX_ERROR:
		return "internal_error";
	case SBX_OK:
		break;
	}
	return s->exit_code == 0 && s->signal == 0 ? "completed" : "runtime_error";
}

/* Describes a file for the toolchain identity: resolved path, size, mtime, inode. */
static void fp_file(struct buf *b, const char *path)
{
	char real[PATH_MAX];
	struct stat sb;
	char line[PATH_MAX + 96];
	int n;
	if (realpath(path, real) == NULL || stat(real, &sb) < 0)
		n = snprintf(line, sizeof line, "%s:missing\n", path);
	else
		n = snprintf(line, sizeof line, "%s:%lld:%lld.%09ld:%llu\n", real, (long long)sb.st_size,
		    (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec, (unsigned long long)sb.st_ino);
	buf_add(b, line, (size_t)n);
}

/* Builds a language's toolchain identity: its compilers' files and the dpkg file lists of
 * its packages (rewritten by every install or upgrade of the package). */
static char *toolchain_fp(const struct lang *l)
{
	struct buf b;
	char *r;
	buf_init(&b, 0);
	for (size_t i = 0; i < l->ncompile; i++)
		fp_file(&b, l->compile_steps[i][0]);
	for (char **p = l->packages; p != NULL && *p != NULL; p++) {
		char *a = xasprintf("/var/lib/dpkg/info/%s.list", *p);
		char *m = xasprintf("/var/lib/dpkg/info/%s:amd64.list", *p);
		fp_file(&b, access(a, F_OK) == 0 ? a : m);
		free(a);
		free(m);
	}
	buf_add(&b, "", 1);
	r = xstrdup(b.data);
	buf_free(&b);
	return r;
}

/* Returns the first non-blank line of s (at most 200 bytes) that is not a runtime's
 * warning (a JVM's "... warning: ..."), trimmed; NULL if none. */
static char *first_line(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t e;
		while (i < n && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t'))
			i++;
		e = i;
		while (e < n && s[e] != '\n' && s[e] != '\r')
			e++;
		if (e > i && memmem(s + i, e - i, "warning", 7) == NULL && memmem(s + i, e - i, "WARNING", 7) == NULL) {
			size_t k = e - i < 200 ? e : i + 200;
			while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t'))
				k--;
			return xasprintf("%.*s", (int)(k - i), s + i);
		}
		i = e;
	}
	return NULL;
}

/* Runs a language's version command in a fresh box of slot 0; returns its first line or NULL. */
static char *probe_version(const struct lang *l, const struct sbx_config *sc)
{
	struct sbx_box *box = NULL;
	struct sbx_run_spec spec;
	struct sbx_result res;
	char *cause = NULL, *v = NULL;
	memset(&spec, 0, sizeof spec);
	memset(&res, 0, sizeof res);
	spec.argv = l->version_argv;
	spec.env = l->env;
	spec.extra_fd = -1;
	spec.lim.wall_ms = 30000;
	spec.lim.cpu_ms = 30000;
	spec.lim.memory_bytes = (uint64_t)(l->memory_mb > 1024 ? l->memory_mb : 1024) << 20;
	spec.lim.fsize_bytes = 16u << 20;
	spec.lim.processes = l->processes > 256 ? (unsigned)l->processes : 256;
	spec.lim.open_files = 256;
	if (sbx_box_init(&box, sc, 0, 64u << 20, &cause) < 0 || sbx_box_run(box, &spec, &res, &cause) < 0) {
		log_warn("language %s: version command: %s", l->id, cause ? cause : "failed");
	} else if (res.status == SBX_OK) {
		v = first_line(res.out, res.out_len);
		if (v == NULL)
			v = first_line(res.err, res.err_len);
	}
	free(cause);
	sbx_result_free(&res);
	if (box != NULL)
		sbx_box_free(box);
	return v;
}

/* The version prober (a child of the worker): measures every installed toolchain's
 * version once and writes the languages table that GET /languages reads. */
static void probe_main(const struct conf *c, const struct lang_table *t, const struct sbx_config *sc,
    pid_t parent)
{
	PGconn *db;
	uint64_t t0 = util_mono_ms();
	int found = 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, "corral-probe");
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	db = PQconnectdb(c->db);
	if (PQstatus(db) != CONNECTION_OK) {
		log_error("version prober: %s", PQerrorMessage(db));
		PQfinish(db);
		_exit(1);
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct lang *l = &t->v[i];
		char *v = l->installed && l->version_argv != NULL ? probe_version(l, sc) : NULL;
		const char *params[3] = { l->id, v, l->installed ? "t" : "f" };
		PGresult *r = PQexecParams(db,
		    "INSERT INTO languages (id, version, installed, updated_at) VALUES ($1, $2, $3, now()) "
		    "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, installed = EXCLUDED.installed, "
		    "updated_at = now()", 3, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			log_warn("version prober: %s: %s", l->id, PQerrorMessage(db));
		PQclear(r);
		found += l->installed;
		free(v);
	}
	PQfinish(db);
	sbx_pool_free();	/* finishes the runs' teardown */
	log_info("version prober: %d of %zu languages installed, versions measured in %llu ms", found, t->n,
	    (unsigned long long)(util_mono_ms() - t0));
	_exit(0);
}

/* Opens the compile cache, computes the toolchain identities and starts the version prober. */
int runner_init(const struct conf *c, const struct lang_table *t, const struct sbx_config *sc, char **cause)
{
	pid_t parent = getpid(), pid;
	if (cache_open(&runner_cache, c->cache_dir, (uint64_t)c->cache_max_mb << 20, cause) < 0)
		return -1;
	runner_langs = t;
	runner_art_caps.max_files = (size_t)c->artifacts_max_files;
	runner_art_caps.max_file = (uint64_t)c->artifacts_max_file_bytes;
	runner_art_caps.max_total = (uint64_t)c->artifacts_max_bytes;
	runner_fp = xcalloc(t->n + 1, sizeof *runner_fp);
	for (size_t i = 0; i < t->n; i++)
		runner_fp[i] = toolchain_fp(&t->v[i]);
	pid = fork();
	if (pid < 0)
		return util_fail(cause, "fork: %s", strerror(errno));
	if (pid == 0)
		probe_main(c, t, sc, parent);
	return 0;
}

/* Compares two strings through pointers (for qsort). */
static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the names of the files the compile should leave (the language's outputs, with
 * "*.in=*.out" mapped over the job's files); NULL-terminated, caller frees with lang_strv_free. */
static char **output_names(const struct lang *l, char *const *names)
{
	size_t p = 0, m = 0, k = 0;
	char **v;
	for (char **o = l->outputs; *o != NULL; o++)
		p++;
	while (names[m] != NULL)
		m++;
	v = xcalloc(p * (m + 1) + 1, sizeof *v);
	for (char **o = l->outputs; *o != NULL; o++) {
		char *eq = strchr(*o, '=');
		if (eq == NULL) {
			v[k++] = xstrdup(*o);
			continue;
		}
		for (size_t i = 0; names[i] != NULL; i++) {
			size_t il = (size_t)(eq - *o) - 1, nl = strlen(names[i]);	/* il: ".in" */
			/* declaration files (x.d.ts) compile to nothing */
			if (nl > il && memcmp(names[i] + nl - il, *o + 1, il) == 0 &&
			    !(nl > il + 2 && memcmp(names[i] + nl - il - 2, ".d", 2) == 0))
				v[k++] = xasprintf("%.*s%s", (int)(nl - il), names[i], eq + 2);
		}
	}
	return v;
}

/* Computes the cache key of a compile. */
static void compile_key(const struct job *j, size_t li, char ***steps, char **env, char *const *names,
    const char *src, char hex[65])
{
	struct cache_hash *h = cache_hash_new();
	size_t n = 0;
	const char **sorted;
	cache_hash_str(h, "corral compile cache v1");
	cache_hash_str(h, j->lang->id);
	cache_hash_str(h, runner_fp[li]);
	for (size_t i = 0; steps[i] != NULL; i++) {
		cache_hash_str(h, "step");
		for (char **a = steps[i]; *a != NULL; a++)
			cache_hash_str(h, *a);
	}
	cache_hash_str(h, "env");
	for (char **e = env; e != NULL && *e != NULL; e++)
		cache_hash_str(h, *e);
	cache_hash_str(h, "files");
	while (names[n] != NULL)
		n++;
	sorted = xcalloc(n + 1, sizeof *sorted);
	memcpy(sorted, names, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, str_cmp);
	for (size_t i = 0; i < n; i++) {
		const char *data = NULL;
		size_t len = 0;
		if (strcmp(sorted[i], src) == 0) {
			data = j->code;
			len = j->code_len;
		}
		for (size_t f = 0; data == NULL && f < j->nfiles; f++)
			if (strcmp(j->files[f].name, sorted[i]) == 0) {
				data = (const char *)j->files[f].data;
				len = j->files[f].len;
			}
		for (size_t f = 0; data == NULL && f < j->lang->nfiles; f++)
			if (strcmp(j->lang->files[f].name, sorted[i]) == 0) {
				data = j->lang->files[f].data;
				len = strlen(data);
			}
		cache_hash_str(h, sorted[i]);
		cache_hash_add(h, data ? data : "", len);
	}
	free(sorted);
	cache_hash_end(h, hex);
}

/* Joins the language's environment and the job's (the job's come last and win). */
static char **runner_env(const struct lang *l, char **job_env)
{
	size_t a = 0, b = 0;
	char **v;
	while (l->env != NULL && l->env[a] != NULL)
		a++;
	while (job_env != NULL && job_env[b] != NULL)
		b++;
	v = xcalloc(a + b + 1, sizeof *v);
	if (a > 0)
		memcpy(v, l->env, a * sizeof *v);
	if (b > 0)
		memcpy(v + a, job_env, b * sizeof *v);
	return v;
}

/* Returns true when name is in the NULL-terminated list. */
static bool name_in(char *const *names, const char *name)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* Copies a cache entry into the fresh box; returns 0, or -1 when a name is taken or a write fails. */
static int cache_to_box(struct sbx_box *box, const struct cache_entry *e, char *const *names, char **cause)
{
	for (size_t i = 0; i < e->n; i++)
		if (name_in(names, e->v[i].name))
			return util_fail(cause, "cached output %s has the name of a job file", e->v[i].name);
	for (size_t i = 0; i < e->n; i++)
		if (sbx_box_put(box, e->v[i].name, e->v[i].data, e->v[i].len, e->v[i].mode, cause) < 0)
			return -1;
	return 0;
}

/* Reads the compile's outputs out of the box (regular files only, never through a link)
 * and stores them under key. A missing or odd output just means no entry. */
static void box_to_cache(struct sbx_box *box, char **outs, const char *key)
{
	struct cache_entry e = { 0 };
	char *cause = NULL;
	size_t n = 0;
	while (outs[n] != NULL)
		n++;
	e.v = xcalloc(n + 1, sizeof *e.v);
	for (size_t i = 0; i < n; i++) {
		if (sbx_box_get(box, outs[i], RUNNER_MAX_OUTPUT, &e.v[i].data, &e.v[i].len, &cause) < 0) {
			log_warn("compile cache: not stored: %s", cause);
			goto out;
		}
		e.v[i].name = xstrdup(outs[i]);
		e.v[i].mode = 0755;
		e.n = i + 1;
	}
	if (cache_put(&runner_cache, key, &e, &cause) < 0)
		log_warn("compile cache: %s", cause);
out:
	free(cause);
	cache_entry_free(&e);
}

/* Adds the compile's outputs (the compiled binary) in the box to the artifacts. */
static void binary_artifacts(struct sbx_box *box, const struct lang *l, char **outs, char *const *names,
    struct sbx_artifacts *a)
{
	char **own = outs == NULL && l->outputs != NULL ? output_names(l, names) : NULL, **v = outs ? outs : own;
	if (v == NULL)
		sbx_artifacts_note(a, "the %s compile lists no output file to return", l->id);
	for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
		char *data = NULL, *cause = NULL;
		size_t len = 0;
		if (a->n >= a->max_files)
			sbx_artifacts_add(a, v[i], NULL, 0);	/* notes the count limit */
		else if (sbx_box_get(box, v[i], a->max_file, &data, &len, &cause) < 0)
			sbx_artifacts_note(a, "%s", cause);
		else
			sbx_artifacts_add(a, v[i], data, len);
		free(cause);
	}
	lang_strv_free(own);
}

/* Adds the artifacts (when there are any, or the job asked for its binary) to the result. */
static void runner_artifacts(json_object *r, const struct sbx_artifacts *a, bool asked)
{
	json_object *arr;
	if (a->n == 0 && a->note == NULL && !asked)
		return;
	arr = json_object_new_array();
	for (size_t i = 0; i < a->n; i++) {
		json_object *o = json_object_new_object();
		char *b64 = util_b64_encode((const unsigned char *)a->v[i].data, a->v[i].len);
		json_object_object_add(o, "filename", runner_text(a->v[i].name, strlen(a->v[i].name)));
		json_object_object_add(o, "content_base64", json_object_new_string(b64));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)a->v[i].len));
		json_object_array_add(arr, o);
		free(b64);
	}
	json_object_object_add(r, "artifacts", arr);
	if (a->note != NULL)
		json_object_object_add(r, "artifacts_note", runner_text(a->note, strlen(a->note)));
}

/* Runs one job and describes its outcome. */
const char *runner_run(const struct job *j, const struct sbx_config *sc, int slot,
    const struct runner_hooks *hooks, json_object **result)
{
	json_object *r = json_object_new_object(), *timings = json_object_new_object();
	const struct lang *l = j->lang;
	struct sbx_box *box = NULL;
	struct sbx_run_spec spec;
	struct sbx_result res;
	const char *status = "internal_error";
	char *cause = NULL, **argv = NULL, *src = lang_source_name(l, j->code, j->code_len);
	char **names = xcalloc(j->nfiles + l->nfiles + 2, sizeof *names), **env = runner_env(l, j->env);
	char ***steps = NULL, **outs = NULL, **run_tmpl = NULL, key[65];
	size_t nn = 0;
	uint64_t t0 = util_mono_us(), t1;
	struct sbx_artifacts arts = runner_art_caps;

	memset(&res, 0, sizeof res);
	*result = r;
	names[nn++] = src;
	for (size_t i = 0; i < j->nfiles; i++) {
		if (strcmp(j->files[i].name, src) == 0) {
			status = "runtime_error";
			json_object_object_add(r, "error", json_object_new_string(
			    "an input file has the name the program's source is written to"));
			json_object_object_add(r, "exit_code", json_object_new_int(-1));
			goto done;
		}
		names[nn++] = j->files[i].name;
	}
	if (sbx_box_init(&box, sc, slot, (uint64_t)j->lim.disk_mb << 20, &cause) < 0 ||
	    sbx_box_put(box, src, j->code, j->code_len, 0644, &cause) < 0)
		goto fail;
	for (size_t i = 0; i < j->nfiles; i++)
		if (sbx_box_put(box, j->files[i].name, j->files[i].data, j->files[i].len, 0644, &cause) < 0)
			goto fail;
	for (size_t i = 0; i < l->nfiles; i++) {
		if (name_in(names, l->files[i].name))
			continue;
		if (sbx_box_put(box, l->files[i].name, l->files[i].data, strlen(l->files[i].data), 0644, &cause) < 0)
			goto fail;
		names[nn++] = l->files[i].name;
	}
	memset(&spec, 0, sizeof spec);
	spec.env = env;
	runner_limits(j, &spec.lim);
	spec.network = j->network;
	spec.poll_cb = hooks->poll_cb;
	spec.poll_arg = hooks->arg;
	spec.extra_fd = hooks->extra_fd;
	t1 = util_mono_us();
	json_object_object_add(timings, "setup_ms", runner_ms(t1 - t0));

	if (l->compile_steps != NULL) {
		struct buf co;
		struct cache_entry hit = { 0 };
		bool cacheable = l->outputs != NULL && runner_cache.dirfd >= 0 && runner_langs != NULL &&
		    l >= runner_langs->v && l < runner_langs->v + runner_langs->n;
		steps = xcalloc(l->ncompile + 1, sizeof *steps);
		for (size_t i = 0; i < l->ncompile; i++)
			steps[i] = lang_expand(l, l->compile_steps[i], src, names);
		if (cacheable) {
			int got;
			compile_key(j, (size_t)(l - runner_langs->v), steps, env, names, src, key);
			outs = output_names(l, names);
			got = cache_get(&runner_cache, key, &hit, &cause);
			if (got < 0) {
				log_warn("compile cache: %s", cause);
				free(cause);
				cause = NULL;
			}
			if (got > 0) {
				int rc = cache_to_box(box, &hit, names, &cause);
				cache_entry_free(&hit);
				if (rc == 0) {
					json_object_object_add(timings, "cache", json_object_new_string("hit"));
					json_object_object_add(timings, "compile_ms", json_object_new_int(0));
					json_object_object_add(r, "compile_output", json_object_new_string(""));
					t1 = util_mono_us();
					goto run;
				}
				goto fail;	/* a half-filled box is not trusted: fail rather than compile over it */
			}
		}
		json_object_object_add(timings, "cache", json_object_new_string(cacheable ? "miss" :
		    l->outputs != NULL ? "off" : "none"));
		buf_init(&co, 0);
		for (size_t i = 0; steps[i] != NULL; i++) {
			sbx_result_free(&res);
			spec.argv = steps[i];
			spec.prepare_next = true;	/* the next step's sandbox is built during this one */
			if (sbx_box_run(box, &spec, &res, &cause) < 0) {
				buf_free(&co);
				goto fail;
			}
			buf_add(&co, res.out, res.out_len);
			buf_add(&co, res.err, res.err_len);
			if (res.status != SBX_OK || res.exit_code != 0 || res.signal != 0)
				break;
		}
		json_object_object_add(timings, "compile_ms",
		    runner_ms(util_mono_us() - t1));
		json_object_object_add(r, "compile_output", runner_text(co.data ? co.data : "", co.len));
		buf_free(&co);
		if (res.status != SBX_OK || res.exit_code != 0 || res.signal != 0) {
			status = res.status == SBX_OK ? "compilation_error" : runner_status(&res);
			runner_account(r, &res);
			goto done;
		}
		sbx_result_free(&res);
		if (cacheable)
			box_to_cache(box, outs, key);
		t1 = util_mono_us();
	}
run:
	if (j->return_artifact && l->compile_steps != NULL)
		binary_artifacts(box, l, outs, names, &arts);
	run_tmpl = lang_expand(l, l->run_argv, src, names);
	argv = runner_argv(run_tmpl, j->args);
	spec.argv = argv;
	spec.stdin_data = j->stdin_data;
	spec.stdin_len = j->stdin_len;
	spec.prepare_next = false;
	if (sbx_box_run(box, &spec, &res, &cause) < 0)
		goto fail;
	json_object_object_add(timings, "sandbox_ms", runner_ms(res.setup_us));
	json_object_object_add(timings, "teardown_ms", runner_ms(res.teardown_us));
	json_object_object_add(timings, "cpu_wait_ms", runner_ms(res.cpu_wait_us));
	json_object_object_add(timings, "prepared", json_object_new_boolean(res.prepared));
	if (sbx_box_artifacts(box, &arts, &cause) < 0) {
		log_warn("job artifacts: %s", cause);
		sbx_artifacts_note(&arts, "the files in /tmp/artifacts could not be read");
		free(cause);
		cause = NULL;
	}
	runner_artifacts(r, &arts, j->return_artifact);
	json_object_object_add(timings, "run_ms", runner_ms(util_mono_us() - t1));
	status = runner_status(&res);
	if (strcmp(status, "completed") == 0 && j->expected_output != NULL &&
	    !output_matches(res.out, res.out_len, j->expected_output))
		status = "wrong_answer";
	runner_account(r, &res);
	json_object_object_add(r, "stdout", runner_text(res.out, res.out_len));
	json_object_object_add(r, "stderr", runner_text(res.err, res.err_len));
	json_object_object_add(r, "stdout_truncated", json_object_new_boolean(res.out_truncated));
	json_object_object_add(r, "stderr_truncated", json_object_new_boolean(res.err_truncated));
	json_object_object_add(r, "stdout_dropped", json_object_new_int64((int64_t)res.out_dropped));
	json_object_object_add(r, "stderr_dropped", json_object_new_int64((int64_t)res.err_dropped));
	if (strcmp(status, "timeout") == 0)
		json_object_object_add(r, "error", json_object_new_string(res.cpu_exceeded ?
		    "the program used more CPU time than its limit and was killed" :
		    "the program ran longer than its ttl and was killed"));
	else if (strcmp(status, "memory_limit") == 0)
		json_object_object_add(r, "error", json_object_new_string("the program exceeded its memory limit and was killed"));
	else if (strcmp(status, "output_limit") == 0)
		json_object_object_add(r, "error", json_object_new_string("the program wrote far more output than its limit and was killed"));
	else if (strcmp(status, "cancelled") == 0)
		json_object_object_add(r, "error", json_object_new_string("cancelled"));
	goto done;
fail:
	log_error("job sandbox failure: %s", cause ? cause : "unknown");
	json_object_object_add(r, "error", json_object_new_string("internal error: the sandbox could not run the job"));
	json_object_object_add(r, "exit_code", json_object_new_int(-1));
	status = "internal_error";
done:
	json_object_object_add(r, "timings", timings);
	free(cause);
	free(argv);
	lang_strv_free(run_tmpl);
	for (size_t i = 0; steps != NULL && steps[i] != NULL; i++)
		lang_strv_free(steps[i]);
	free(steps);
	lang_strv_free(outs);
	free(names);
	free(src);
	free(env);
	sbx_result_free(&res);
	sbx_artifacts_free(&arts);
	if (box != NULL)
		sbx_box_free(box);
	return status;
}
