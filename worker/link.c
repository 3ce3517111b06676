/* link: framed messages between the worker's main process and its slots. */
#include "link.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Writes all n bytes (EINTR retried); returns 0 or -1 with errno. */
static int link_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes; returns 1, 0 at end of file before the first byte, -1 with errno. */
static int link_read_all(int fd, char *p, size_t n, int retry_eintr)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR && (retry_eintr || got > 0))
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			if (got == 0)
				return 0;
			errno = EPIPE;
			return -1;
		}
		got += (size_t)r;
	}
	return 1;
}

/* Sends one message, retrying short writes; returns 0 or -1 with *cause. */
int link_send(int fd, char type, const char *payload, size_t len, char **cause)
{
	char head[5];
	uint32_t n = (uint32_t)len;
	if (len > LINK_MAX)
		return util_fail(cause, "link: message of %zu bytes is too large", len);
	head[0] = type;
	head[1] = (char)(n >> 24);
	head[2] = (char)(n >> 16);
	head[3] = (char)(n >> 8);
	head[4] = (char)n;
	if (link_write_all(fd, head, sizeof head) < 0 || link_write_all(fd, payload, len) < 0)
		return util_fail(cause, "link: write: %s", strerror(errno));
	return 0;
}

/* Receives one message; see link.h. */
int link_recv(int fd, char *type, char **payload, size_t *len, char **cause)
{
	unsigned char head[5];
	uint32_t n;
	char *p;
	int rc = link_read_all(fd, (char *)head, sizeof head, 0);
	*payload = NULL;
	*len = 0;
	if (rc == 0)
		return 0;
	if (rc < 0)
		return util_fail(cause, "link: read: %s", errno == EINTR ? "interrupted" : strerror(errno));
	n = (uint32_t)head[1] << 24 | (uint32_t)head[2] << 16 | (uint32_t)head[3] << 8 | head[4];
	if (n > LINK_MAX)
		return util_fail(cause, "link: message of %u bytes is too large", n);
	p = xmalloc((size_t)n + 1);
	if (n > 0 && link_read_all(fd, p, n, 1) <= 0) {
		free(p);
		return util_fail(cause, "link: read: %s", strerror(errno));
	}
	p[n] = '\0';
	*type = (char)head[0];
	*payload = p;
	*len = n;
	return 1;
}
