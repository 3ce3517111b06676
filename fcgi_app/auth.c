/* auth: credential parsing, key lookup through a callback, HMAC and key-state checks.
 * Opened secrets are not cached: opening one is a single AES-GCM operation (about a
 * microsecond) next to the database round trip that fetches the row anyway. */
#include "auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hmac.h"
#include "util.h"

/* Initialises an empty key row. */
void auth_key_init(struct auth_key *k)
{
	memset(k, 0, sizeof *k);
}

/* Frees the key row's strings. */
void auth_key_free(struct auth_key *k)
{
	free(k->public_key);
	free(k->sealed);
	free(k->tier);
	free(k->expires_at);
	auth_key_init(k);
}

/* Initialises an empty result. */
void auth_result_init(struct auth_result *a)
{
	memset(a, 0, sizeof *a);
	auth_key_init(&a->key);
}

/* Frees the result's key row and signature. */
void auth_result_free(struct auth_result *a)
{
	auth_key_free(&a->key);
	free(a->signature);
	auth_result_init(a);
}

/* Returns s when it is a non-empty header value, else NULL. */
static const char *auth_present(const char *s)
{
	return (s != NULL && *s != '\0') ? s : NULL;
}

/* Returns the token of "Bearer <token>" (owned by the header), NULL if another form. */
static const char *auth_bearer(const char *h, bool *bad_scheme)
{
	*bad_scheme = false;
	if (h == NULL || *h == '\0')
		return NULL;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) {
		*bad_scheme = true;
		return NULL;
	}
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	if (*h == '\0') {
		*bad_scheme = true;
		return NULL;
	}
	return h;
}

/* Picks the credentials out of the headers. */
void auth_parse(const struct http_req *req, struct auth_creds *c)
{
	const char *bearer;
	memset(c, 0, sizeof *c);
	bearer = auth_bearer(req->authorization, &c->bad_scheme);
	if (bearer != NULL && auth_present(req->x_signature) != NULL) {
		c->kind = AUTH_HMAC;
		c->token = bearer;
		c->header = "Authorization";
		c->bearer = true;
		return;
	}
	c->kind = AUTH_STATIC;
	if ((c->token = auth_present(req->x_api_key)) != NULL)
		c->header = "X-API-Key";
	else if ((c->token = auth_present(req->x_rapidapi_key)) != NULL)
		c->header = "X-RapidAPI-Key";
	else if ((c->token = auth_present(req->x_rapidapi_proxy_secret)) != NULL)
		c->header = "X-RapidAPI-Proxy-Secret";
	else if ((c->token = bearer) != NULL) {
		c->header = "Authorization";
		c->bearer = true;
	} else
		c->kind = AUTH_NONE;
}

/* Sets a 401 answer. */
#define AUTH_401(err, code, ...) \
	http_resp_error(err, 401, "Unauthorized", code, NULL, __VA_ARGS__)

/* Sets the 503 answer for a failed lookup and logs the cause. */
static int auth_db_down(struct http_resp *err, char *cause)
{
	log_error("auth: %s", cause != NULL ? cause : "database error");
	free(cause);
	http_resp_error(err, 503, "Service unavailable", "DATABASE_UNAVAILABLE", NULL,
	    "The database cannot be reached; retry in a few seconds.");
	return -1;
}

/* Refuses suspended and expired keys (checked only once the caller proved the key). */
static int auth_check_state(const struct auth_key *k, struct http_resp *err)
{
	if (k->suspended) {
		http_resp_error(err, 403, "Key suspended", "KEY_SUSPENDED", NULL,
		    "The API key %s is suspended.", k->public_key);
		return -1;
	}
	if (k->expired) {
		http_resp_error(err, 403, "Key expired", "KEY_EXPIRED", NULL,
		    "The API key %s expired at %s.", k->public_key,
		    k->expires_at != NULL ? k->expires_at : "an earlier time");
		return -1;
	}
	return 0;
}

/* Verifies an HMAC-signed request for the key row already found. */
static int auth_hmac(const struct http_req *req, const unsigned char *master, int window,
    time_t now, struct auth_result *out, struct http_resp *err)
{
	const char *ts = auth_present(req->x_timestamp);
	char *secret, *cause = NULL;
	enum hmac_rc rc;

	if (ts == NULL) {
		AUTH_401(err, "MISSING_TIMESTAMP",
		    "A signed request needs the X-Timestamp header (unix seconds).");
		return -1;
	}
	rc = hmac_check_timestamp(ts, now, window);
	if (rc == HMAC_BAD_TIMESTAMP) {
		AUTH_401(err, "INVALID_TIMESTAMP",
		    "X-Timestamp must be a decimal number of unix seconds.");
		return -1;
	}
	if (rc == HMAC_STALE_TIMESTAMP) {
		AUTH_401(err, "STALE_TIMESTAMP",
		    "X-Timestamp is more than %d seconds away from the server's clock.", window);
		return -1;
	}
	secret = keys_open(master, out->key.public_key, out->key.sealed, out->key.sealed_len,
	    &cause);
	if (secret == NULL) {
		log_error("auth: key %s: %s", out->key.public_key, cause);
		free(cause);
		http_resp_error(err, 500, "Internal error", "INTERNAL_ERROR", NULL,
		    "The server cannot open this key's secret.");
		return -1;
	}
	rc = hmac_verify(secret, ts, req->method, req->uri, req->body, req->body_len,
	    req->x_signature);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	if (rc != HMAC_OK) {
		AUTH_401(err, "INVALID_SIGNATURE",
		    "X-Signature must be the hex HMAC-SHA256 of \"<timestamp>:<METHOD>:<path>:<body>\" "
		    "under the secret key.");
		return -1;
	}
	out->signature = xstrdup(req->x_signature);
	for (char *p = out->signature; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

/* Authenticates a request that carries a secret key in one header. */
static int auth_static(const struct auth_creds *c, auth_lookup_fn lookup, void *ctx,
    struct auth_result *out, struct http_resp *err)
{
	unsigned char h[KEYS_HASH_LEN];
	char hex[2 * KEYS_HASH_LEN + 1];
	char *cause = NULL;
	int rc;

	keys_hash(c->token, h);
	util_hex(h, sizeof h, hex);
	rc = lookup(ctx, AUTH_BY_SECRET_HASH, hex, &out->key, &cause);
	if (rc < 0)
		return auth_db_down(err, cause);
	if (rc > 0)
		return 0;
	if (c->bearer) {
		/* A public key alone authenticates nothing: say what is missing. */
		rc = lookup(ctx, AUTH_BY_PUBLIC_KEY, c->token, &out->key, &cause);
		auth_key_free(&out->key);
		if (rc < 0)
			return auth_db_down(err, cause);
		if (rc > 0) {
			AUTH_401(err, "MISSING_SIGNATURE",
			    "Authorization carries a public key: sign the request with "
			    "X-Timestamp and X-Signature.");
			return -1;
		}
	}
	AUTH_401(err, "INVALID_KEY", "The key given in %s does not exist.", c->header);
	return -1;
}

/* Authenticates one request. */
int auth_request(const struct http_req *req, const unsigned char master[KEYS_MASTER_LEN],
    int window, time_t now, auth_lookup_fn lookup, void *ctx, struct auth_result *out,
    struct http_resp *err)
{
	struct auth_creds c;
	char *cause = NULL;
	int rc;

	auth_parse(req, &c);
	out->kind = c.kind;
	if (c.kind == AUTH_NONE) {
		AUTH_401(err, "MISSING_AUTH", c.bad_scheme ?
		    "The Authorization header must be \"Bearer <key>\"." :
		    "Send Authorization: Bearer <public key> with X-Timestamp and X-Signature, "
		    "or a secret key in X-API-Key.");
		return -1;
	}
	if (c.kind == AUTH_STATIC) {
		if (auth_static(&c, lookup, ctx, out, err) < 0)
			return -1;
		return auth_check_state(&out->key, err);
	}
	rc = lookup(ctx, AUTH_BY_PUBLIC_KEY, c.token, &out->key, &cause);
	if (rc < 0)
		return auth_db_down(err, cause);
	if (rc == 0) {
		AUTH_401(err, "INVALID_KEY", "The provided public key does not exist.");
		return -1;
	}
	if (auth_hmac(req, master, window, now, out, err) < 0)
		return -1;
	return auth_check_state(&out->key, err);
}
