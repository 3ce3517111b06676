/* cache: a content-addressed, size-bounded store of compile outputs. */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CACHE_MAGIC	"corral-cache-1\n"
#define CACHE_MAX_ENTRY	(256u << 20)

struct cache_hash {
	EVP_MD_CTX	*ctx;
};

/* Opens or creates the cache directory and checks who owns it. */
int cache_open(struct cache *c, const char *dir, uint64_t max_bytes, char **cause)
{
	struct stat sb;
	c->dirfd = -1;
	c->max_bytes = max_bytes;
	if (dir == NULL || *dir == '\0')
		return 0;
	if (dir[0] != '/')
		return util_fail(cause, "cache_dir %s: must be an absolute path", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return util_fail(cause, "cache_dir %s: %s", dir, strerror(errno));
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->dirfd < 0)
		return util_fail(cause, "cache_dir %s: %s", dir, strerror(errno));
	if (fstat(c->dirfd, &sb) < 0 || sb.st_uid != geteuid() || (sb.st_mode & 022) != 0) {
		close(c->dirfd);
		c->dirfd = -1;
		return util_fail(cause, "cache_dir %s: must be owned by uid %u and not writable by group or others",
		    dir, (unsigned)geteuid());
	}
	return 0;
}

/* Closes the directory. */
void cache_close(struct cache *c)
{
	if (c->dirfd >= 0)
		close(c->dirfd);
	c->dirfd = -1;
}

/* Starts a SHA-256. */
struct cache_hash *cache_hash_new(void)
{
	struct cache_hash *h = xcalloc(1, sizeof *h);
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		die("cache: SHA-256 unavailable");
	return h;
}

/* Adds a length-prefixed field. */
void cache_hash_add(struct cache_hash *h, const void *data, size_t len)
{
	uint64_t n = len;
	EVP_DigestUpdate(h->ctx, &n, sizeof n);
	if (len > 0)
		EVP_DigestUpdate(h->ctx, data, len);
}

/* Adds a string field. */
void cache_hash_str(struct cache_hash *h, const char *s)
{
	cache_hash_add(h, s, strlen(s));
}

/* Finishes the digest as lowercase hex. */
void cache_hash_end(struct cache_hash *h, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_DigestFinal_ex(h->ctx, md, &n);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[64] = '\0';
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

/* Returns true for a 64-character lowercase hex key. */
static int key_ok(const char *key)
{
	if (strlen(key) != 64)
		return 0;
	for (const char *p = key; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* Frees an entry's files. */
void cache_entry_free(struct cache_entry *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].name);
		free(e->v[i].data);
	}
	free(e->v);
	e->v = NULL;
	e->n = 0;
}

/* Takes n bytes from the serialized entry at *p; returns NULL when too short. */
static const char *take(const char **p, const char *end, size_t n)
{
	const char *r = *p;
	if ((size_t)(end - *p) < n)
		return NULL;
	*p += n;
	return r;
}

/* Parses a serialized entry; returns 0 or -1. */
static int entry_parse(const char *buf, size_t len, struct cache_entry *e)
{
	const char *p = buf, *end = buf + len, *q;
	uint32_t count;
	if (take(&p, end, sizeof CACHE_MAGIC - 1) == NULL || memcmp(buf, CACHE_MAGIC, sizeof CACHE_MAGIC - 1) != 0 ||
	    (q = take(&p, end, 4)) == NULL)
		return -1;
	memcpy(&count, q, 4);
	if (count > 1024)
		return -1;
	e->v = xcalloc(count + 1, sizeof *e->v);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t nl, mode;
		uint64_t dl;
		const char *name, *data;
		if ((q = take(&p, end, 16)) == NULL)
			return -1;
		memcpy(&nl, q, 4);
		memcpy(&mode, q + 4, 4);
		memcpy(&dl, q + 8, 8);
		if (nl == 0 || nl > 255 || (name = take(&p, end, nl)) == NULL || (data = take(&p, end, dl)) == NULL)
			return -1;
		e->v[i].name = xmalloc(nl + 1);
		memcpy(e->v[i].name, name, nl);
		e->v[i].name[nl] = '\0';
		e->v[i].mode = mode & 0777;
		e->v[i].data = xmalloc(dl + 1);
		memcpy(e->v[i].data, data, dl);
		e->v[i].len = dl;
		e->n = i + 1;
		if (strchr(e->v[i].name, '/') != NULL || strlen(e->v[i].name) != nl)
			return -1;
	}
	return p == end ? 0 : -1;
}

/* Looks up an entry and refreshes its mtime (the LRU clock). */
int cache_get(struct cache *c, const char *key, struct cache_entry *e, char **cause)
{
	char name[80], *buf;
	struct stat sb;
	size_t got = 0;
	int fd;
	e->v = NULL;
	e->n = 0;
	if (c->dirfd < 0 || !key_ok(key))
		return 0;
	snprintf(name, sizeof name, "%s.ent", key);
	fd = openat(c->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : util_fail(cause, "cache %s: %s", name, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > CACHE_MAX_ENTRY) {
		close(fd);
		return util_fail(cause, "cache %s: not a regular file of a sane size", name);
	}
	buf = xmalloc((size_t)sb.st_size + 1);
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	futimens(fd, NULL);
	close(fd);
	if (got != (size_t)sb.st_size || entry_parse(buf, got, e) < 0) {
		free(buf);
		cache_entry_free(e);
		unlinkat(c->dirfd, name, 0);
		return util_fail(cause, "cache %s: corrupt entry removed", name);
	}
	free(buf);
	return 1;
}

/* Writes all of buf to fd; returns 0 or -1. */
static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct cache_item {
	char	 name[80];
	uint64_t size;
	struct timespec mtime;
};

/* Orders items oldest first. */
static int item_cmp(const void *a, const void *b)
{
	const struct cache_item *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return 0;
}

/* Removes the least recently used entries until the cache holds at most its bound;
 * also removes temporary files older than an hour (left by a crash). */
static void cache_evict(struct cache *c)
{
	int fd = dup(c->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct cache_item *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	struct dirent *de;
	time_t now = time(NULL);
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l >= sizeof v->name)
			continue;
		if (fstatat(c->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
			continue;
		if (strncmp(de->d_name, "tmp.", 4) == 0) {
			if (now - sb.st_mtime > 3600)
				unlinkat(c->dirfd, de->d_name, 0);
			continue;
		}
		if (l != 68 || strcmp(de->d_name + 64, ".ent") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof *v);
		}
		memcpy(v[n].name, de->d_name, l + 1);
		v[n].size = (uint64_t)sb.st_size;
		v[n].mtime = sb.st_mtim;
		total += v[n].size;
		n++;
	}
	closedir(d);
	if (total > c->max_bytes) {
		qsort(v, n, sizeof *v, item_cmp);
		for (size_t i = 0; i < n && total > c->max_bytes; i++) {
			if (unlinkat(c->dirfd, v[i].name, 0) == 0 || errno == ENOENT)
				total -= v[i].size;
		}
	}
	free(v);
}

/* Serializes and stores an entry atomically, then evicts. */
int cache_put(struct cache *c, const char *key, const struct cache_entry *e, char **cause)
{
	char tmp[96], name[80];
	uint32_t count = (uint32_t)e->n;
	uint64_t size = sizeof CACHE_MAGIC - 1 + 4;
	int fd, bad;
	if (c->dirfd < 0 || !key_ok(key))
		return 0;
	for (size_t i = 0; i < e->n; i++)
		size += 16 + strlen(e->v[i].name) + e->v[i].len;
	if (size > CACHE_MAX_ENTRY || size > c->max_bytes)
		return util_fail(cause, "cache: entry of %llu bytes is over the bound", (unsigned long long)size);
	snprintf(tmp, sizeof tmp, "tmp.%ld.%s", (long)getpid(), key);
	snprintf(name, sizeof name, "%s.ent", key);
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return util_fail(cause, "cache %s: %s", tmp, strerror(errno));
	bad = write_all(fd, CACHE_MAGIC, sizeof CACHE_MAGIC - 1) < 0 || write_all(fd, &count, 4) < 0;
	for (size_t i = 0; i < e->n && !bad; i++) {
		uint32_t nl = (uint32_t)strlen(e->v[i].name), mode = (uint32_t)e->v[i].mode;
		uint64_t dl = e->v[i].len;
		bad = write_all(fd, &nl, 4) < 0 || write_all(fd, &mode, 4) < 0 || write_all(fd, &dl, 8) < 0 ||
		    write_all(fd, e->v[i].name, nl) < 0 || write_all(fd, e->v[i].data, e->v[i].len) < 0;
	}
	if (close(fd) < 0)
		bad = 1;
	if (bad || renameat(c->dirfd, tmp, c->dirfd, name) < 0) {
		int err = errno;
		unlinkat(c->dirfd, tmp, 0);
		return util_fail(cause, "cache %s: %s", name, strerror(err));
	}
	cache_evict(c);
	return 0;
}
