/* link: framed messages between the worker's main process and its slots over a stream
 * socketpair: one type byte, a 4-byte length (network order), the payload. The main
 * process sends a claimed job ('J') or a cancellation ('C'); a slot says it is ready
 * for a job ('I'). */
#ifndef CORRAL_LINK_H
#define CORRAL_LINK_H

#include <stddef.h>

#define LINK_JOB	'J'	/* "<job id>\n<attempt>\n<worker id>\n<request JSON>" */
#define LINK_CANCEL	'C'	/* "<job id>": stop it */
#define LINK_IDLE	'I'	/* empty: the slot waits for a job */

/* Largest payload accepted (a job's request is at most max_body plus its normalization). */
#define LINK_MAX	(64u << 20)

/* Sends one message, retrying short writes; returns 0 or -1 with *cause. */
int link_send(int fd, char type, const char *payload, size_t len, char **cause);
/* Receives one message; *payload is malloc'd and NUL-terminated (caller frees). Returns 1,
 * 0 when the other side closed the socket, or -1 with *cause (EINTR included: "interrupted"). */
int link_recv(int fd, char *type, char **payload, size_t *len, char **cause);

#endif
