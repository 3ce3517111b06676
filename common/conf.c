/* conf: parsing of the key = value configuration file. */
#include "conf.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum conf_type { T_STR, T_INT, T_LL, T_BOOL };

struct conf_key {
	const char	*name;
	enum conf_type	 type;
	size_t		 off;
	long long	 min, max;
};

#define S(n)		{ #n, T_STR, offsetof(struct conf, n), 0, 0 }
#define I(n, lo, hi)	{ #n, T_INT, offsetof(struct conf, n), lo, hi }
#define L(n, lo, hi)	{ #n, T_LL, offsetof(struct conf, n), lo, hi }
#define B(n)		{ #n, T_BOOL, offsetof(struct conf, n), 0, 1 }

static const struct conf_key conf_keys[] = {
	S(db), S(master_key_file), S(languages_file),
	S(fcgi_socket), I(fcgi_processes, 1, 256), S(fcgi_user),
	I(sync_wait, 1, 3600), L(max_body, 1024, 1LL << 31),
	I(timestamp_window, 1, 86400), I(heartbeat_fresh, 1, 3600),
	I(worker_slots, 0, 1024), S(worker_name), I(lease, 2, 3600),
	I(heartbeat, 1, 600), I(poll, 1, 600), I(max_attempts, 1, 100),
	S(box_dir), I(uid_base, 1000, 2000000000), S(cgroup), B(weak_limits), B(noop),
	S(cache_dir), I(cache_max_mb, 1, 1 << 24),
	I(artifacts_max_files, 0, 1000), L(artifacts_max_file_bytes, 0, 1LL << 30),
	L(artifacts_max_bytes, 0, 1LL << 30),
	I(wall_default, 1, 86400), I(wall_max, 1, 86400), I(cpu_max, 1, 86400),
	I(memory_default, 16, 1 << 20), I(memory_max, 16, 1 << 20),
	I(processes_default, 1, 65536), I(processes_max, 1, 65536),
	I(disk_default, 1, 1 << 20), I(disk_max, 1, 1 << 20),
	L(output_default, 1024, 1LL << 34), L(output_max, 1024, 1LL << 34),
	L(code_max, 1024, 1LL << 31), I(vcpu_max, 1, 256),
};

/* Fills c with the defaults documented in corral.conf.sample. */
void conf_init(struct conf *c)
{
	memset(c, 0, sizeof *c);
	c->db = xstrdup("dbname=corral");
	c->master_key_file = xstrdup("/etc/corral/master.key");
	c->languages_file = xstrdup("/usr/local/share/corral/languages.json");
	c->fcgi_socket = xstrdup("/run/corral/fcgi.sock");
	c->fcgi_processes = 4;
	c->fcgi_user = xstrdup("corral");
	c->sync_wait = 90;
	c->max_body = 16LL << 20;
	c->timestamp_window = 300;
	c->heartbeat_fresh = 15;
	c->worker_slots = 0;
	c->worker_name = xstrdup("");
	c->lease = 30;
	c->heartbeat = 2;
	c->poll = 1;
	c->max_attempts = 3;
	c->box_dir = xstrdup("/run/corral/boxes");
	c->uid_base = 60000;
	c->cgroup = xstrdup("auto");
	c->weak_limits = false;
	c->noop = false;
	c->cache_dir = xstrdup("/var/cache/corral");
	c->cache_max_mb = 1024;
	c->artifacts_max_files = 10;
	c->artifacts_max_file_bytes = 5LL << 20;
	c->artifacts_max_bytes = 10LL << 20;
	c->wall_default = 60;
	c->wall_max = 900;
	c->cpu_max = 900;
	c->memory_default = 512;
	c->memory_max = 16384;
	c->processes_default = 128;
	c->processes_max = 1024;
	c->disk_default = 100;
	c->disk_max = 1024;
	c->output_default = 1LL << 20;
	c->output_max = 16LL << 20;
	c->code_max = 1LL << 20;
	c->vcpu_max = 8;
}

/* Frees every string field. */
void conf_free(struct conf *c)
{
	for (size_t i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++) {
		if (conf_keys[i].type == T_STR) {
			char **p = (char **)((char *)c + conf_keys[i].off);
			free(*p);
			*p = NULL;
		}
	}
}

/* Sets one key from text; returns 0 or -1 with *cause. */
int conf_set(struct conf *c, const char *key, const char *value, char **cause)
{
	for (size_t i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++) {
		const struct conf_key *k = &conf_keys[i];
		void *p = (char *)c + k->off;
		long long v;
		if (strcmp(k->name, key) != 0)
			continue;
		switch (k->type) {
		case T_STR:
			free(*(char **)p);
			*(char **)p = xstrdup(value);
			return 0;
		case T_BOOL:
			if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") || !strcmp(value, "1"))
				*(bool *)p = true;
			else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") || !strcmp(value, "0"))
				*(bool *)p = false;
			else
				return util_fail(cause, "%s: expected yes or no, got '%s'", key, value);
			return 0;
		case T_INT:
		case T_LL:
			if (util_parse_ll(value, k->min, k->max, &v) < 0)
				return util_fail(cause, "%s: expected a whole number from %lld to %lld, got '%s'",
				    key, k->min, k->max, value);
			if (k->type == T_INT)
				*(int *)p = (int)v;
			else
				*(long long *)p = v;
			return 0;
		}
	}
	return util_fail(cause, "unknown setting '%s'", key);
}

/* Trims white space at both ends of s in place; returns the start. */
static char *trim(char *s)
{
	char *e;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Reads a configuration file over the current values. */
int conf_load(struct conf *c, const char *path, char **cause)
{
	size_t len;
	char *text = util_read_file(path, 1 << 20, &len, cause), *line, *next;
	int lineno = 0, rc = 0;
	if (text == NULL)
		return -1;
	for (line = text; line != NULL; line = next) {
		char *eq, *key, *val, *why = NULL;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (eq == NULL) {
			rc = util_fail(cause, "%s: line %d: expected key = value", path, lineno);
			break;
		}
		*eq = '\0';
		for (char *h = eq + 1; *h != '\0'; h++) {
			if (*h == '#' && (h == eq + 1 || isspace((unsigned char)h[-1]))) {
				*h = '\0';	/* an inline comment starts at a '#' after white space */
				break;
			}
		}
		key = trim(line);
		val = trim(eq + 1);
		if (conf_set(c, key, val, &why) < 0) {
			rc = util_fail(cause, "%s: line %d: %s", path, lineno, why);
			free(why);
			break;
		}
	}
	free(text);
	if (rc == 0 && c->wall_default > c->wall_max)
		rc = util_fail(cause, "%s: wall_default exceeds wall_max", path);
	return rc;
}

/* Chooses the configuration file path. */
const char *conf_path(const char *arg)
{
	const char *env = getenv("CORRAL_CONF");
	if (arg != NULL)
		return arg;
	if (env != NULL && *env != '\0')
		return env;
	return "/etc/corral/corral.conf";
}
