/* runner: runs one validated job in a fresh sandbox box and builds its result. */
#ifndef CORRAL_RUNNER_H
#define CORRAL_RUNNER_H

#include <json-c/json.h>

#include "conf.h"
#include "job.h"
#include "sbx.h"

struct runner_hooks {
	int	(*poll_cb)(void *arg);	/* nonzero: stop the run (cancelled, lease lost, shutdown) */
	void	*arg;
	int	 extra_fd;		/* polled by the sandbox; -1 for none */
};

/* Opens the compile cache (c->cache_dir), computes each toolchain's identity for cache
 * keys and forks the version prober (a child that runs every installed language's version
 * command once in a sandbox and writes the languages table). Call once in the worker's main
 * process after sbx_global_init and before the slots fork; returns 0 or -1 with *cause. */
int runner_init(const struct conf *c, const struct lang_table *t, const struct sbx_config *sc, char **cause);
/* Runs j in slot's box: writes the source and input files, compiles if the language
 * is compiled, runs it. Returns the job status (a static string of the result taxonomy)
 * and sets *result to the result object for corral_complete (caller puts it). */
const char *runner_run(const struct job *j, const struct sbx_config *sc, int slot,
    const struct runner_hooks *hooks, json_object **result);
/* Copies n bytes into a valid UTF-8 string without NUL bytes (invalid bytes become U+FFFD);
 * returns a new json string object. */
json_object *runner_text(const char *s, size_t n);

#endif
