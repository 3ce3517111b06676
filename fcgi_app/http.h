/* http: a request/response model independent of libfcgi (so it can be unit tested).
 * A request is built from FastCGI params ("NAME=value" strings) and a body reader;
 * a response is serialized to the CGI form "Status: ...\r\nheaders\r\n\r\nbody". */
#ifndef CORRAL_HTTP_H
#define CORRAL_HTTP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct http_req {
	char		*method;	/* "GET", "POST", ...; "" when absent */
	char		*uri;		/* full REQUEST_URI as the client sent it (raw) */
	char		*path;		/* uri up to '?', raw (not percent-decoded) */
	char		*query;		/* after '?', raw; "" when none */
	char		*authorization;	/* the header values, NULL when absent */
	char		*x_timestamp;
	char		*x_signature;
	char		*x_api_key;
	char		*x_rapidapi_key;
	char		*x_rapidapi_proxy_secret;
	char		*content_type;
	char		*remote_addr;
	long long	 content_length; /* -1 when absent or empty */
	bool		 content_length_bad; /* present but not a decimal number */
	char		*body;		/* NUL-terminated (the NUL is not counted); never NULL after read */
	size_t		 body_len;
};

struct http_resp {
	int		 status;	/* 0 until set */
	struct buf	 headers;	/* extra "Name: value\r\n" lines */
	char		*body;		/* owned; NULL = empty */
	size_t		 body_len;
};

/* Reads up to n bytes of the body into p; returns bytes read, 0 at end, -1 on error. */
typedef ssize_t (*http_read_fn)(void *ctx, char *p, size_t n);

/* Initialises an empty request. */
void http_req_init(struct http_req *r);
/* Frees what the request holds and resets it. */
void http_req_free(struct http_req *r);
/* Fills r from a NULL-terminated "NAME=value" array (FastCGI params); copies every
 * string, so envp may go away afterwards. */
void http_req_from_params(struct http_req *r, char *const *envp);
/* Reads the body announced by CONTENT_LENGTH through rd (at most max bytes). Returns 0,
 * or -1 with resp set to the error answer (413 PAYLOAD_TOO_LARGE, 400 on a bad length
 * or a short body). */
int http_req_read_body(struct http_req *r, http_read_fn rd, void *ctx, long long max,
    struct http_resp *resp);

/* Percent-decodes s[0..n) ('+' is a space); returns the malloc'd string (caller frees) or
 * NULL when it would contain a NUL byte. Malformed escapes are kept literally. */
char *http_url_decode(const char *s, size_t n);
/* Finds the first parameter name in a raw query string; returns its decoded value
 * (caller frees; "" for "name" or "name="), or NULL when absent. */
char *http_query_get(const char *query, const char *name);
/* Returns true when the query parameter is present and is 1, true, yes or on. */
bool http_query_flag(const char *query, const char *name);

/* Initialises an empty response. */
void http_resp_init(struct http_resp *r);
/* Frees what the response holds and resets it. */
void http_resp_free(struct http_resp *r);
/* Adds one header line; name and the formatted value must not hold CR or LF (they are
 * replaced by spaces). */
void http_resp_header(struct http_resp *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the status and the body to the serialized object (the caller still owns o). */
void http_resp_json(struct http_resp *r, int status, json_object *o);
/* Sets an error answer {"error", "code", "details"[, "field"]}; field may be NULL or "". */
void http_resp_error(struct http_resp *r, int status, const char *error, const char *code,
    const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Returns the reason phrase for a status ("Unknown" when not in the table); static. */
const char *http_reason(int status);
/* Returns the whole CGI answer (Status line, Content-Type, Content-Length, extra headers,
 * blank line, body) as a malloc'd buffer the caller frees; *len gets its size. */
char *http_resp_serialize(const struct http_resp *r, size_t *len);

#endif
