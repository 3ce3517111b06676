/* db: libpq helpers. */
#include "db.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Opens a connection and names it for pg_stat_activity. */
PGconn *db_connect(const char *conninfo, const char *appname, char **cause)
{
	const char *keys[] = { "dbname", "application_name", "connect_timeout", "options", NULL };
	const char *vals[] = { conninfo, appname, "10", "-c client_min_messages=warning", NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL) {
		util_fail(cause, "database: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		util_fail(cause, "database: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* Prepares one statement by name. */
int db_prepare(PGconn *c, const char *name, const char *sql, char **cause)
{
	return db_check(PQprepare(c, name, sql, 0, NULL), PGRES_COMMAND_OK, name, cause);
}

/* Checks a result's status, clearing it on failure. */
int db_check(PGresult *r, ExecStatusType want, const char *what, char **cause)
{
	if (r != NULL && PQresultStatus(r) == want)
		return 0;
	if (r == NULL)
		util_fail(cause, "%s: no result from the database", what);
	else {
		const char *m = PQresultErrorMessage(r);
		size_t n = strlen(m);
		while (n > 0 && m[n - 1] == '\n')
			n--;
		util_fail(cause, "%s: %.*s", what, (int)n, m);
	}
	PQclear(r);
	return -1;
}

/* Runs a parameterless command. */
int db_exec(PGconn *c, const char *sql, char **cause)
{
	PGresult *r = PQexec(c, sql);
	if (db_check(r, PGRES_COMMAND_OK, sql, cause) < 0)
		return -1;
	PQclear(r);
	return 0;
}
