/* hmac: request signing as the unsandbox contract defines it:
 * hex(HMAC-SHA256(secret, "<timestamp>:<METHOD>:<path>:<body>")). */
#ifndef CORRAL_HMAC_H
#define CORRAL_HMAC_H

#include <stddef.h>
#include <time.h>

enum hmac_rc {
	HMAC_OK = 0,
	HMAC_BAD_SIGNATURE,	/* not 64 hex characters, or no match */
	HMAC_BAD_TIMESTAMP,	/* not a decimal number of seconds */
	HMAC_STALE_TIMESTAMP,	/* outside the allowed window */
};

/* Writes lowercase hex HMAC-SHA256(key, msg) into out (65 bytes with the NUL). */
void hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen, char out[65]);
/* Returns the malloc'd message "<ts>:<method>:<path>:<body>" (caller frees) and its length. */
char *hmac_message(const char *ts, const char *method, const char *path, size_t pathlen,
    const void *body, size_t bodylen, size_t *len);
/* Checks sig_hex against the request, signed over the path without its query and,
 * failing that, with it; constant-time comparison. Returns HMAC_OK or HMAC_BAD_SIGNATURE. */
enum hmac_rc hmac_verify(const char *secret, const char *ts, const char *method,
    const char *uri, const void *body, size_t bodylen, const char *sig_hex);
/* Checks that ts is a decimal number of seconds within window seconds of now. */
enum hmac_rc hmac_check_timestamp(const char *ts, time_t now, int window);

#endif
