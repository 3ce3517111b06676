/* runner: one job, one fresh box, never reused. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

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

/* Adds the accounting of one sandbox run to the result object. */
static void runner_account(json_object *r, const struct sbx_result *s)
{
	json_object_object_add(r, "exit_code", json_object_new_int(s->exit_code));
	json_object_object_add(r, "exit_signal", s->signal ? json_object_new_int(s->signal) : NULL);
	json_object_object_add(r, "wall_ms", json_object_new_double((double)s->wall_us / 1000.0));
	json_object_object_add(r, "cpu_ms", json_object_new_double((double)s->cpu_us / 1000.0));
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

/* Runs one job and describes its outcome. */
const char *runner_run(const struct job *j, const struct sbx_config *sc, int slot,
    const struct runner_hooks *hooks, json_object **result)
{
	json_object *r = json_object_new_object(), *timings = json_object_new_object();
	struct sbx_box *box = NULL;
	struct sbx_run_spec spec;
	struct sbx_result res;
	const char *status = "internal_error";
	char *cause = NULL, **argv = NULL;
	uint64_t t0 = util_mono_us(), t1;

	memset(&res, 0, sizeof res);
	*result = r;
	if (sbx_box_init(&box, sc, slot, (uint64_t)j->lim.disk_mb << 20, &cause) < 0 ||
	    sbx_box_put(box, j->lang->source_file, j->code, j->code_len, 0644, &cause) < 0)
		goto fail;
	for (size_t i = 0; i < j->nfiles; i++)
		if (sbx_box_put(box, j->files[i].name, j->files[i].data, j->files[i].len, 0644, &cause) < 0)
			goto fail;
	memset(&spec, 0, sizeof spec);
	spec.env = j->env;
	runner_limits(j, &spec.lim);
	spec.network = j->network;
	spec.poll_cb = hooks->poll_cb;
	spec.poll_arg = hooks->arg;
	spec.extra_fd = hooks->extra_fd;
	t1 = util_mono_us();
	json_object_object_add(timings, "setup_ms", json_object_new_double((double)(t1 - t0) / 1000.0));

	if (j->lang->compile_argv != NULL) {
		spec.argv = j->lang->compile_argv;
		if (sbx_box_run(box, &spec, &res, &cause) < 0)
			goto fail;
		json_object_object_add(timings, "compile_ms",
		    json_object_new_double((double)(util_mono_us() - t1) / 1000.0));
		{
			struct buf co;
			buf_init(&co, 0);
			buf_add(&co, res.out, res.out_len);
			buf_add(&co, res.err, res.err_len);
			json_object_object_add(r, "compile_output", runner_text(co.data ? co.data : "", co.len));
			buf_free(&co);
		}
		if (res.status != SBX_OK || res.exit_code != 0 || res.signal != 0) {
			status = res.status == SBX_OK ? "compilation_error" : runner_status(&res);
			runner_account(r, &res);
			goto done;
		}
		sbx_result_free(&res);
		t1 = util_mono_us();
	}

	argv = runner_argv(j->lang->run_argv, j->args);
	spec.argv = argv;
	spec.stdin_data = j->stdin_data;
	spec.stdin_len = j->stdin_len;
	if (sbx_box_run(box, &spec, &res, &cause) < 0)
		goto fail;
	json_object_object_add(timings, "run_ms", json_object_new_double((double)(util_mono_us() - t1) / 1000.0));
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
	sbx_result_free(&res);
	if (box != NULL)
		sbx_box_free(box);
	return status;
}
