/* db: libpq helpers shared by the app, the worker and the admin tool. */
#ifndef CORRAL_DB_H
#define CORRAL_DB_H

#include <libpq-fe.h>

/* Connects with conninfo and sets application_name; returns the connection
 * (caller PQfinish'es it) or NULL with *cause (caller frees). */
PGconn *db_connect(const char *conninfo, const char *appname, char **cause);
/* Prepares one named statement; returns 0 or -1 with *cause. */
int db_prepare(PGconn *c, const char *name, const char *sql, char **cause);
/* Checks r has status want; on failure clears r and returns -1 with *cause
 * naming what (the statement or step). On success r is left to the caller. */
int db_check(PGresult *r, ExecStatusType want, const char *what, char **cause);
/* Runs a statement with no parameters and no rows wanted; returns 0 or -1 with *cause. */
int db_exec(PGconn *c, const char *sql, char **cause);

#endif
