/* conf: the one configuration file (key = value lines) with documented defaults. */
#ifndef CORRAL_CONF_H
#define CORRAL_CONF_H

#include <stdbool.h>
#include <stdint.h>

struct conf {
	/* shared */
	char	*db;			/* libpq conninfo */
	char	*master_key_file;	/* 64 hex chars, root-only */
	char	*languages_file;	/* the language table (JSON) */

	/* FastCGI app */
	char	*fcgi_socket;		/* unix socket nginx connects to */
	int	 fcgi_processes;	/* prefork count */
	char	*fcgi_user;		/* user to become when started as root */
	int	 sync_wait;		/* seconds a synchronous /execute waits */
	long long max_body;		/* request body limit in bytes */
	int	 timestamp_window;	/* seconds of allowed clock skew for X-Timestamp */
	int	 heartbeat_fresh;	/* seconds after which a worker heartbeat is stale */

	/* worker */
	int	 worker_slots;		/* 0 = number of cores */
	char	*worker_name;		/* empty = host name */
	int	 lease;			/* seconds a claim is valid without renewal */
	int	 heartbeat;		/* seconds between heartbeats / lease renewals */
	int	 poll;			/* seconds between queue polls when no NOTIFY came */
	int	 max_attempts;		/* claims of one job before it is failed */
	char	*box_dir;		/* where sandbox work dirs are mounted */
	int	 uid_base;		/* slot N runs as uid_base + N */
	char	*cgroup;		/* auto, v1, v2, none */
	bool	 weak_limits;		/* run without usable cgroups */
	char	*cache_dir;		/* compile cache, root-owned, outside every box; "" = off */
	int	 cache_max_mb;		/* size bound of the compile cache (LRU eviction) */
	int	 artifacts_max_files;	/* files returned per job */
	long long artifacts_max_file_bytes;	/* bytes of one returned file */
	long long artifacts_max_bytes;	/* bytes of all returned files of a job */
	bool	 noop;			/* benchmark only: complete jobs without running them */

	/* job limits: default and maximum */
	int	 wall_default, wall_max;		/* seconds */
	int	 cpu_max;				/* seconds */
	int	 memory_default, memory_max;		/* MB */
	int	 processes_default, processes_max;
	int	 disk_default, disk_max;		/* MB */
	long long output_default, output_max;	/* bytes per stream */
	long long code_max;			/* bytes of source */
	int	 vcpu_max;
};

/* Fills c with the built-in defaults (every string malloc'd; conf_free releases them). */
void conf_init(struct conf *c);
/* Reads path over the current values; returns 0, or -1 with *cause (caller frees). */
int conf_load(struct conf *c, const char *path, char **cause);
/* Sets one key from its text value; returns 0, or -1 with *cause. */
int conf_set(struct conf *c, const char *key, const char *value, char **cause);
/* Frees the strings held by c. */
void conf_free(struct conf *c);
/* Picks the config path: the -c argument, else $CORRAL_CONF, else /etc/corral/corral.conf. */
const char *conf_path(const char *arg);

#endif
