/* corral-admin: applies migrations and manages API keys. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "keys.h"
#include "util.h"

/* Prints usage and exits with status code. */
static void usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: corral-admin [-c CONFIG] COMMAND [ARGS]\n"
	    "  migrate [--sql-dir DIR]   apply the numbered migrations in sql/ not yet applied\n"
	    "  master-key-create         write a new master key file (0600) if there is none\n"
	    "  key-create [--name N] [--tier T] [--rate N] [--burst N] [--concurrency N] [--expires TIME]\n"
	    "                            create a key; prints public_key= and secret_key= (shown once)\n"
	    "  key-list                  list keys\n"
	    "  key-suspend PUBLIC | key-unsuspend PUBLIC | key-delete PUBLIC\n");
	exit(code);
}

/* Compares directory entries by name for qsort. */
static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns 1 if name looks like a migration file "NNN_words.sql". */
static int is_migration(const char *name)
{
	size_t n = strlen(name);
	return n > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' && name[1] <= '9' &&
	    name[2] >= '0' && name[2] <= '9' && name[3] == '_' && strcmp(name + n - 4, ".sql") == 0;
}

/* Applies every migration not yet recorded in schema_migrations, each in its own transaction. */
static int cmd_migrate(PGconn *db, const char *dir)
{
	char *cause = NULL, **names = NULL;
	size_t n = 0, applied = 0;
	struct dirent *de;
	PGresult *r;
	DIR *d = opendir(dir);
	if (d == NULL)
		die("%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (!is_migration(de->d_name))
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, name_cmp);
	if (db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
	    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())", &cause) < 0)
		die("migrate: %s", cause);
	r = PQexec(db, "SELECT pg_advisory_lock(726172)");	/* one migrator at a time */
	if (db_check(r, PGRES_TUPLES_OK, "advisory lock", &cause) < 0)
		die("migrate: %s", cause);
	PQclear(r);
	for (size_t i = 0; i < n; i++) {
		char version[4], *path, *sql;
		const char *params[2];
		memcpy(version, names[i], 3);
		version[3] = '\0';
		params[0] = version;
		params[1] = names[i];
		r = PQexecParams(db, "SELECT 1 FROM schema_migrations WHERE version = $1::integer",
		    1, NULL, params, NULL, NULL, 0);
		if (db_check(r, PGRES_TUPLES_OK, "schema_migrations", &cause) < 0)
			die("migrate: %s", cause);
		if (PQntuples(r) > 0) {
			PQclear(r);
			continue;
		}
		PQclear(r);
		path = xasprintf("%s/%s", dir, names[i]);
		sql = util_read_file(path, 16 << 20, NULL, &cause);
		if (sql == NULL)
			die("migrate: %s", cause);
		if (db_exec(db, "BEGIN", &cause) < 0)
			die("migrate: %s", cause);
		r = PQexec(db, sql);
		if (db_check(r, PGRES_COMMAND_OK, names[i], &cause) < 0)
			die("migrate: %s", cause);
		PQclear(r);
		r = PQexecParams(db, "INSERT INTO schema_migrations (version, name) VALUES ($1::integer, $2)",
		    2, NULL, params, NULL, NULL, 0);
		if (db_check(r, PGRES_COMMAND_OK, "schema_migrations", &cause) < 0 ||
		    db_exec(db, "COMMIT", &cause) < 0)
			die("migrate: %s", cause);
		PQclear(r);
		printf("applied %s\n", names[i]);
		applied++;
		free(sql);
		free(path);
	}
	printf("migrations: %zu applied now, %zu in all\n", applied, n);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}

/* Creates a key: seals the secret under the master key and prints both halves once. */
static int cmd_key_create(PGconn *db, const struct conf *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' }, { "tier", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' }, { "burst", required_argument, NULL, 'b' },
		{ "concurrency", required_argument, NULL, 'k' }, { "expires", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 }
	};
	const char *name = "", *tier = "standard", *rate = "60", *burst = "10", *conc = "5", *expires = NULL;
	unsigned char master[KEYS_MASTER_LEN], hash[KEYS_HASH_LEN], *sealed;
	char *pub, *secret, *cause = NULL, hex_hash[2 * KEYS_HASH_LEN + 1], *sealed_hex;
	size_t sealed_len;
	const char *params[8];
	PGresult *r;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 't': tier = optarg; break;
		case 'r': rate = optarg; break;
		case 'b': burst = optarg; break;
		case 'k': conc = optarg; break;
		case 'e': expires = optarg; break;
		default: usage(2);
		}
	}
	if (keys_load_master(c->master_key_file, master, &cause) < 0)
		die("%s", cause);
	keys_generate(&pub, &secret);
	keys_hash(secret, hash);
	util_hex(hash, sizeof hash, hex_hash);
	if (keys_seal(master, pub, secret, &sealed, &sealed_len, &cause) < 0)
		die("%s", cause);
	explicit_bzero(master, sizeof master);
	sealed_hex = xmalloc(2 * sealed_len + 1);
	util_hex(sealed, sealed_len, sealed_hex);
	params[0] = pub;
	params[1] = hex_hash;
	params[2] = sealed_hex;
	params[3] = name;
	params[4] = tier;
	params[5] = rate;
	params[6] = burst;
	params[7] = conc;
	r = PQexecParams(db, "INSERT INTO api_keys (public_key, secret_hash, secret_sealed, name, tier, "
	    "rate_per_minute, burst, concurrency_limit) VALUES ($1, decode($2, 'hex'), decode($3, 'hex'), "
	    "$4, $5, $6::integer, $7::integer, $8::integer) RETURNING id", 8, NULL, params, NULL, NULL, 0);
	if (db_check(r, PGRES_TUPLES_OK, "key-create", &cause) < 0)
		die("%s", cause);
	PQclear(r);
	if (expires != NULL) {
		const char *p2[2] = { expires, pub };
		r = PQexecParams(db, "UPDATE api_keys SET expires_at = $1::timestamptz WHERE public_key = $2",
		    2, NULL, p2, NULL, NULL, 0);
		if (db_check(r, PGRES_COMMAND_OK, "key-create --expires", &cause) < 0)
			die("%s", cause);
		PQclear(r);
	}
	printf("public_key=%s\nsecret_key=%s\n", pub, secret);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	free(pub);
	free(sealed);
	free(sealed_hex);
	return 0;
}

/* Lists every key with its settings and job count. */
static int cmd_key_list(PGconn *db)
{
	char *cause = NULL;
	PGresult *r = PQexec(db, "SELECT k.public_key, k.name, k.tier, k.rate_per_minute, k.burst, "
	    "k.concurrency_limit, coalesce(to_char(k.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), "
	    "CASE WHEN k.suspended THEN 'suspended' ELSE 'active' END, "
	    "(SELECT count(*) FROM jobs j WHERE j.key_id = k.id) FROM api_keys k ORDER BY k.id");
	if (db_check(r, PGRES_TUPLES_OK, "key-list", &cause) < 0)
		die("%s", cause);
	printf("%-32s %-12s %-10s %5s %5s %4s %-20s %-9s %s\n", "public_key", "name", "tier", "rate",
	    "burst", "conc", "expires", "state", "jobs");
	for (int i = 0; i < PQntuples(r); i++)
		printf("%-32s %-12s %-10s %5s %5s %4s %-20s %-9s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
		    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
		    PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
	PQclear(r);
	return 0;
}

/* Runs one statement on the key named by its public half; fails if no such key. */
static int cmd_key_change(PGconn *db, const char *sql, const char *pub, const char *what)
{
	char *cause = NULL;
	const char *params[1] = { pub };
	PGresult *r = PQexecParams(db, sql, 1, NULL, params, NULL, NULL, 0);
	if (db_check(r, PGRES_COMMAND_OK, what, &cause) < 0)
		die("%s", cause);
	if (strcmp(PQcmdTuples(r), "0") == 0) {
		PQclear(r);
		fprintf(stderr, "corral-admin: no key %s\n", pub);
		return 1;
	}
	PQclear(r);
	printf("%s %s\n", what, pub);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf_arg = NULL, *cmd;
	struct conf c;
	char *cause = NULL;
	PGconn *db;
	int rc;
	log_init("corral-admin");
	while (argc > 2 && strcmp(argv[1], "-c") == 0) {
		conf_arg = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc < 2)
		usage(2);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
		usage(0);
	conf_init(&c);
	if (access(conf_path(conf_arg), R_OK) == 0 || conf_arg != NULL) {
		if (conf_load(&c, conf_path(conf_arg), &cause) < 0)
			die("%s", cause);
	}
	cmd = argv[1];
	argc--;
	argv++;
	if (strcmp(cmd, "master-key-create") == 0) {
		if (access(c.master_key_file, F_OK) == 0) {
			printf("master key %s exists; left as it is\n", c.master_key_file);
			return 0;
		}
		if (keys_create_master(c.master_key_file, &cause) < 0)
			die("%s", cause);
		printf("master key written to %s\n", c.master_key_file);
		return 0;
	}
	db = db_connect(c.db, "corral-admin", &cause);
	if (db == NULL)
		die("%s", cause);
	if (strcmp(cmd, "migrate") == 0) {
		const char *dir = CORRAL_SRCDIR "/sql";
		if (argc == 3 && strcmp(argv[1], "--sql-dir") == 0)
			dir = argv[2];
		else if (argc != 1)
			usage(2);
		rc = cmd_migrate(db, dir);
	} else if (strcmp(cmd, "key-create") == 0)
		rc = cmd_key_create(db, &c, argc, argv);
	else if (strcmp(cmd, "key-list") == 0)
		rc = cmd_key_list(db);
	else if (strcmp(cmd, "key-suspend") == 0 && argc == 2)
		rc = cmd_key_change(db, "UPDATE api_keys SET suspended = true WHERE public_key = $1", argv[1], "suspended");
	else if (strcmp(cmd, "key-unsuspend") == 0 && argc == 2)
		rc = cmd_key_change(db, "UPDATE api_keys SET suspended = false WHERE public_key = $1", argv[1], "unsuspended");
	else if (strcmp(cmd, "key-delete") == 0 && argc == 2)
		rc = cmd_key_change(db, "DELETE FROM api_keys WHERE public_key = $1", argv[1], "deleted");
	else
		usage(2);
	PQfinish(db);
	conf_free(&c);
	return rc;
}
