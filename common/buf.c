/* buf: growable byte buffer with a sticky failure flag. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Initialises an empty buffer bounded by max bytes. */
void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->failed = false;
}

/* Frees the buffer's memory. */
void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b, b->max);
}

/* Makes room for n more bytes plus a NUL; returns 0 or -1 (and sets failed). */
static int buf_grow(struct buf *b, size_t n)
{
	size_t need;
	if (b->failed)
		return -1;
	need = b->len + n + 1;
	if (need < b->len || (b->max != 0 && b->len + n > b->max)) {
		b->failed = true;
		return -1;
	}
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < need)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return 0;
}

/* Appends n bytes. */
void buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_grow(b, n) < 0)
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Appends a string. */
void buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Appends formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	buf_add(b, s, (size_t)n);
	free(s);
}

/* Hands the data to the caller (who frees it) and empties the buffer. */
char *buf_take(struct buf *b, size_t *len)
{
	char *d = b->data;
	if (d == NULL)
		d = xstrdup("");
	if (len != NULL)
		*len = b->len;
	buf_init(b, b->max);
	return d;
}
