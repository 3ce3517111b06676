/* router: pure routing of (method, path) to a route id and a captured job id. */
#ifndef CORRAL_ROUTER_H
#define CORRAL_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

enum route_id {
	ROUTE_NONE = 0,
	ROUTE_EXECUTE,		/* POST /execute */
	ROUTE_EXECUTE_ASYNC,	/* POST /execute/async */
	ROUTE_JOBS_LIST,	/* GET /jobs */
	ROUTE_JOB_GET,		/* GET /jobs/{id} */
	ROUTE_JOB_DELETE,	/* DELETE /jobs/{id} */
	ROUTE_HEALTH,		/* GET /health */
	ROUTE_LANGUAGES,	/* GET /languages */
	ROUTE_KEYS_VALIDATE,	/* POST /keys/validate */
};

/* Length of a canonical UUID and its NUL. */
#define ROUTE_UUID_LEN	36

struct route_match {
	enum route_id	id;
	bool		auth;			/* the route needs an API key */
	int		http;			/* 0 when matched, else 404 or 405 */
	const char	*code;			/* NOT_FOUND, JOB_NOT_FOUND, METHOD_NOT_ALLOWED */
	char		allow[64];		/* the Allow header for a 405 */
	char		job_id[ROUTE_UUID_LEN + 1]; /* lowercase, for the {id} routes */
};

/* Routes a request. The path is raw (no query); one or more trailing slashes are
 * tolerated. Returns 0 with m->id set, or -1 with m->http, m->code (and m->allow on a
 * 405) set. A {id} that is not a UUID is a 404 JOB_NOT_FOUND. */
int route_match(const char *method, const char *path, struct route_match *m);
/* Returns true when s is a UUID (8-4-4-4-12 hex digits, either case). */
bool route_is_uuid(const char *s, size_t len);
/* Returns the route's name for logs ("POST /execute"); static. */
const char *route_name(enum route_id id);

#endif
