/* keys: key generation and AES-256-GCM sealing of secrets. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Loads the 32-byte master key from its hex file. */
int keys_load_master(const char *path, unsigned char master[KEYS_MASTER_LEN], char **cause)
{
	struct stat st;
	size_t len;
	char *text;
	int rc;
	if (stat(path, &st) < 0)
		return util_fail(cause, "master key %s: %s", path, strerror(errno));
	if (st.st_mode & 077)
		return util_fail(cause, "master key %s: readable by group or others (chmod 600)", path);
	text = util_read_file(path, 1024, &len, cause);
	if (text == NULL)
		return -1;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	rc = (len == 2 * KEYS_MASTER_LEN) ? util_unhex(text, master, KEYS_MASTER_LEN) : -1;
	explicit_bzero(text, len);
	free(text);
	if (rc < 0)
		return util_fail(cause, "master key %s: expected 64 hex characters", path);
	return 0;
}

/* Writes a new random master key file with mode 0600. */
int keys_create_master(const char *path, char **cause)
{
	unsigned char key[KEYS_MASTER_LEN];
	char hex[2 * KEYS_MASTER_LEN + 2];
	int fd;
	ssize_t n;
	if (RAND_bytes(key, sizeof key) != 1)
		return util_fail(cause, "no random bytes for the master key");
	util_hex(key, sizeof key, hex);
	strcat(hex, "\n");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return util_fail(cause, "master key %s: %s", path, strerror(errno));
	n = write(fd, hex, strlen(hex));
	explicit_bzero(key, sizeof key);
	explicit_bzero(hex, sizeof hex);
	if (n < 0 || close(fd) < 0)
		return util_fail(cause, "master key %s: write failed", path);
	return 0;
}

/* Makes "<prefix><groups of hex separated by '-'>" from fresh random bytes; caller frees. */
static char *keys_random_token(const char *prefix, int groups, int per)
{
	unsigned char raw[64];
	char hex[129];
	char *out = xmalloc(strlen(prefix) + (size_t)groups * ((size_t)per + 1) + 1), *p;
	if (RAND_bytes(raw, groups * per / 2 + 1) != 1)
		die("no random bytes for a key");
	util_hex(raw, (size_t)(groups * per / 2 + 1), hex);
	p = out + strlen(strcpy(out, prefix));
	for (int g = 0; g < groups; g++) {
		if (g > 0)
			*p++ = '-';
		memcpy(p, hex + g * per, (size_t)per);
		p += per;
	}
	*p = '\0';
	return out;
}

/* Generates a key pair in the unsandbox style (pk/sk prefixes). */
void keys_generate(char **pub, char **secret)
{
	*pub = keys_random_token("crl-pk-", 4, 6);
	*secret = keys_random_token("crl-sk-", 5, 8);
}

/* Computes the SHA-256 lookup hash of a secret. */
void keys_hash(const char *secret, unsigned char out[KEYS_HASH_LEN])
{
	SHA256((const unsigned char *)secret, strlen(secret), out);
}

/* Seals a secret under the master key with AES-256-GCM. */
int keys_seal(const unsigned char master[KEYS_MASTER_LEN], const char *pub, const char *secret,
    unsigned char **blob, size_t *bloblen, char **cause)
{
	size_t n = strlen(secret);
	unsigned char *b = xmalloc(12 + n + 16);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok;
	ok = ctx != NULL && RAND_bytes(b, 12) == 1 &&
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master, b) == 1 &&
	    EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)pub, (int)strlen(pub)) == 1 &&
	    EVP_EncryptUpdate(ctx, b + 12, &len, (const unsigned char *)secret, (int)n) == 1 &&
	    EVP_EncryptFinal_ex(ctx, b + 12 + len, &len) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, b + 12 + n) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		free(b);
		return util_fail(cause, "AES-256-GCM encryption failed");
	}
	*blob = b;
	*bloblen = 12 + n + 16;
	return 0;
}

/* Opens a sealed secret; caller frees the result. */
char *keys_open(const unsigned char master[KEYS_MASTER_LEN], const char *pub,
    const unsigned char *blob, size_t bloblen, char **cause)
{
	EVP_CIPHER_CTX *ctx;
	char *s;
	size_t n;
	int len = 0, ok;
	if (bloblen < 12 + 16) {
		util_fail(cause, "sealed secret too short");
		return NULL;
	}
	n = bloblen - 28;
	s = xmalloc(n + 1);
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master, blob) == 1 &&
	    EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)pub, (int)strlen(pub)) == 1 &&
	    EVP_DecryptUpdate(ctx, (unsigned char *)s, &len, blob + 12, (int)n) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(blob + 12 + n)) == 1 &&
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)s + len, &len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		free(s);
		util_fail(cause, "sealed secret does not open under this master key");
		return NULL;
	}
	s[n] = '\0';
	return s;
}
