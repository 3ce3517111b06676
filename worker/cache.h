/* cache: the compile cache. Content-addressed build outputs (key: SHA-256 of the
 * language, the toolchain's identity, the compile argv, the environment and every
 * source file with its name), kept in a root-owned directory outside every box as
 * one file per entry (<64 hex>.ent, written to a temporary name then renamed), bounded
 * in size with least-recently-used eviction (a hit refreshes the entry's mtime). */
#ifndef CORRAL_CACHE_H
#define CORRAL_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cache {
	int		dirfd;		/* -1 when the cache is off */
	uint64_t	max_bytes;
};

struct cache_file {
	char		*name;
	mode_t		 mode;
	char		*data;
	size_t		 len;
};

struct cache_entry {
	struct cache_file *v;
	size_t		   n;
};

struct cache_hash;

/* Opens (creating it 0700 if needed) the cache directory; it must be a directory owned
 * by the worker's user, not writable by group or others. dir "" turns the cache off.
 * Returns 0 or -1 with *cause. */
int cache_open(struct cache *c, const char *dir, uint64_t max_bytes, char **cause);
/* Closes the cache. */
void cache_close(struct cache *c);
/* Starts a key. */
struct cache_hash *cache_hash_new(void);
/* Adds one field (length-prefixed, so fields never run together). */
void cache_hash_add(struct cache_hash *h, const void *data, size_t len);
/* Adds a NUL-terminated string field. */
void cache_hash_str(struct cache_hash *h, const char *s);
/* Finishes the key into hex (65 bytes) and frees h. */
void cache_hash_end(struct cache_hash *h, char hex[65]);
/* Looks an entry up: 1 and *e filled (cache_entry_free) on a hit, 0 on a miss,
 * -1 with *cause when an entry exists but cannot be read. */
int cache_get(struct cache *c, const char *key, struct cache_entry *e, char **cause);
/* Stores an entry (replacing any), then evicts the least recently used entries while
 * the cache is over its bound. Returns 0 or -1 with *cause. */
int cache_put(struct cache *c, const char *key, const struct cache_entry *e, char **cause);
/* Frees the files of an entry. */
void cache_entry_free(struct cache_entry *e);

#endif
