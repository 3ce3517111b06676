/* buf: a growable byte buffer with a sticky failure flag, checked once when it is used. */
#ifndef CORRAL_BUF_H
#define CORRAL_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char	*data;		/* always NUL-terminated when not failed */
	size_t	 len;
	size_t	 cap;
	size_t	 max;		/* 0 = unbounded; growing past max sets failed */
	bool	 failed;
};

/* Initialises an empty buffer bounded by max bytes (0 = no bound). */
void buf_init(struct buf *b, size_t max);
/* Frees the buffer's memory and resets it. */
void buf_free(struct buf *b);
/* Appends n bytes; on overflow sets failed and drops the bytes. */
void buf_add(struct buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
void buf_puts(struct buf *b, const char *s);
/* Appends formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data out (caller frees); the buffer is left empty. */
char *buf_take(struct buf *b, size_t *len);

#endif
