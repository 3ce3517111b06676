/* job: the one job model under every dialect. A request is validated into a struct job;
 * the normalized JSON (job_to_json) is what the jobs.request column stores, and the worker
 * validates it again with job_parse before it uses any of it. */
#ifndef CORRAL_JOB_H
#define CORRAL_JOB_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "lang.h"

#define JOB_MAX_FILES		10
#define JOB_MAX_FILE_BYTES	(5 << 20)
#define JOB_MAX_FILES_BYTES	(10 << 20)
#define JOB_MAX_FILENAME	256
#define JOB_MAX_ENV		64
#define JOB_MAX_ARGS		64

struct job_file {
	char		*name;
	unsigned char	*data;
	size_t		 len;
};

struct job_limits {
	int		wall_s;		/* ttl */
	int		cpu_s;
	int		memory_mb;
	int		processes;
	int		disk_mb;
	long long	output_bytes;	/* per stream */
	int		vcpu;
};

struct job {
	const struct lang *lang;	/* owned by the language table */
	char		*code;
	size_t		 code_len;
	char		*stdin_data;
	size_t		 stdin_len;
	char		**env;		/* "NAME=VALUE", NULL-terminated */
	size_t		 nenv;
	char		**args;		/* NULL-terminated */
	size_t		 nargs;
	bool		 network;	/* false = zerotrust, true = semitrusted */
	struct job_limits lim;
	struct job_file	*files;
	size_t		 nfiles;
	bool		 return_artifact;
	char		*expected_output;	/* NULL = not checked */
};

/* A validation failure: HTTP status, machine-readable code, field and sentence. */
struct job_error {
	int	http;
	char	code[32];
	char	field[64];
	char	msg[256];
};

/* Initialises an empty job. */
void job_init(struct job *j);
/* Frees everything the job holds. */
void job_free(struct job *j);
/* Validates a request object (job-model field names; unknown fields ignored) into j
 * with defaults from c; returns 0, or -1 with *err filled (j is then freed). */
int job_parse(struct job *j, json_object *req, const struct conf *c,
    const struct lang_table *t, struct job_error *err);
/* Returns the normalized JSON form of j (caller puts it). */
json_object *job_to_json(const struct job *j);
/* Sets err; returns -1. */
int job_fail(struct job_error *err, int http, const char *code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
