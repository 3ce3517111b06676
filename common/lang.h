/* lang: the language table (languages/languages.json), data not code. */
#ifndef CORRAL_LANG_H
#define CORRAL_LANG_H

#include <stdbool.h>
#include <stddef.h>

struct lang {
	char	 *id;		/* canonical name, e.g. "python" */
	char	**aliases;	/* NULL-terminated; e.g. "python3", "py" */
	char	**extensions;	/* NULL-terminated, without the dot */
	char	**shebangs;	/* interpreter names matched in a #! line */
	char	**packages;	/* Debian packages that provide the toolchain */
	char	 *source_file;	/* file the code is written to, e.g. "main.py" */
	char	**compile_argv;	/* NULL for interpreted languages */
	char	**run_argv;	/* argv; the job's args are appended */
	char	**version_argv;	/* prints the toolchain version */
	int	  memory_mb;	/* default memory limit where the runtime needs more; 0 = global */
	int	  processes;	/* default process limit where the runtime needs more; 0 = global */
	bool	  installed;	/* every argv[0] exists and is executable */
};

struct lang_table {
	struct lang	*v;
	size_t		 n;
};

/* Loads the table from path and checks which toolchains are installed;
 * returns 0 or -1 with *cause (caller frees). lang_table_free releases it. */
int lang_table_load(struct lang_table *t, const char *path, char **cause);
/* Frees everything the table holds. */
void lang_table_free(struct lang_table *t);
/* Finds a language by id or alias, ignoring case; NULL if unknown. Owned by the table. */
const struct lang *lang_find(const struct lang_table *t, const char *name);
/* Finds the language named by a "#!" first line of code; NULL if none. */
const struct lang *lang_from_shebang(const struct lang_table *t, const char *code, size_t len);

#endif
