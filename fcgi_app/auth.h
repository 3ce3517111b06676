/* auth: API key authentication as contract section 1 defines it: HMAC-signed requests
 * (Authorization: Bearer <public key>, X-Timestamp, X-Signature) and the static-key forms
 * (X-API-Key, X-RapidAPI-Key, X-RapidAPI-Proxy-Secret, Authorization: Bearer <secret>).
 * Key rows come from a lookup callback so this module never touches the database. */
#ifndef CORRAL_AUTH_H
#define CORRAL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "http.h"
#include "keys.h"

enum auth_kind {
	AUTH_NONE = 0,		/* no credentials at all */
	AUTH_HMAC,		/* Bearer <public key> with X-Signature */
	AUTH_STATIC,		/* a secret key in one header */
};

/* The credentials a request carries; the strings are owned by the request. */
struct auth_creds {
	enum auth_kind	 kind;
	const char	*token;		/* public key (HMAC) or secret (static) */
	const char	*header;	/* name of the header that carried token */
	bool		 bearer;	/* token came as Authorization: Bearer */
	bool		 bad_scheme;	/* Authorization present but not "Bearer <token>" */
};

/* One api_keys row as the lookup returns it. */
struct auth_key {
	long long	 id;
	char		*public_key;
	unsigned char	*sealed;	/* secret_sealed */
	size_t		 sealed_len;
	char		*tier;
	int		 rate_per_minute;
	int		 burst;
	int		 concurrency_limit;
	char		*expires_at;	/* ISO 8601 UTC, NULL = never */
	bool		 suspended;
	bool		 expired;	/* expires_at is in the past (decided by the database) */
};

enum auth_by {
	AUTH_BY_PUBLIC_KEY,	/* value is the public key */
	AUTH_BY_SECRET_HASH,	/* value is the lowercase hex SHA-256 of the secret */
};

/* Finds a key row; fills out (auth_key_free releases it). Returns 1 when found, 0 when
 * not, -1 with *cause (caller frees) when the database failed. */
typedef int (*auth_lookup_fn)(void *ctx, enum auth_by by, const char *value,
    struct auth_key *out, char **cause);

struct auth_result {
	struct auth_key	 key;
	enum auth_kind	 kind;
	char		*signature;	/* lowercase hex for HMAC (the replay token), else NULL */
};

/* Initialises an empty key row. */
void auth_key_init(struct auth_key *k);
/* Frees what the key row holds and resets it. */
void auth_key_free(struct auth_key *k);
/* Initialises an empty result. */
void auth_result_init(struct auth_result *a);
/* Frees what the result holds and resets it. */
void auth_result_free(struct auth_result *a);

/* Picks the credentials out of the request's headers (HMAC first, then the static
 * headers in the order X-API-Key, X-RapidAPI-Key, X-RapidAPI-Proxy-Secret, Bearer). */
void auth_parse(const struct http_req *req, struct auth_creds *c);
/* Authenticates a request at time now. Returns 0 with out filled, or -1 with err set to
 * the answer (401, 403, 500, or 503 DATABASE_UNAVAILABLE when lookup failed). */
int auth_request(const struct http_req *req, const unsigned char master[KEYS_MASTER_LEN],
    int window, time_t now, auth_lookup_fn lookup, void *ctx, struct auth_result *out,
    struct http_resp *err);

#endif
