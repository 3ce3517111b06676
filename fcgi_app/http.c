/* http: requests from FastCGI params, query strings, JSON answers and error bodies. */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Upper bound on the response header block (our own headers only). */
#define HTTP_HEADERS_MAX	(64 * 1024)

/* Initialises an empty request. */
void http_req_init(struct http_req *r)
{
	memset(r, 0, sizeof *r);
	r->content_length = -1;
}

/* Frees every string the request holds and resets it. */
void http_req_free(struct http_req *r)
{
	free(r->method);
	free(r->uri);
	free(r->path);
	free(r->query);
	free(r->authorization);
	free(r->x_timestamp);
	free(r->x_signature);
	free(r->x_api_key);
	free(r->x_rapidapi_key);
	free(r->x_rapidapi_proxy_secret);
	free(r->content_type);
	free(r->remote_addr);
	free(r->body);
	http_req_init(r);
}

/* Returns the value of NAME in a "NAME=value" array, or NULL; owned by envp. */
static const char *http_param(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; envp != NULL && *envp != NULL; envp++) {
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	}
	return NULL;
}

/* Returns a malloc'd copy of the param (caller frees), or NULL when absent. */
static char *http_param_dup(char *const *envp, const char *name)
{
	const char *v = http_param(envp, name);
	return v != NULL ? xstrdup(v) : NULL;
}

/* Fills the request from FastCGI params. REQUEST_URI is the raw request target; when a
 * server does not send it, DOCUMENT_URI (or SCRIPT_NAME) and QUERY_STRING stand in. */
void http_req_from_params(struct http_req *r, char *const *envp)
{
	const char *m = http_param(envp, "REQUEST_METHOD");
	const char *uri = http_param(envp, "REQUEST_URI");
	const char *cl = http_param(envp, "CONTENT_LENGTH");
	const char *q;

	r->method = xstrdup(m != NULL ? m : "");
	if (uri != NULL && *uri != '\0')
		r->uri = xstrdup(uri);
	else {
		const char *p = http_param(envp, "DOCUMENT_URI");
		const char *qs = http_param(envp, "QUERY_STRING");
		if (p == NULL)
			p = http_param(envp, "SCRIPT_NAME");
		if (p == NULL || *p == '\0')
			p = "/";
		r->uri = (qs != NULL && *qs != '\0') ? xasprintf("%s?%s", p, qs) : xstrdup(p);
	}
	q = strchr(r->uri, '?');
	r->path = q != NULL ? xstrndup(r->uri, (size_t)(q - r->uri)) : xstrdup(r->uri);
	r->query = xstrdup(q != NULL ? q + 1 : "");

	r->authorization = http_param_dup(envp, "HTTP_AUTHORIZATION");
	r->x_timestamp = http_param_dup(envp, "HTTP_X_TIMESTAMP");
	r->x_signature = http_param_dup(envp, "HTTP_X_SIGNATURE");
	r->x_api_key = http_param_dup(envp, "HTTP_X_API_KEY");
	r->x_rapidapi_key = http_param_dup(envp, "HTTP_X_RAPIDAPI_KEY");
	r->x_rapidapi_proxy_secret = http_param_dup(envp, "HTTP_X_RAPIDAPI_PROXY_SECRET");
	r->content_type = http_param_dup(envp, "CONTENT_TYPE");
	r->remote_addr = http_param_dup(envp, "REMOTE_ADDR");

	r->content_length = -1;
	r->content_length_bad = false;
	if (cl != NULL && *cl != '\0') {
		long long v;
		if (util_parse_ll(cl, 0, (1LL << 62), &v) == 0)
			r->content_length = v;
		else
			r->content_length_bad = true;
	}
}

/* Reads the announced body. A missing CONTENT_LENGTH means no body (FastCGI servers,
 * nginx included, always announce a body's length). */
int http_req_read_body(struct http_req *r, http_read_fn rd, void *ctx, long long max,
    struct http_resp *resp)
{
	size_t want, got = 0;

	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	if (r->content_length_bad) {
		http_resp_error(resp, 400, "Bad request", "INVALID_CONTENT_LENGTH", NULL,
		    "The Content-Length header must be a decimal number of bytes.");
		return -1;
	}
	if (r->content_length > max) {
		http_resp_error(resp, 413, "Payload too large", "PAYLOAD_TOO_LARGE", NULL,
		    "The request body is %lld bytes; the limit is %lld bytes.",
		    r->content_length, max);
		return -1;
	}
	want = r->content_length > 0 ? (size_t)r->content_length : 0;
	r->body = xmalloc(want + 1);
	while (got < want) {
		ssize_t n = rd(ctx, r->body + got, want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r->body[got] = '\0';
	r->body_len = got;
	if (got < want) {
		http_resp_error(resp, 400, "Bad request", "INCOMPLETE_BODY", NULL,
		    "The request body ended after %zu of the %zu bytes Content-Length announced.",
		    got, want);
		return -1;
	}
	return 0;
}

/* Percent-decodes s[0..n); caller frees; NULL when the result would hold a NUL. */
char *http_url_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '+') {
			*o++ = ' ';
			continue;
		}
		if (s[i] == '%' && i + 2 < n && (hi = util_hexval(s[i + 1])) >= 0 &&
		    (lo = util_hexval(s[i + 2])) >= 0) {
			char c = (char)(hi * 16 + lo);
			if (c == '\0') {
				free(out);
				return NULL;
			}
			*o++ = c;
			i += 2;
			continue;
		}
		if (s[i] == '\0') {
			free(out);
			return NULL;
		}
		*o++ = s[i];
	}
	*o = '\0';
	return out;
}

/* Scans "a=1&b=2" for name (compared after decoding); caller frees the value. */
char *http_query_get(const char *query, const char *name)
{
	const char *p = query;
	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '&');
		const char *eq;
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *k;
		eq = memchr(p, '=', len);
		k = http_url_decode(p, eq != NULL ? (size_t)(eq - p) : len);
		if (k != NULL && strcmp(k, name) == 0) {
			free(k);
			if (eq == NULL)
				return xstrdup("");
			return http_url_decode(eq + 1, len - (size_t)(eq + 1 - p));
		}
		free(k);
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* Tells whether a query flag is set to a true word. */
bool http_query_flag(const char *query, const char *name)
{
	char *v = http_query_get(query, name);
	bool on = v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
	    strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
	free(v);
	return on;
}

/* Initialises an empty response. */
void http_resp_init(struct http_resp *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->headers, HTTP_HEADERS_MAX);
}

/* Frees the body and headers and resets the response. */
void http_resp_free(struct http_resp *r)
{
	buf_free(&r->headers);
	free(r->body);
	http_resp_init(r);
}

/* Appends s to the header block with CR and LF turned into spaces. */
static void http_put_clean(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		char c = (*s == '\r' || *s == '\n') ? ' ' : *s;
		buf_add(b, &c, 1);
	}
}

/* Adds one "Name: value" header line. */
void http_resp_header(struct http_resp *r, const char *name, const char *fmt, ...)
{
	va_list ap;
	char *v;
	int n;
	va_start(ap, fmt);
	n = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	http_put_clean(&r->headers, name);
	buf_puts(&r->headers, ": ");
	http_put_clean(&r->headers, v);
	buf_puts(&r->headers, "\r\n");
	free(v);
}

/* Serializes o as the body (plain JSON, no slash escaping). */
void http_resp_json(struct http_resp *r, int status, json_object *o)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	free(r->body);
	r->status = status;
	r->body = xstrndup(s, len);
	r->body_len = len;
}

/* Builds the standard error body. */
void http_resp_error(struct http_resp *r, int status, const char *error, const char *code,
    const char *field, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	va_list ap;
	char *details;
	int n;
	va_start(ap, fmt);
	n = vasprintf(&details, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	json_object_object_add(o, "error", json_object_new_string(error));
	json_object_object_add(o, "code", json_object_new_string(code));
	json_object_object_add(o, "details", json_object_new_string(details));
	if (field != NULL && *field != '\0')
		json_object_object_add(o, "field", json_object_new_string(field));
	http_resp_json(r, status, o);
	json_object_put(o);
	free(details);
}

/* Maps a status to its reason phrase. */
const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

/* Serializes the CGI answer; a response with no status yet is a 500. */
char *http_resp_serialize(const struct http_resp *r, size_t *len)
{
	struct buf b;
	int status = r->status > 0 ? r->status : 500;
	buf_init(&b, 0);
	buf_printf(&b, "Status: %d %s\r\n", status, http_reason(status));
	buf_puts(&b, "Content-Type: application/json\r\n");
	buf_printf(&b, "Content-Length: %zu\r\n", r->body_len);
	if (!r->headers.failed && r->headers.len > 0)
		buf_add(&b, r->headers.data, r->headers.len);
	buf_puts(&b, "\r\n");
	if (r->body_len > 0)
		buf_add(&b, r->body, r->body_len);
	return buf_take(&b, len);
}
