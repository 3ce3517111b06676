/* Unit tests: routing of (method, path) to routes, 404 versus 405, job id capture. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "router.h"

#define UUID	"3f2c1a9e-0b4d-4e8f-9a7b-1c2d3e4f5a6b"

/* Routes one request that must match and returns the match. */
static struct route_match routed(const char *method, const char *path, enum route_id want)
{
	struct route_match m;
	assert_int_equal(route_match(method, path, &m), 0);
	assert_int_equal(m.id, want);
	assert_int_equal(m.http, 0);
	return m;
}

/* Routes one request that must fail with status and code. */
static struct route_match refused(const char *method, const char *path, int http, const char *code)
{
	struct route_match m;
	assert_int_equal(route_match(method, path, &m), -1);
	assert_int_equal(m.id, ROUTE_NONE);
	assert_int_equal(m.http, http);
	assert_string_equal(m.code, code);
	return m;
}

/* Every route of the unsandbox dialect resolves, and only /health is unauthenticated. */
static void test_every_route(void **state)
{
	struct route_match m;
	(void)state;
	m = routed("POST", "/execute", ROUTE_EXECUTE);
	assert_true(m.auth);
	routed("POST", "/execute/async", ROUTE_EXECUTE_ASYNC);
	routed("GET", "/jobs", ROUTE_JOBS_LIST);
	m = routed("GET", "/jobs/" UUID, ROUTE_JOB_GET);
	assert_string_equal(m.job_id, UUID);
	m = routed("DELETE", "/jobs/" UUID, ROUTE_JOB_DELETE);
	assert_string_equal(m.job_id, UUID);
	m = routed("GET", "/health", ROUTE_HEALTH);
	assert_false(m.auth);
	m = routed("GET", "/languages", ROUTE_LANGUAGES);
	assert_true(m.auth);
	routed("POST", "/keys/validate", ROUTE_KEYS_VALIDATE);
}

/* One or more trailing slashes are tolerated; the id is captured without them. */
static void test_trailing_slash(void **state)
{
	struct route_match m;
	(void)state;
	routed("POST", "/execute/", ROUTE_EXECUTE);
	routed("POST", "/execute/async/", ROUTE_EXECUTE_ASYNC);
	routed("GET", "/jobs/", ROUTE_JOBS_LIST);
	routed("GET", "/health//", ROUTE_HEALTH);
	m = routed("GET", "/jobs/" UUID "/", ROUTE_JOB_GET);
	assert_string_equal(m.job_id, UUID);
}

/* Unknown paths are 404 NOT_FOUND whatever the method. */
static void test_unknown_paths(void **state)
{
	(void)state;
	refused("GET", "/", 404, "NOT_FOUND");
	refused("POST", "/run/sync", 404, "NOT_FOUND");
	refused("POST", "/executes", 404, "NOT_FOUND");
	refused("POST", "/Execute", 404, "NOT_FOUND");
	refused("POST", "/execute/async/extra", 404, "NOT_FOUND");
	refused("GET", "/jobs/" UUID "/stdout", 404, "NOT_FOUND");
	refused("GET", "", 404, "NOT_FOUND");
	refused("GET", "health", 404, "NOT_FOUND");
}

/* A known path with another method is 405 with the Allow list. */
static void test_wrong_method(void **state)
{
	struct route_match m;
	(void)state;
	m = refused("GET", "/execute", 405, "METHOD_NOT_ALLOWED");
	assert_string_equal(m.allow, "POST");
	m = refused("POST", "/health", 405, "METHOD_NOT_ALLOWED");
	assert_string_equal(m.allow, "GET");
	m = refused("PUT", "/jobs/" UUID, 405, "METHOD_NOT_ALLOWED");
	assert_string_equal(m.allow, "GET, DELETE");
	m = refused("DELETE", "/jobs", 405, "METHOD_NOT_ALLOWED");
	assert_string_equal(m.allow, "GET");
	refused("get", "/health", 405, "METHOD_NOT_ALLOWED");
	refused("HEAD", "/languages", 405, "METHOD_NOT_ALLOWED");
	/* the wrong method on a malformed id is still 405: the path's shape is known */
	refused("POST", "/jobs/nope", 405, "METHOD_NOT_ALLOWED");
}

/* Malformed job ids are 404 JOB_NOT_FOUND and never reach a handler. */
static void test_bad_uuids(void **state)
{
	(void)state;
	refused("GET", "/jobs/123", 404, "JOB_NOT_FOUND");
	refused("GET", "/jobs/3f2c1a9e0b4d4e8f9a7b1c2d3e4f5a6b", 404, "JOB_NOT_FOUND");
	refused("GET", "/jobs/3f2c1a9e-0b4d-4e8f-9a7b-1c2d3e4f5a6", 404, "JOB_NOT_FOUND");
	refused("GET", "/jobs/3f2c1a9e-0b4d-4e8f-9a7b-1c2d3e4f5a6bb", 404, "JOB_NOT_FOUND");
	refused("GET", "/jobs/3f2c1a9g-0b4d-4e8f-9a7b-1c2d3e4f5a6b", 404, "JOB_NOT_FOUND");
	refused("DELETE", "/jobs/3f2c1a9e-0b4d-4e8f-9a7b_1c2d3e4f5a6b", 404, "JOB_NOT_FOUND");
	refused("GET", "/jobs/'%20OR%201=1--", 404, "JOB_NOT_FOUND");
	refused("GET", "/jobs/3f2c1a9e-0b4d-4e8f-9a7b-1c2d3e4f5a6b%00", 404, "JOB_NOT_FOUND");
}

/* Upper-case ids are accepted and normalized to lower case. */
static void test_uuid_case(void **state)
{
	struct route_match m;
	(void)state;
	m = routed("GET", "/jobs/3F2C1A9E-0B4D-4E8F-9A7B-1C2D3E4F5A6B", ROUTE_JOB_GET);
	assert_string_equal(m.job_id, UUID);
	assert_true(route_is_uuid(UUID, strlen(UUID)));
	assert_false(route_is_uuid(UUID, strlen(UUID) - 1));
	assert_false(route_is_uuid("3f2c1a9e-0b4d-4e8f-9a7b1-c2d3e4f5a6b", 36));
	assert_false(route_is_uuid("------------------------------------", 36));
}

/* Absurdly long paths match nothing. */
static void test_long_path(void **state)
{
	char p[2048];
	(void)state;
	memset(p, 'a', sizeof p - 1);
	p[0] = '/';
	p[sizeof p - 1] = '\0';
	refused("GET", p, 404, "NOT_FOUND");
	/* a long run of trailing slashes is still one route */
	memset(p, '/', 600);
	memcpy(p, "/health", 7);
	p[600] = '\0';
	routed("GET", p, ROUTE_HEALTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_route),
		cmocka_unit_test(test_trailing_slash),
		cmocka_unit_test(test_unknown_paths),
		cmocka_unit_test(test_wrong_method),
		cmocka_unit_test(test_bad_uuids),
		cmocka_unit_test(test_uuid_case),
		cmocka_unit_test(test_long_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
