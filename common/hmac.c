/* hmac: request signature computation and verification. */
#include "hmac.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "util.h"

/* Computes hex HMAC-SHA256 of msg under key into out. */
void hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, mac, &maclen);
	util_hex(mac, 32, out);
}

/* Builds the string that is signed; caller frees. */
char *hmac_message(const char *ts, const char *method, const char *path, size_t pathlen,
    const void *body, size_t bodylen, size_t *len)
{
	size_t tl = strlen(ts), ml = strlen(method);
	size_t n = tl + 1 + ml + 1 + pathlen + 1 + bodylen;
	char *m = xmalloc(n + 1), *p = m;
	memcpy(p, ts, tl);
	p += tl;
	*p++ = ':';
	memcpy(p, method, ml);
	p += ml;
	*p++ = ':';
	memcpy(p, path, pathlen);
	p += pathlen;
	*p++ = ':';
	if (bodylen > 0)
		memcpy(p, body, bodylen);
	m[n] = '\0';
	*len = n;
	return m;
}

/* Compares the signature over one form of the path; returns 1 on a match. */
static int hmac_match(const char *secret, const char *ts, const char *method,
    const char *path, size_t pathlen, const void *body, size_t bodylen, const char *sig)
{
	char want[65];
	size_t len;
	char *msg = hmac_message(ts, method, path, pathlen, body, bodylen, &len);
	hmac_sha256_hex(secret, strlen(secret), msg, len, want);
	free(msg);
	return util_ct_equal(want, sig, 64);
}

/* Verifies a signature against the path with and without its query string. */
enum hmac_rc hmac_verify(const char *secret, const char *ts, const char *method,
    const char *uri, const void *body, size_t bodylen, const char *sig_hex)
{
	char sig[65];
	const char *q;
	size_t n = strlen(sig_hex);
	int ok;
	if (n != 64)
		return HMAC_BAD_SIGNATURE;
	for (size_t i = 0; i < 64; i++) {
		char c = sig_hex[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return HMAC_BAD_SIGNATURE;
		sig[i] = c;
	}
	sig[64] = '\0';
	q = strchr(uri, '?');
	ok = hmac_match(secret, ts, method, uri, q ? (size_t)(q - uri) : strlen(uri), body, bodylen, sig);
	if (q != NULL)
		ok |= hmac_match(secret, ts, method, uri, strlen(uri), body, bodylen, sig);
	return ok ? HMAC_OK : HMAC_BAD_SIGNATURE;
}

/* Validates the timestamp's form and window. */
enum hmac_rc hmac_check_timestamp(const char *ts, time_t now, int window)
{
	long long v;
	if (strlen(ts) > 12 || util_parse_ll(ts, 0, 999999999999LL, &v) < 0)
		return HMAC_BAD_TIMESTAMP;
	if (v < (long long)now - window || v > (long long)now + window)
		return HMAC_STALE_TIMESTAMP;
	return HMAC_OK;
}
