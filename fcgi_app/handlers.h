/* handlers: the unsandbox endpoints (contract section 3) on top of one PostgreSQL
 * connection per process: routing, authentication, replay protection, the queue. */
#ifndef CORRAL_HANDLERS_H
#define CORRAL_HANDLERS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "conf.h"
#include "http.h"
#include "keys.h"
#include "lang.h"

/* One FastCGI process's state. conf, langs and master are borrowed (they outlive it). */
struct app {
	const struct conf	*conf;
	const struct lang_table	*langs;
	const unsigned char	*master;	/* KEYS_MASTER_LEN bytes */
	PGconn			*db;		/* NULL until the first successful connect */
	bool			 ready;		/* statements prepared */
	const char		*waiter;	/* jobs.waiter of this process: "<channel> <tag>" */
	int			 wake_fd;	/* read end of the supervisor's pipe (non-blocking), or -1 */
	char			 wake_buf[256];	/* what was read from it and not yet used */
	size_t			 wake_len;
};

/* Initialises the app and tries to connect (prepare the statements). A database that is
 * down or not migrated yet is only logged: every request retries and /health reports it.
 * waiter names this process in jobs.waiter (sql/006); wake_fd is where the supervisor
 * writes "<job id>\n" when such a job finished, and "R\n" when NOTIFYs may have been lost
 * (-1: none; the sync wait then looks at the job itself). Returns 0 (-1 with *cause is
 * reserved for future fatal setup errors). */
int app_init(struct app *a, const struct conf *c, const struct lang_table *t,
    const unsigned char *master, const char *waiter, int wake_fd, char **cause);
/* Closes the connection and resets the app. */
void app_free(struct app *a);
/* Answers one request whose body has been read; resp receives the whole answer. */
void app_handle(struct app *a, struct http_req *req, struct http_resp *resp);

#endif
