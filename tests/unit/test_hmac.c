/* Unit tests: request signing and verification, timestamps, key sealing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hmac.h"
#include "keys.h"
#include "util.h"

static const char *seed_body = "{\"language\":\"python\",\"code\":\"print('hi')\"}";

/* The seed's example message signs to the value any HMAC-SHA256 implementation gives. */
static void test_seed_example(void **state)
{
	char out[65];
	size_t len;
	char *msg = hmac_message("1699564800", "POST", "/execute", 8, seed_body, strlen(seed_body), &len);
	(void)state;
	assert_string_equal(msg, "1699564800:POST:/execute:{\"language\":\"python\",\"code\":\"print('hi')\"}");
	/* computed independently: printf %s MSG | openssl dgst -sha256 -hmac unsb-sk-test */
	hmac_sha256_hex("unsb-sk-test", 12, msg, len, out);
	assert_string_equal(out, "bf003ea179366fabd43133937770275b78f983f7b04278d15a434d961a185c44");
	free(msg);
}

/* RFC 4231 test case 2 pins the primitive itself. */
static void test_rfc4231(void **state)
{
	char out[65];
	(void)state;
	hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
	assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* Verification accepts the right signature, in either case, with or without the query. */
static void test_verify(void **state)
{
	char sig[65];
	size_t len;
	char *msg = hmac_message("1700000000", "GET", "/jobs/x", 7, "", 0, &len);
	(void)state;
	hmac_sha256_hex("secret", 6, msg, len, sig);
	free(msg);
	assert_int_equal(hmac_verify("secret", "1700000000", "GET", "/jobs/x", "", 0, sig), HMAC_OK);
	assert_int_equal(hmac_verify("secret", "1700000000", "GET", "/jobs/x?a=1", "", 0, sig), HMAC_OK);
	for (char *p = sig; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(hmac_verify("secret", "1700000000", "GET", "/jobs/x", "", 0, sig), HMAC_OK);

	msg = hmac_message("1700000000", "GET", "/languages?details=1", 20, "", 0, &len);
	hmac_sha256_hex("secret", 6, msg, len, sig);
	free(msg);
	assert_int_equal(hmac_verify("secret", "1700000000", "GET", "/languages?details=1", "", 0, sig), HMAC_OK);
	assert_int_equal(hmac_verify("secret", "1700000000", "GET", "/languages", "", 0, sig), HMAC_BAD_SIGNATURE);
}

/* Any change to key, timestamp, method, path or body breaks the signature. */
static void test_verify_rejects(void **state)
{
	char sig[65];
	size_t len;
	char *msg = hmac_message("1700000000", "POST", "/execute", 8, seed_body, strlen(seed_body), &len);
	(void)state;
	hmac_sha256_hex("secret", 6, msg, len, sig);
	free(msg);
	assert_int_equal(hmac_verify("secret", "1700000000", "POST", "/execute", seed_body, strlen(seed_body), sig), HMAC_OK);
	assert_int_equal(hmac_verify("secreT", "1700000000", "POST", "/execute", seed_body, strlen(seed_body), sig), HMAC_BAD_SIGNATURE);
	assert_int_equal(hmac_verify("secret", "1700000001", "POST", "/execute", seed_body, strlen(seed_body), sig), HMAC_BAD_SIGNATURE);
	assert_int_equal(hmac_verify("secret", "1700000000", "PUT", "/execute", seed_body, strlen(seed_body), sig), HMAC_BAD_SIGNATURE);
	assert_int_equal(hmac_verify("secret", "1700000000", "POST", "/execute/async", seed_body, strlen(seed_body), sig), HMAC_BAD_SIGNATURE);
	assert_int_equal(hmac_verify("secret", "1700000000", "POST", "/execute", seed_body, strlen(seed_body) - 1, sig), HMAC_BAD_SIGNATURE);
	sig[63] = sig[63] == '0' ? '1' : '0';
	assert_int_equal(hmac_verify("secret", "1700000000", "POST", "/execute", seed_body, strlen(seed_body), sig), HMAC_BAD_SIGNATURE);
	assert_int_equal(hmac_verify("secret", "1700000000", "POST", "/execute", seed_body, strlen(seed_body), "abc"), HMAC_BAD_SIGNATURE);
	sig[10] = 'g';
	assert_int_equal(hmac_verify("secret", "1700000000", "POST", "/execute", seed_body, strlen(seed_body), sig), HMAC_BAD_SIGNATURE);
}

/* The timestamp must be decimal seconds within the window, both directions. */
static void test_timestamp(void **state)
{
	(void)state;
	assert_int_equal(hmac_check_timestamp("1700000000", 1700000000, 300), HMAC_OK);
	assert_int_equal(hmac_check_timestamp("1700000300", 1700000000, 300), HMAC_OK);
	assert_int_equal(hmac_check_timestamp("1699999700", 1700000000, 300), HMAC_OK);
	assert_int_equal(hmac_check_timestamp("1700000301", 1700000000, 300), HMAC_STALE_TIMESTAMP);
	assert_int_equal(hmac_check_timestamp("1699999699", 1700000000, 300), HMAC_STALE_TIMESTAMP);
	assert_int_equal(hmac_check_timestamp("", 1700000000, 300), HMAC_BAD_TIMESTAMP);
	assert_int_equal(hmac_check_timestamp("17e8", 1700000000, 300), HMAC_BAD_TIMESTAMP);
	assert_int_equal(hmac_check_timestamp("1700000000.5", 1700000000, 300), HMAC_BAD_TIMESTAMP);
	assert_int_equal(hmac_check_timestamp("99999999999999999999", 1700000000, 300), HMAC_BAD_TIMESTAMP);
}

/* Secrets sealed under the master key open only with that key and that public key. */
static void test_seal(void **state)
{
	unsigned char master[32], other[32], *blob;
	size_t len;
	char *pub, *secret, *opened, *cause = NULL;
	(void)state;
	memset(master, 7, sizeof master);
	memset(other, 8, sizeof other);
	keys_generate(&pub, &secret);
	assert_int_equal(strncmp(pub, "crl-pk-", 7), 0);
	assert_int_equal(strncmp(secret, "crl-sk-", 7), 0);
	assert_int_equal(keys_seal(master, pub, secret, &blob, &len, &cause), 0);
	assert_int_equal(len, 12 + strlen(secret) + 16);
	assert_null(memmem(blob, len, secret, strlen(secret)));
	opened = keys_open(master, pub, blob, len, &cause);
	assert_non_null(opened);
	assert_string_equal(opened, secret);
	free(opened);
	assert_null(keys_open(other, pub, blob, len, &cause));
	free(cause);
	cause = NULL;
	assert_null(keys_open(master, "crl-pk-other", blob, len, &cause));
	free(cause);
	cause = NULL;
	blob[14] ^= 1;
	assert_null(keys_open(master, pub, blob, len, &cause));
	free(cause);
	free(blob);
	free(pub);
	free(secret);
}

/* Base64 round trips and rejects garbage. */
static void test_b64(void **state)
{
	size_t len;
	unsigned char *d;
	char *e;
	(void)state;
	e = util_b64_encode((const unsigned char *)"hello\0x", 7);
	assert_string_equal(e, "aGVsbG8AeA==");
	d = util_b64_decode(e, strlen(e), &len);
	assert_int_equal(len, 7);
	assert_memory_equal(d, "hello\0x", 7);
	free(d);
	free(e);
	assert_null(util_b64_decode("a*bc", 4, &len));
	assert_null(util_b64_decode("ab=c", 4, &len));
	d = util_b64_decode("", 0, &len);
	assert_int_equal(len, 0);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_example),
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_verify_rejects),
		cmocka_unit_test(test_timestamp),
		cmocka_unit_test(test_seal),
		cmocka_unit_test(test_b64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
