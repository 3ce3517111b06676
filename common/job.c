/* job: validation of the job model and its normalized JSON form. */
#include "job.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Fills err and returns -1. */
int job_fail(struct job_error *err, int http, const char *code, const char *field,
    const char *fmt, ...)
{
	va_list ap;
	err->http = http;
	snprintf(err->code, sizeof err->code, "%s", code);
	snprintf(err->field, sizeof err->field, "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* Initialises an empty job. */
void job_init(struct job *j)
{
	memset(j, 0, sizeof *j);
}

/* Frees a NULL-terminated vector of strings. */
static void strv_free(char **v)
{
	for (char **p = v; p != NULL && *p != NULL; p++)
		free(*p);
	free(v);
}

/* Frees everything the job holds and leaves it empty. */
void job_free(struct job *j)
{
	free(j->code);
	free(j->stdin_data);
	strv_free(j->env);
	strv_free(j->args);
	for (size_t i = 0; i < j->nfiles; i++) {
		free(j->files[i].name);
		free(j->files[i].data);
	}
	free(j->files);
	free(j->expected_output);
	job_init(j);
}

/* Returns the member named key or NULL when absent or JSON null. */
static json_object *member(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

/* Reads an optional integer member within [min,max] into *out (left as is when absent). */
static int get_int(json_object *req, const char *key, long long min, long long max,
    long long *out, struct job_error *err)
{
	json_object *v = member(req, key);
	long long x;
	if (v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_int))
		x = json_object_get_int64(v);
	else if (json_object_is_type(v, json_type_double) &&
	    json_object_get_double(v) == (double)(long long)json_object_get_double(v))
		x = (long long)json_object_get_double(v);
	else
		return job_fail(err, 400, "INVALID_FIELD", key, "'%s' must be a whole number from %lld to %lld",
		    key, min, max);
	if (x < min || x > max)
		return job_fail(err, 400, "OUT_OF_RANGE", key, "'%s' must be from %lld to %lld, got %lld",
		    key, min, max, x);
	*out = x;
	return 0;
}

/* Reads an optional boolean member into *out. */
static int get_bool(json_object *req, const char *key, bool *out, struct job_error *err)
{
	json_object *v = member(req, key);
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return job_fail(err, 400, "INVALID_FIELD", key, "'%s' must be true or false", key);
	*out = json_object_get_boolean(v);
	return 0;
}

/* Copies an optional string member (may hold NUL bytes) into a malloc'd buffer. */
static int get_string(json_object *req, const char *key, size_t max, char **out, size_t *len,
    struct job_error *err)
{
	json_object *v = member(req, key);
	size_t n;
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return job_fail(err, 400, "INVALID_FIELD", key, "'%s' must be a string", key);
	n = (size_t)json_object_get_string_len(v);
	if (n > max)
		return job_fail(err, 400, "TOO_LARGE", key, "'%s' is %zu bytes; the limit is %zu", key, n, max);
	*out = xmalloc(n + 1);
	memcpy(*out, json_object_get_string(v), n);
	(*out)[n] = '\0';
	if (len != NULL)
		*len = n;
	return 0;
}

/* Checks an environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes. */
static bool env_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* Validates the env object into "NAME=VALUE" strings. */
static int parse_env(struct job *j, json_object *req, struct job_error *err)
{
	json_object *env = member(req, "env");
	size_t n = 0, total = 0;
	if (env == NULL)
		return 0;
	if (!json_object_is_type(env, json_type_object))
		return job_fail(err, 400, "INVALID_FIELD", "env", "'env' must be an object of NAME: value strings");
	if ((size_t)json_object_object_length(env) > JOB_MAX_ENV)
		return job_fail(err, 400, "TOO_LARGE", "env", "'env' has more than %d variables", JOB_MAX_ENV);
	j->env = xcalloc((size_t)json_object_object_length(env) + 1, sizeof(char *));
	json_object_object_foreach(env, key, val) {
		const char *s;
		if (!env_name_ok(key))
			return job_fail(err, 400, "INVALID_FIELD", "env",
			    "env name '%.64s' must be letters, digits and '_' and not start with a digit", key);
		if (json_object_is_type(val, json_type_string) || json_object_is_type(val, json_type_int) ||
		    json_object_is_type(val, json_type_double) || json_object_is_type(val, json_type_boolean))
			s = json_object_get_string(val);
		else
			return job_fail(err, 400, "INVALID_FIELD", "env", "env value of '%.64s' must be a string", key);
		if (json_object_is_type(val, json_type_string) &&
		    strlen(s) != (size_t)json_object_get_string_len(val))
			return job_fail(err, 400, "INVALID_FIELD", "env", "env value of '%.64s' contains a NUL byte", key);
		total += strlen(key) + strlen(s) + 2;
		if (total > 64 * 1024)
			return job_fail(err, 400, "TOO_LARGE", "env", "'env' is larger than 64 KiB");
		j->env[n++] = xasprintf("%s=%s", key, s);
		j->nenv = n;
	}
	return 0;
}

/* Validates the args array. */
static int parse_args(struct job *j, json_object *req, struct job_error *err)
{
	json_object *a = member(req, "args");
	size_t n;
	if (a == NULL)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return job_fail(err, 400, "INVALID_FIELD", "args", "'args' must be an array of strings");
	n = json_object_array_length(a);
	if (n > JOB_MAX_ARGS)
		return job_fail(err, 400, "TOO_LARGE", "args", "'args' has more than %d entries", JOB_MAX_ARGS);
	j->args = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		if (!json_object_is_type(s, json_type_string) ||
		    strlen(json_object_get_string(s)) != (size_t)json_object_get_string_len(s) ||
		    json_object_get_string_len(s) > 4096)
			return job_fail(err, 400, "INVALID_FIELD", "args",
			    "args[%zu] must be a string of at most 4096 bytes without NUL", i);
		j->args[i] = xstrdup(json_object_get_string(s));
		j->nargs = i + 1;
	}
	return 0;
}

/* Checks an input file name: 1..256 bytes, no '/', no "..", no NUL, not "." */
static const char *file_name_problem(const char *name, size_t len)
{
	if (len == 0)
		return "is empty";
	if (len > JOB_MAX_FILENAME)
		return "is longer than 256 bytes";
	if (memchr(name, '\0', len) != NULL)
		return "contains a NUL byte";
	if (memchr(name, '/', len) != NULL)
		return "contains '/'";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return "contains a control character";
	if (strstr(name, "..") != NULL)
		return "contains '..'";
	if (strcmp(name, ".") == 0)
		return "is '.'";
	return NULL;
}

/* Validates input_files: at most 10, 5 MB each, 10 MB in all, safe names. */
static int parse_files(struct job *j, json_object *req, struct job_error *err)
{
	json_object *a = member(req, "input_files");
	size_t n, total = 0;
	if (a == NULL)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return job_fail(err, 400, "INVALID_FIELD", "input_files", "'input_files' must be an array");
	n = json_object_array_length(a);
	if (n > JOB_MAX_FILES)
		return job_fail(err, 400, "TOO_MANY_FILES", "input_files",
		    "'input_files' has %zu files; at most %d are allowed", n, JOB_MAX_FILES);
	j->files = xcalloc(n ? n : 1, sizeof *j->files);
	for (size_t i = 0; i < n; i++) {
		json_object *f = json_object_array_get_idx(a, i), *name, *content;
		const char *why;
		size_t len;
		if (!json_object_is_type(f, json_type_object) ||
		    (name = member(f, "filename")) == NULL || !json_object_is_type(name, json_type_string))
			return job_fail(err, 400, "INVALID_FILE", "input_files",
			    "input_files[%zu] must be an object with a string 'filename'", i);
		why = file_name_problem(json_object_get_string(name), (size_t)json_object_get_string_len(name));
		if (why != NULL)
			return job_fail(err, 400, "INVALID_FILENAME", "input_files",
			    "input_files[%zu].filename %s", i, why);
		if (strcmp(json_object_get_string(name), j->lang->source_file) == 0)
			return job_fail(err, 400, "INVALID_FILENAME", "input_files",
			    "input_files[%zu].filename '%s' is the program's own source file", i, j->lang->source_file);
		for (size_t k = 0; k < i; k++)
			if (strcmp(j->files[k].name, json_object_get_string(name)) == 0)
				return job_fail(err, 400, "INVALID_FILENAME", "input_files",
				    "input_files[%zu].filename '%.64s' appears twice", i, j->files[k].name);
		content = member(f, "content_base64");
		if (content == NULL)
			content = member(f, "content");
		if (content == NULL || !json_object_is_type(content, json_type_string))
			return job_fail(err, 400, "INVALID_FILE", "input_files",
			    "input_files[%zu] needs 'content' as a base64 string", i);
		j->files[i].name = xstrdup(json_object_get_string(name));
		j->nfiles = i + 1;
		j->files[i].data = util_b64_decode(json_object_get_string(content),
		    (size_t)json_object_get_string_len(content), &len);
		if (j->files[i].data == NULL)
			return job_fail(err, 400, "INVALID_FILE", "input_files",
			    "input_files[%zu] ('%.64s'): content is not valid base64", i, j->files[i].name);
		j->files[i].len = len;
		if (len > JOB_MAX_FILE_BYTES)
			return job_fail(err, 400, "FILE_TOO_LARGE", "input_files",
			    "input_files[%zu] ('%.64s') is %zu bytes; the limit is 5 MB", i, j->files[i].name, len);
		total += len;
		if (total > JOB_MAX_FILES_BYTES)
			return job_fail(err, 400, "FILE_TOO_LARGE", "input_files",
			    "input_files add up to more than 10 MB");
	}
	return 0;
}

/* Validates the limits with defaults from c and the language. */
static int parse_limits(struct job *j, json_object *req, const struct conf *c, struct job_error *err)
{
	long long wall = c->wall_default, cpu, mem, procs, disk = c->disk_default;
	long long out = c->output_default, vcpu = 1, memmax;
	if (get_int(req, "ttl", 1, c->wall_max, &wall, err) < 0 ||
	    get_int(req, "vcpu", 1, c->vcpu_max, &vcpu, err) < 0)
		return -1;
	cpu = wall < c->cpu_max ? wall : c->cpu_max;
	mem = j->lang->memory_mb > 0 ? j->lang->memory_mb : c->memory_default;
	procs = j->lang->processes > 0 ? j->lang->processes : c->processes_default;
	memmax = 2048 * vcpu < c->memory_max ? 2048 * vcpu : c->memory_max;
	if (mem > memmax)
		mem = memmax;
	if (get_int(req, "cpu_time", 1, c->cpu_max, &cpu, err) < 0 ||
	    get_int(req, "memory_mb", 16, memmax, &mem, err) < 0 ||
	    get_int(req, "processes", 1, c->processes_max, &procs, err) < 0 ||
	    get_int(req, "disk_mb", 1, c->disk_max, &disk, err) < 0 ||
	    get_int(req, "max_output_bytes", 1024, c->output_max, &out, err) < 0)
		return -1;
	j->lim.wall_s = (int)wall;
	j->lim.cpu_s = (int)cpu;
	j->lim.memory_mb = (int)mem;
	j->lim.processes = (int)procs;
	j->lim.disk_mb = (int)disk;
	j->lim.output_bytes = out;
	j->lim.vcpu = (int)vcpu;
	return 0;
}

/* Validates the language: known, and its toolchain installed. */
static int parse_language(struct job *j, json_object *req, const struct lang_table *t,
    struct job_error *err)
{
	json_object *v = member(req, "language");
	const char *name;
	if (v == NULL)
		return job_fail(err, 400, "MISSING_FIELD", "language", "'language' is required");
	if (!json_object_is_type(v, json_type_string))
		return job_fail(err, 400, "INVALID_FIELD", "language", "'language' must be a string");
	name = json_object_get_string(v);
	j->lang = lang_find(t, name);
	if (j->lang == NULL)
		return job_fail(err, 400, "UNKNOWN_LANGUAGE", "language",
		    "language '%.64s' is not supported; GET /languages lists the supported ones", name);
	if (!j->lang->installed)
		return job_fail(err, 400, "LANGUAGE_NOT_INSTALLED", "language",
		    "language '%s' is known but its toolchain is not installed on this server (Debian package: %s)",
		    j->lang->id, j->lang->packages && j->lang->packages[0] ? j->lang->packages[0] : "?");
	return 0;
}

/* Validates a request into j. */
int job_parse(struct job *j, json_object *req, const struct conf *c,
    const struct lang_table *t, struct job_error *err)
{
	json_object *v;
	job_init(j);
	if (req == NULL || !json_object_is_type(req, json_type_object)) {
		job_fail(err, 400, "INVALID_REQUEST", "", "the request body must be a JSON object");
		return -1;
	}
	if (parse_language(j, req, t, err) < 0)
		goto fail;
	if (member(req, "code") == NULL) {
		job_fail(err, 400, "MISSING_FIELD", "code", "'code' is required");
		goto fail;
	}
	if (get_string(req, "code", (size_t)c->code_max, &j->code, &j->code_len, err) < 0 ||
	    get_string(req, "stdin", 16u << 20, &j->stdin_data, &j->stdin_len, err) < 0 ||
	    get_string(req, "expected_output", 16u << 20, &j->expected_output, NULL, err) < 0 ||
	    parse_env(j, req, err) < 0 || parse_args(j, req, err) < 0 ||
	    parse_limits(j, req, c, err) < 0 || parse_files(j, req, err) < 0 ||
	    get_bool(req, "return_artifact", &j->return_artifact, err) < 0)
		goto fail;
	v = member(req, "network_mode");
	if (v != NULL) {
		const char *m = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
		if (strcmp(m, "zerotrust") == 0)
			j->network = false;
		else if (strcmp(m, "semitrusted") == 0)
			j->network = true;    /* egress via veth + NAT, never host/private ranges (sbx_net.c) */
		else {
			job_fail(err, 400, "INVALID_FIELD", "network_mode",
			    "'network_mode' must be \"zerotrust\" or \"semitrusted\"");
			goto fail;
		}
	}
	return 0;
fail:
	job_free(j);
	return -1;
}

/* Builds the normalized JSON of a job; caller puts it. */
json_object *job_to_json(const struct job *j)
{
	json_object *o = json_object_new_object(), *env = json_object_new_object();
	json_object *args = json_object_new_array(), *files = json_object_new_array();
	json_object_object_add(o, "language", json_object_new_string(j->lang->id));
	json_object_object_add(o, "code", json_object_new_string_len(j->code, (int)j->code_len));
	if (j->stdin_data != NULL)
		json_object_object_add(o, "stdin", json_object_new_string_len(j->stdin_data, (int)j->stdin_len));
	for (size_t i = 0; i < j->nenv; i++) {
		const char *eq = strchr(j->env[i], '=');
		char *name = xstrndup(j->env[i], (size_t)(eq - j->env[i]));
		json_object_object_add(env, name, json_object_new_string(eq + 1));
		free(name);
	}
	json_object_object_add(o, "env", env);
	for (size_t i = 0; i < j->nargs; i++)
		json_object_array_add(args, json_object_new_string(j->args[i]));
	json_object_object_add(o, "args", args);
	json_object_object_add(o, "network_mode", json_object_new_string(j->network ? "semitrusted" : "zerotrust"));
	json_object_object_add(o, "ttl", json_object_new_int(j->lim.wall_s));
	json_object_object_add(o, "cpu_time", json_object_new_int(j->lim.cpu_s));
	json_object_object_add(o, "memory_mb", json_object_new_int(j->lim.memory_mb));
	json_object_object_add(o, "processes", json_object_new_int(j->lim.processes));
	json_object_object_add(o, "disk_mb", json_object_new_int(j->lim.disk_mb));
	json_object_object_add(o, "max_output_bytes", json_object_new_int64(j->lim.output_bytes));
	json_object_object_add(o, "vcpu", json_object_new_int(j->lim.vcpu));
	for (size_t i = 0; i < j->nfiles; i++) {
		json_object *f = json_object_new_object();
		char *b64 = util_b64_encode(j->files[i].data, j->files[i].len);
		json_object_object_add(f, "filename", json_object_new_string(j->files[i].name));
		json_object_object_add(f, "content_base64", json_object_new_string(b64));
		free(b64);
		json_object_array_add(files, f);
	}
	json_object_object_add(o, "input_files", files);
	json_object_object_add(o, "return_artifact", json_object_new_boolean(j->return_artifact));
	if (j->expected_output != NULL)
		json_object_object_add(o, "expected_output", json_object_new_string(j->expected_output));
	return o;
}
