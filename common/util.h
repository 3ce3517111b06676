/* util: allocation wrappers, logging, die(), small helpers shared by every program. */
#ifndef CORRAL_UTIL_H
#define CORRAL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Allocates or dies; the caller owns the memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets *cause (if cause is not NULL) to a malloc'd message; returns -1. */
int util_fail(char **cause, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets the program name used in log lines; the string must outlive the process. */
void log_init(const char *progname);
/* Writes one line "time prog[pid]: level: message" to stderr. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs the message as fatal and exits with status 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Milliseconds/microseconds from CLOCK_MONOTONIC. */
uint64_t util_mono_ms(void);
uint64_t util_mono_us(void);

/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer the caller frees. */
char *util_read_file(const char *path, size_t max, size_t *len, char **cause);

/* Hex-encodes n bytes into out (2n+1 bytes, NUL-terminated, lowercase). */
void util_hex(const unsigned char *in, size_t n, char *out);
/* Returns the value of one hex digit, or -1. */
int util_hexval(char c);
/* Decodes 2n hex characters into n bytes; returns 0 or -1 if not hex. */
int util_unhex(const char *in, unsigned char *out, size_t n);

/* Compares two byte strings in constant time (for equal lengths); returns 1 if equal. */
int util_ct_equal(const void *a, const void *b, size_t n);

/* Parses a decimal integer in [min,max] from the whole string; returns 0 or -1. */
int util_parse_ll(const char *s, long long min, long long max, long long *out);

#endif

#ifndef CORRAL_UTIL_B64
#define CORRAL_UTIL_B64
/* Base64-encodes n bytes; returns a malloc'd NUL-terminated string (caller frees). */
char *util_b64_encode(const unsigned char *in, size_t n);
/* Decodes standard base64 (padding optional, white space ignored) into a malloc'd buffer
 * (caller frees) of *outlen bytes; returns NULL if the text is not base64. */
unsigned char *util_b64_decode(const char *in, size_t inlen, size_t *outlen);
#endif
