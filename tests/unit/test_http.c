/* Unit tests: requests from FastCGI params, query strings and URL decoding, body reading
 * and its limits, the error JSON shape, the serialized CGI answer, and authentication
 * (auth.c, driven by the request's headers, against an in-memory key store). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "hmac.h"
#include "http.h"
#include "keys.h"
#include "util.h"

/* A body source that hands out at most chunk bytes per call, counting calls. */
struct src {
	const char	*data;
	size_t		 len, pos, chunk;
	int		 calls;
};

/* http_read_fn over struct src. */
static ssize_t src_read(void *ctx, char *p, size_t n)
{
	struct src *s = ctx;
	size_t k = s->len - s->pos;
	s->calls++;
	if (k > n)
		k = n;
	if (k > s->chunk)
		k = s->chunk;
	memcpy(p, s->data + s->pos, k);
	s->pos += k;
	return (ssize_t)k;
}

/* Parses a response body as a JSON object (caller puts). */
static json_object *body_json(const struct http_resp *r)
{
	json_object *o = json_tokener_parse(r->body);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

/* Returns the string member k of o (owned by o), failing the test when absent. */
static const char *str_member(json_object *o, const char *k)
{
	json_object *v;
	assert_true(json_object_object_get_ex(o, k, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* Headers come from the HTTP_* params; absent ones are NULL; the URI splits at '?'. */
static void test_params(void **state)
{
	char *envp[] = {
		"REQUEST_METHOD=POST", "REQUEST_URI=/jobs/x?details=1&a=b",
		"HTTP_AUTHORIZATION=Bearer crl-pk-1", "HTTP_X_TIMESTAMP=1700000000",
		"HTTP_X_SIGNATURE=abc", "HTTP_X_API_KEY=k1", "HTTP_X_RAPIDAPI_KEY=k2",
		"HTTP_X_RAPIDAPI_PROXY_SECRET=k3", "CONTENT_TYPE=application/json",
		"CONTENT_LENGTH=12", "REMOTE_ADDR=127.0.0.1", "HTTP_X_API_KEYS=decoy",
		"DOCUMENT_URI=/ignored", NULL,
	};
	struct http_req r;
	(void)state;
	http_req_init(&r);
	http_req_from_params(&r, envp);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.uri, "/jobs/x?details=1&a=b");
	assert_string_equal(r.path, "/jobs/x");
	assert_string_equal(r.query, "details=1&a=b");
	assert_string_equal(r.authorization, "Bearer crl-pk-1");
	assert_string_equal(r.x_timestamp, "1700000000");
	assert_string_equal(r.x_signature, "abc");
	assert_string_equal(r.x_api_key, "k1");
	assert_string_equal(r.x_rapidapi_key, "k2");
	assert_string_equal(r.x_rapidapi_proxy_secret, "k3");
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.remote_addr, "127.0.0.1");
	assert_int_equal(r.content_length, 12);
	assert_false(r.content_length_bad);
	http_req_free(&r);
	assert_null(r.method);
}

/* Without REQUEST_URI the path comes from DOCUMENT_URI and QUERY_STRING; absent
 * headers stay NULL and an empty CONTENT_LENGTH means none. */
static void test_params_fallback(void **state)
{
	char *envp[] = { "REQUEST_METHOD=GET", "DOCUMENT_URI=/languages",
		"QUERY_STRING=details=1", "CONTENT_LENGTH=", NULL };
	char *bare[] = { NULL };
	struct http_req r;
	(void)state;
	http_req_init(&r);
	http_req_from_params(&r, envp);
	assert_string_equal(r.uri, "/languages?details=1");
	assert_string_equal(r.path, "/languages");
	assert_string_equal(r.query, "details=1");
	assert_null(r.authorization);
	assert_null(r.x_api_key);
	assert_int_equal(r.content_length, -1);
	assert_false(r.content_length_bad);
	http_req_free(&r);
	http_req_from_params(&r, bare);
	assert_string_equal(r.method, "");
	assert_string_equal(r.path, "/");
	assert_string_equal(r.query, "");
	http_req_free(&r);
}

/* Query values are found by decoded name and URL-decoded. */
static void test_query(void **state)
{
	const char *q = "a=1&msg=hello%20world&plus=x+y&flag&empty=&bad=%zz%4&"
	    "n%61me=v&dup=first&dup=second&env=%7B%22A%22%3A%221%22%7D&nul=a%00b";
	char *v;
	(void)state;
	assert_string_equal(v = http_query_get(q, "a"), "1");
	free(v);
	assert_string_equal(v = http_query_get(q, "msg"), "hello world");
	free(v);
	assert_string_equal(v = http_query_get(q, "plus"), "x y");
	free(v);
	assert_string_equal(v = http_query_get(q, "flag"), "");
	free(v);
	assert_string_equal(v = http_query_get(q, "empty"), "");
	free(v);
	assert_string_equal(v = http_query_get(q, "bad"), "%zz%4");
	free(v);
	assert_string_equal(v = http_query_get(q, "name"), "v");
	free(v);
	assert_string_equal(v = http_query_get(q, "dup"), "first");
	free(v);
	assert_string_equal(v = http_query_get(q, "env"), "{\"A\":\"1\"}");
	free(v);
	assert_null(http_query_get(q, "nul"));
	assert_null(http_query_get(q, "missing"));
	assert_null(http_query_get(q, "ms"));
	assert_null(http_query_get("", "a"));
}

/* Flags accept 1/true/yes/on only. */
static void test_query_flag(void **state)
{
	(void)state;
	assert_true(http_query_flag("details=1", "details"));
	assert_true(http_query_flag("x=0&details=TRUE", "details"));
	assert_true(http_query_flag("details=yes", "details"));
	assert_false(http_query_flag("details=0", "details"));
	assert_false(http_query_flag("details=false", "details"));
	assert_false(http_query_flag("details", "details"));
	assert_false(http_query_flag("", "details"));
}

/* Decoding handles escapes of both cases, leaves malformed ones, refuses NUL. */
static void test_url_decode(void **state)
{
	char *v;
	(void)state;
	assert_string_equal(v = http_url_decode("%2f%2F%41+%", 11), "//A %");
	free(v);
	assert_string_equal(v = http_url_decode("abc%4", 5), "abc%4");
	free(v);
	/* only n bytes are read */
	assert_string_equal(v = http_url_decode("ab%41", 3), "ab%");
	free(v);
	assert_null(http_url_decode("%00", 3));
	assert_string_equal(v = http_url_decode("%C3%A9", 6), "\xc3\xa9");
	free(v);
}

/* A body is read fully through a reader that returns it in small pieces. */
static void test_body_read(void **state)
{
	const char *data = "{\"language\":\"python\"}";
	struct src s = { data, strlen(data), 0, 3, 0 };
	struct http_req r;
	struct http_resp resp;
	(void)state;
	http_req_init(&r);
	http_resp_init(&resp);
	r.content_length = (long long)strlen(data);
	assert_int_equal(http_req_read_body(&r, src_read, &s, 1024, &resp), 0);
	assert_int_equal(r.body_len, strlen(data));
	assert_memory_equal(r.body, data, strlen(data));
	assert_int_equal(r.body[r.body_len], '\0');
	assert_true(s.calls >= 7);
	assert_int_equal(resp.status, 0);
	http_req_free(&r);
	http_resp_free(&resp);
}

/* No Content-Length: an empty, NUL-terminated body, and the reader is not called. */
static void test_body_absent(void **state)
{
	struct src s = { "ignored", 7, 0, 7, 0 };
	struct http_req r;
	struct http_resp resp;
	(void)state;
	http_req_init(&r);
	http_resp_init(&resp);
	assert_int_equal(http_req_read_body(&r, src_read, &s, 1024, &resp), 0);
	assert_non_null(r.body);
	assert_int_equal(r.body_len, 0);
	assert_string_equal(r.body, "");
	assert_int_equal(s.calls, 0);
	http_req_free(&r);
	http_resp_free(&resp);
}

/* Over the limit: 413 PAYLOAD_TOO_LARGE before a byte is read; at the limit: fine. */
static void test_body_limit(void **state)
{
	char big[101];
	struct src s = { big, 100, 0, 100, 0 };
	struct http_req r;
	struct http_resp resp;
	json_object *o;
	(void)state;
	memset(big, 'x', 100);
	big[100] = '\0';
	http_req_init(&r);
	http_resp_init(&resp);
	r.content_length = 100;
	assert_int_equal(http_req_read_body(&r, src_read, &s, 99, &resp), -1);
	assert_int_equal(resp.status, 413);
	assert_int_equal(s.calls, 0);
	o = body_json(&resp);
	assert_string_equal(str_member(o, "code"), "PAYLOAD_TOO_LARGE");
	assert_non_null(strstr(str_member(o, "details"), "99"));
	json_object_put(o);
	http_resp_free(&resp);
	assert_int_equal(http_req_read_body(&r, src_read, &s, 100, &resp), 0);
	assert_int_equal(r.body_len, 100);
	http_req_free(&r);
	http_resp_free(&resp);
}

/* A body shorter than announced and a non-numeric length are 400s. */
static void test_body_bad_length(void **state)
{
	struct src s = { "abc", 3, 0, 10, 0 };
	char *envp[] = { "REQUEST_METHOD=POST", "REQUEST_URI=/execute", "CONTENT_LENGTH=12x", NULL };
	struct http_req r;
	struct http_resp resp;
	json_object *o;
	(void)state;
	http_req_init(&r);
	http_resp_init(&resp);
	r.content_length = 10;
	assert_int_equal(http_req_read_body(&r, src_read, &s, 1024, &resp), -1);
	assert_int_equal(resp.status, 400);
	o = body_json(&resp);
	assert_string_equal(str_member(o, "code"), "INCOMPLETE_BODY");
	json_object_put(o);
	http_req_free(&r);
	http_resp_free(&resp);

	http_req_from_params(&r, envp);
	assert_true(r.content_length_bad);
	assert_int_equal(http_req_read_body(&r, src_read, &s, 1024, &resp), -1);
	assert_int_equal(resp.status, 400);
	o = body_json(&resp);
	assert_string_equal(str_member(o, "code"), "INVALID_CONTENT_LENGTH");
	json_object_put(o);
	http_req_free(&r);
	http_resp_free(&resp);
}

/* Errors are {"error","code","details"} plus "field" only when one is at fault. */
static void test_error_shape(void **state)
{
	struct http_resp r;
	json_object *o, *v;
	(void)state;
	http_resp_init(&r);
	http_resp_error(&r, 400, "Invalid request", "INVALID_FIELD", "ttl",
	    "'ttl' must be between %d and %d", 1, 900);
	assert_int_equal(r.status, 400);
	o = body_json(&r);
	assert_int_equal(json_object_object_length(o), 4);
	assert_string_equal(str_member(o, "error"), "Invalid request");
	assert_string_equal(str_member(o, "code"), "INVALID_FIELD");
	assert_string_equal(str_member(o, "details"), "'ttl' must be between 1 and 900");
	assert_string_equal(str_member(o, "field"), "ttl");
	json_object_put(o);

	http_resp_error(&r, 401, "Unauthorized", "MISSING_AUTH", NULL, "quote \" and / kept");
	o = body_json(&r);
	assert_int_equal(json_object_object_length(o), 3);
	assert_false(json_object_object_get_ex(o, "field", &v));
	assert_string_equal(str_member(o, "details"), "quote \" and / kept");
	json_object_put(o);
	/* slashes are not escaped in the wire form */
	assert_non_null(strstr(r.body, "and / kept"));
	http_resp_free(&r);
}

/* The CGI answer: Status line, JSON type, length, extra headers, blank line, body. */
static void test_serialize(void **state)
{
	struct http_resp r;
	json_object *o = json_object_new_object();
	char *out;
	size_t len;
	(void)state;
	http_resp_init(&r);
	json_object_object_add(o, "status", json_object_new_string("ok"));
	http_resp_json(&r, 202, o);
	json_object_put(o);
	http_resp_header(&r, "X-Job-Id", "%s", "abc");
	http_resp_header(&r, "X-Evil", "a\r\nSet-Cookie: x=%d", 1);
	out = http_resp_serialize(&r, &len);
	assert_string_equal(out,
	    "Status: 202 Accepted\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 15\r\n"
	    "X-Job-Id: abc\r\n"
	    "X-Evil: a  Set-Cookie: x=1\r\n"
	    "\r\n"
	    "{\"status\":\"ok\"}");
	assert_int_equal(len, strlen(out));
	free(out);
	http_resp_free(&r);

	/* a response nobody filled is a 500, never an empty 200 */
	out = http_resp_serialize(&r, &len);
	assert_non_null(strstr(out, "Status: 500 Internal Server Error\r\n"));
	free(out);
	assert_string_equal(http_reason(405), "Method Not Allowed");
	assert_string_equal(http_reason(413), "Payload Too Large");
	assert_string_equal(http_reason(599), "Unknown");
}

/* --- authentication against an in-memory key store --- */

#define PUB	"crl-pk-aaaaaa-bbbbbb-cccccc-dddddd"
#define SECRET	"crl-sk-11111111-22222222-33333333-44444444-55555555"

static unsigned char master[KEYS_MASTER_LEN];

struct store {
	bool	suspended, expired, down;
	int	lookups;
};

/* auth_lookup_fn over one key. */
static int store_lookup(void *ctx, enum auth_by by, const char *value, struct auth_key *k,
    char **cause)
{
	struct store *s = ctx;
	unsigned char h[KEYS_HASH_LEN];
	char hex[2 * KEYS_HASH_LEN + 1];
	s->lookups++;
	if (s->down)
		return util_fail(cause, "connection refused");
	keys_hash(SECRET, h);
	util_hex(h, sizeof h, hex);
	if (strcmp(value, by == AUTH_BY_PUBLIC_KEY ? PUB : hex) != 0)
		return 0;
	k->id = 7;
	k->public_key = xstrdup(PUB);
	assert_int_equal(keys_seal(master, PUB, SECRET, &k->sealed, &k->sealed_len, NULL), 0);
	k->tier = xstrdup("standard");
	k->suspended = s->suspended;
	k->expired = s->expired;
	k->expires_at = s->expired ? xstrdup("2020-01-01T00:00:00Z") : NULL;
	return 1;
}

/* Builds a request with the given headers (NULL = absent) and body. */
static void mkreq(struct http_req *r, const char *method, const char *uri, const char *authz,
    const char *ts, const char *sig, const char *api_key, const char *body)
{
	const char *q = strchr(uri, '?');
	http_req_init(r);
	r->method = xstrdup(method);
	r->uri = xstrdup(uri);
	r->path = q ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
	r->query = xstrdup(q ? q + 1 : "");
	r->authorization = authz ? xstrdup(authz) : NULL;
	r->x_timestamp = ts ? xstrdup(ts) : NULL;
	r->x_signature = sig ? xstrdup(sig) : NULL;
	r->x_api_key = api_key ? xstrdup(api_key) : NULL;
	r->body = xstrdup(body);
	r->body_len = strlen(body);
}

/* Signs "<ts>:<method>:<path>:<body>" with SECRET into out. */
static void sign(const char *ts, const char *method, const char *path, const char *body,
    char out[65])
{
	size_t len;
	char *m = hmac_message(ts, method, path, strlen(path), body, strlen(body), &len);
	hmac_sha256_hex(SECRET, strlen(SECRET), m, len, out);
	free(m);
}

/* Runs auth_request and checks the status and code (status 0 = success). */
static void expect(struct http_req *r, struct store *s, int status, const char *code)
{
	struct auth_result a;
	struct http_resp resp;
	int rc;
	auth_result_init(&a);
	http_resp_init(&resp);
	rc = auth_request(r, master, 300, (time_t)1700000000, store_lookup, s, &a, &resp);
	if (status == 0) {
		assert_int_equal(rc, 0);
		assert_int_equal(a.key.id, 7);
		assert_int_equal(resp.status, 0);
	} else {
		json_object *o;
		assert_int_equal(rc, -1);
		assert_int_equal(resp.status, status);
		o = body_json(&resp);
		assert_string_equal(str_member(o, "code"), code);
		json_object_put(o);
	}
	auth_result_free(&a);
	http_resp_free(&resp);
	http_req_free(r);
}

/* Sets a fixed master key before the auth tests. */
static int auth_setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof master; i++)
		master[i] = (unsigned char)(i * 7 + 1);
	return 0;
}

/* A correctly signed request passes and yields the lowercase signature as replay token. */
static void test_auth_hmac_ok(void **state)
{
	const char *body = "{\"language\":\"python\",\"code\":\"print(1)\"}";
	struct store s = { 0 };
	struct http_req r;
	struct auth_result a;
	struct http_resp resp;
	char sig[65], upper[65];
	(void)state;
	sign("1700000000", "POST", "/execute", body, sig);
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(sig[i] >= 'a' && sig[i] <= 'f' ? sig[i] - 32 : sig[i]);
	mkreq(&r, "POST", "/execute", "Bearer " PUB, "1700000000", upper, NULL, body);
	auth_result_init(&a);
	http_resp_init(&resp);
	assert_int_equal(auth_request(&r, master, 300, (time_t)1700000100, store_lookup, &s,
	    &a, &resp), 0);
	assert_int_equal(a.kind, AUTH_HMAC);
	assert_string_equal(a.signature, sig);
	assert_string_equal(a.key.public_key, PUB);
	auth_result_free(&a);
	http_resp_free(&resp);
	http_req_free(&r);

	/* signed over the path with its query string: accepted too */
	sign("1700000000", "GET", "/languages?details=1", "", sig);
	mkreq(&r, "GET", "/languages?details=1", "bearer  " PUB, "1700000000", sig, NULL, "");
	expect(&r, &s, 0, NULL);
}

/* Each way an HMAC request can be wrong has its own code. */
static void test_auth_hmac_errors(void **state)
{
	struct store s = { 0 };
	struct http_req r;
	char sig[65];
	(void)state;
	sign("1700000000", "POST", "/execute", "{}", sig);
	mkreq(&r, "POST", "/execute", "Bearer " PUB, NULL, sig, NULL, "{}");
	expect(&r, &s, 401, "MISSING_TIMESTAMP");
	mkreq(&r, "POST", "/execute", "Bearer " PUB, "17e8", sig, NULL, "{}");
	expect(&r, &s, 401, "INVALID_TIMESTAMP");
	mkreq(&r, "POST", "/execute", "Bearer " PUB, "1699999000", sig, NULL, "{}");
	expect(&r, &s, 401, "STALE_TIMESTAMP");
	/* the body was changed after signing */
	mkreq(&r, "POST", "/execute", "Bearer " PUB, "1700000000", sig, NULL, "{ }");
	expect(&r, &s, 401, "INVALID_SIGNATURE");
	/* the method was changed */
	mkreq(&r, "PUT", "/execute", "Bearer " PUB, "1700000000", sig, NULL, "{}");
	expect(&r, &s, 401, "INVALID_SIGNATURE");
	mkreq(&r, "POST", "/execute", "Bearer crl-pk-nobody", "1700000000", sig, NULL, "{}");
	expect(&r, &s, 401, "INVALID_KEY");
}

/* Static keys: the secret authenticates; a public key alone does not. */
static void test_auth_static(void **state)
{
	struct store s = { 0 };
	struct http_req r;
	(void)state;
	mkreq(&r, "POST", "/execute", NULL, NULL, NULL, SECRET, "{}");
	expect(&r, &s, 0, NULL);
	mkreq(&r, "GET", "/jobs", "Bearer " SECRET, NULL, NULL, NULL, "");
	expect(&r, &s, 0, NULL);
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, PUB, "");
	expect(&r, &s, 401, "INVALID_KEY");
	mkreq(&r, "GET", "/jobs", "Bearer " PUB, NULL, NULL, NULL, "");
	expect(&r, &s, 401, "MISSING_SIGNATURE");
	mkreq(&r, "GET", "/jobs", "Bearer " PUB, "1700000000", NULL, NULL, "");
	expect(&r, &s, 401, "MISSING_SIGNATURE");
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, "wrong", "");
	expect(&r, &s, 401, "INVALID_KEY");
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, NULL, "");
	expect(&r, &s, 401, "MISSING_AUTH");
	mkreq(&r, "GET", "/jobs", "Basic dXNlcjpwYXNz", NULL, NULL, NULL, "");
	expect(&r, &s, 401, "MISSING_AUTH");
	mkreq(&r, "GET", "/jobs", "Bearer ", NULL, NULL, "", "");
	expect(&r, &s, 401, "MISSING_AUTH");
}

/* The RapidAPI headers carry the secret as well; X-API-Key wins when both are sent. */
static void test_auth_rapidapi(void **state)
{
	struct store s = { 0 };
	struct http_req r;
	struct auth_creds c;
	(void)state;
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, NULL, "");
	r.x_rapidapi_key = xstrdup(SECRET);
	expect(&r, &s, 0, NULL);
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, NULL, "");
	r.x_rapidapi_proxy_secret = xstrdup(SECRET);
	expect(&r, &s, 0, NULL);
	mkreq(&r, "GET", "/jobs", "Bearer " PUB, NULL, "00", "first", "");
	r.x_rapidapi_key = xstrdup("second");
	auth_parse(&r, &c);
	assert_int_equal(c.kind, AUTH_HMAC);
	http_req_free(&r);
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, "first", "");
	r.x_rapidapi_key = xstrdup("second");
	auth_parse(&r, &c);
	assert_int_equal(c.kind, AUTH_STATIC);
	assert_string_equal(c.token, "first");
	assert_string_equal(c.header, "X-API-Key");
	http_req_free(&r);
}

/* Key state is checked only after the credentials are proven; the database failing is 503. */
static void test_auth_state(void **state)
{
	struct store s = { .suspended = true };
	struct http_req r;
	char sig[65];
	(void)state;
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, SECRET, "");
	expect(&r, &s, 403, "KEY_SUSPENDED");
	/* a wrong signature on a suspended key says nothing about the key's state */
	mkreq(&r, "GET", "/jobs", "Bearer " PUB, "1700000000", "00", NULL, "");
	expect(&r, &s, 401, "INVALID_SIGNATURE");
	s.suspended = false;
	s.expired = true;
	sign("1700000000", "GET", "/jobs", "", sig);
	mkreq(&r, "GET", "/jobs", "Bearer " PUB, "1700000000", sig, NULL, "");
	expect(&r, &s, 403, "KEY_EXPIRED");
	s.expired = false;
	s.down = true;
	mkreq(&r, "GET", "/jobs", NULL, NULL, NULL, SECRET, "");
	expect(&r, &s, 503, "DATABASE_UNAVAILABLE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_params_fallback),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_query_flag),
		cmocka_unit_test(test_url_decode),
		cmocka_unit_test(test_body_read),
		cmocka_unit_test(test_body_absent),
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_body_bad_length),
		cmocka_unit_test(test_error_shape),
		cmocka_unit_test(test_serialize),
		cmocka_unit_test_setup(test_auth_hmac_ok, auth_setup),
		cmocka_unit_test_setup(test_auth_hmac_errors, auth_setup),
		cmocka_unit_test_setup(test_auth_static, auth_setup),
		cmocka_unit_test_setup(test_auth_rapidapi, auth_setup),
		cmocka_unit_test_setup(test_auth_state, auth_setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
