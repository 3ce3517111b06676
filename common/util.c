/* util: allocation wrappers, logging, die(), small helpers. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "corral";

/* Allocates n bytes or dies; caller frees. */
void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* Allocates a zeroed array or dies; caller frees. */
void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		die("out of memory");
	return p;
}

/* Resizes p or dies; caller frees the result. */
void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		die("out of memory (%zu bytes)", n);
	return q;
}

/* Duplicates s or dies; caller frees. */
char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL)
		die("out of memory");
	return d;
}

/* Duplicates at most n bytes of s or dies; caller frees. */
char *xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (d == NULL)
		die("out of memory");
	return d;
}

/* Formats into a new string or dies; caller frees. */
char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}

/* Stores a formatted, malloc'd message in *cause; returns -1. */
int util_fail(char **cause, const char *fmt, ...)
{
	va_list ap;
	char *s;
	if (cause == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*cause = s;
	return -1;
}

/* Remembers the program name for log lines. */
void log_init(const char *progname)
{
	log_prog = progname;
}

/* Writes one timestamped log line to stderr. */
static void log_v(const char *level, const char *fmt, va_list ap)
{
	char msg[2048], ts[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(msg, sizeof msg, fmt, ap);
	fprintf(stderr, "%s.%03ldZ %s[%ld]: %s: %s\n", ts, now.tv_nsec / 1000000,
	    log_prog, (long)getpid(), level, msg);
}

/* Logs at info level. */
void log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v("info", fmt, ap);
	va_end(ap);
}

/* Logs at warning level. */
void log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v("warning", fmt, ap);
	va_end(ap);
}

/* Logs at error level. */
void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v("error", fmt, ap);
	va_end(ap);
}

/* Logs a fatal message and exits. */
void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v("fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

/* Returns CLOCK_MONOTONIC in milliseconds. */
uint64_t util_mono_ms(void)
{
	return util_mono_us() / 1000;
}

/* Returns CLOCK_MONOTONIC in microseconds. */
uint64_t util_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Reads a whole file into a malloc'd NUL-terminated buffer; caller frees. */
char *util_read_file(const char *path, size_t max, size_t *len, char **cause)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t have = 0;
	if (fd < 0) {
		util_fail(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		util_fail(cause, "%s: not a regular file or larger than %zu bytes", path, max);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	if (len != NULL)
		*len = have;
	return buf;
}

/* Hex-encodes n bytes into out (lowercase, NUL-terminated). */
void util_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Returns the value of one hex digit, or -1. */
int util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes exactly 2n hex characters into n bytes; returns 0 or -1. */
int util_unhex(const char *in, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = util_hexval(in[2 * i]), lo;
		if (hi < 0)
			return -1;
		lo = util_hexval(in[2 * i + 1]);
		if (lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return in[2 * n] == '\0' ? 0 : -1;
}

/* Constant-time comparison of n bytes; returns 1 if equal. */
int util_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* Parses a whole-string decimal integer within [min,max]; returns 0 or -1. */
int util_parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;
	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static const char b64_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64-encodes n bytes; caller frees. */
char *util_b64_encode(const unsigned char *in, size_t n)
{
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *p = out;
	size_t i;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*p++ = b64_digits[v >> 18];
		*p++ = b64_digits[(v >> 12) & 63];
		*p++ = b64_digits[(v >> 6) & 63];
		*p++ = b64_digits[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		*p++ = b64_digits[v >> 18];
		*p++ = b64_digits[(v >> 12) & 63];
		*p++ = i + 1 < n ? b64_digits[(v >> 6) & 63] : '=';
		*p++ = '=';
	}
	*p = '\0';
	return out;
}

/* Returns the 6-bit value of a base64 digit (url-safe digits accepted), or -1. */
static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decodes base64 text; caller frees the result. */
unsigned char *util_b64_decode(const char *in, size_t inlen, size_t *outlen)
{
	unsigned char *out = xmalloc(inlen / 4 * 3 + 3);
	size_t o = 0, pad = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < inlen; i++) {
		char c = in[i];
		int v;
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		v = b64_val(c);
		if (v < 0 || pad > 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6) {
		free(out);
		return NULL;
	}
	*outlen = o;
	return out;
}
