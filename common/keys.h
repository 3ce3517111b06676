/* keys: API key generation and secrets at rest (AES-256-GCM under the master key,
 * found by a SHA-256 lookup hash). */
#ifndef CORRAL_KEYS_H
#define CORRAL_KEYS_H

#include <stddef.h>

#define KEYS_MASTER_LEN	32
#define KEYS_HASH_LEN	32

/* Reads the master key file (64 hex characters, optional newline); refuses a file that
 * others can read. Returns 0 or -1 with *cause (caller frees). */
int keys_load_master(const char *path, unsigned char master[KEYS_MASTER_LEN], char **cause);
/* Makes a new master key file (mode 0600, O_EXCL); returns 0 or -1 with *cause. */
int keys_create_master(const char *path, char **cause);
/* Generates a new key pair; *pub and *secret are malloc'd (caller frees). */
void keys_generate(char **pub, char **secret);
/* SHA-256 of the secret, the lookup hash stored beside the sealed secret. */
void keys_hash(const char *secret, unsigned char out[KEYS_HASH_LEN]);
/* Seals secret with AES-256-GCM (the public key as associated data); *blob is
 * nonce(12) || ciphertext || tag(16), malloc'd. Returns 0 or -1 with *cause. */
int keys_seal(const unsigned char master[KEYS_MASTER_LEN], const char *pub, const char *secret,
    unsigned char **blob, size_t *bloblen, char **cause);
/* Opens a sealed secret; returns the malloc'd secret or NULL with *cause. */
char *keys_open(const unsigned char master[KEYS_MASTER_LEN], const char *pub,
    const unsigned char *blob, size_t bloblen, char **cause);

#endif
