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

/* Runs j in slot's box: writes the source and input files, compiles if the language
 * is compiled, runs it. Returns the job status (a static string of the result taxonomy)
 * and sets *result to the result object for corral_complete (caller puts it). */
const char *runner_run(const struct job *j, const struct sbx_config *sc, int slot,
    const struct runner_hooks *hooks, json_object **result);
/* Copies n bytes into a valid UTF-8 string without NUL bytes (invalid bytes become U+FFFD);
 * returns a new json string object. */
json_object *runner_text(const char *s, size_t n);

#endif
