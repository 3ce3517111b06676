/* router: a static table of (method, pattern) pairs; "{id}" matches one path segment. */
#include "router.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Paths longer than this match nothing. */
#define ROUTE_PATH_MAX	512

struct route_entry {
	const char	*method;
	const char	*pattern;	/* "/jobs/{id}": the {id} must be the last segment */
	enum route_id	 id;
	bool		 auth;
	const char	*name;
};

static const struct route_entry route_table[] = {
	{ "POST", "/execute", ROUTE_EXECUTE, true, "POST /execute" },
	{ "POST", "/execute/async", ROUTE_EXECUTE_ASYNC, true, "POST /execute/async" },
	{ "GET", "/jobs", ROUTE_JOBS_LIST, true, "GET /jobs" },
	{ "GET", "/jobs/{id}", ROUTE_JOB_GET, true, "GET /jobs/{id}" },
	{ "DELETE", "/jobs/{id}", ROUTE_JOB_DELETE, true, "DELETE /jobs/{id}" },
	{ "GET", "/health", ROUTE_HEALTH, false, "GET /health" },
	{ "GET", "/languages", ROUTE_LANGUAGES, true, "GET /languages" },
	{ "POST", "/keys/validate", ROUTE_KEYS_VALIDATE, true, "POST /keys/validate" },
};

#define ROUTE_COUNT	(sizeof route_table / sizeof route_table[0])

/* Checks the 8-4-4-4-12 hex form. */
bool route_is_uuid(const char *s, size_t len)
{
	if (len != ROUTE_UUID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* Matches path[0..len) against a pattern; on a {id} match stores the segment's span. */
static bool route_pattern_match(const char *pattern, const char *path, size_t len,
    const char **seg, size_t *seglen)
{
	const char *brace = strstr(pattern, "{id}");
	size_t pre;
	if (brace == NULL)
		return strlen(pattern) == len && memcmp(pattern, path, len) == 0;
	pre = (size_t)(brace - pattern);
	if (len <= pre || memcmp(pattern, path, pre) != 0)
		return false;
	if (memchr(path + pre, '/', len - pre) != NULL)
		return false;
	*seg = path + pre;
	*seglen = len - pre;
	return true;
}

/* Appends a method to the Allow list unless it is already there. */
static void route_allow_add(char *allow, size_t size, const char *method)
{
	size_t n = strlen(allow);
	if (strstr(allow, method) != NULL)
		return;
	snprintf(allow + n, size - n, "%s%s", n > 0 ? ", " : "", method);
}

/* Routes one request. */
int route_match(const char *method, const char *path, struct route_match *m)
{
	size_t len = strlen(path);
	const char *seg = NULL;
	size_t seglen = 0;
	bool known = false;

	memset(m, 0, sizeof *m);
	m->http = 404;
	m->code = "NOT_FOUND";
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 0 || path[0] != '/' || len > ROUTE_PATH_MAX)
		return -1;
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		const struct route_entry *e = &route_table[i];
		seg = NULL;
		if (!route_pattern_match(e->pattern, path, len, &seg, &seglen))
			continue;
		known = true;
		route_allow_add(m->allow, sizeof m->allow, e->method);
		if (strcmp(e->method, method) != 0)
			continue;
		if (seg != NULL) {
			if (!route_is_uuid(seg, seglen)) {
				m->code = "JOB_NOT_FOUND";
				return -1;
			}
			for (size_t k = 0; k < seglen; k++)
				m->job_id[k] = (char)tolower((unsigned char)seg[k]);
			m->job_id[seglen] = '\0';
		}
		m->id = e->id;
		m->auth = e->auth;
		m->http = 0;
		m->code = NULL;
		m->allow[0] = '\0';
		return 0;
	}
	if (known) {
		m->http = 405;
		m->code = "METHOD_NOT_ALLOWED";
	}
	return -1;
}

/* Names a route for logs. */
const char *route_name(enum route_id id)
{
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		if (route_table[i].id == id)
			return route_table[i].name;
	}
	return "unrouted";
}
