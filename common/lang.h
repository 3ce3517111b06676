/* lang: the language table (languages/languages.json), data not code. */
#ifndef CORRAL_LANG_H
#define CORRAL_LANG_H

#include <stdbool.h>
#include <stddef.h>

/* How the main source file is named. */
enum lang_source_rule {
	LANG_SOURCE_FIXED,		/* always source_file */
	LANG_SOURCE_JAVA_CLASS		/* <name of the public class>.java, else source_file */
};

/* A file the worker writes into every box of the language (e.g. go.mod). */
struct lang_file {
	char	*name;
	char	*data;
};

struct lang {
	char	 *id;		/* canonical name, e.g. "python" */
	char	**aliases;	/* NULL-terminated; e.g. "python3", "py" */
	char	**extensions;	/* NULL-terminated, without the dot */
	char	**shebangs;	/* interpreter names matched in a #! line */
	char	**packages;	/* Debian packages that provide the toolchain */
	char	 *source_file;	/* file the code is written to, e.g. "main.py" */
	enum lang_source_rule source_rule;
	char	***compile_steps; /* NULL-terminated list of argv; NULL for interpreted languages */
	size_t	  ncompile;
	char	**compile_argv;	/* compile_steps[0] or NULL */
	char	**outputs;	/* files the compile leaves that the cache keeps ("*.ts=*.js" maps inputs) */
	char	**run_argv;	/* argv; the job's args are appended */
	char	**version_argv;	/* prints the toolchain version */
	char	**env;		/* NAME=VALUE added to compile and run (before the job's own) */
	char	**etc;		/* names under /etc the sandbox must expose for this toolchain */
	char	**binds;	/* host paths under /var/lib or /usr/lib the sandbox must expose
				   read-only at the same place (e.g. /var/lib/ghc) */
	char	**requires;	/* absolute host files the toolchain needs besides its argv[0]s
				   (a compiler's back end, e.g. gcc's cc1obj) */
	struct lang_file *files; /* written into the box unless the job brings a file of that name */
	size_t	  nfiles;
	int	  memory_mb;	/* default memory limit where the runtime needs more; 0 = global */
	int	  processes;	/* default process limit where the runtime needs more; 0 = global */
	bool	  installed;	/* every argv[0] exists and is executable, every requires exists */
	char	 *version;	/* measured by the worker at start (NULL until then) */
};

struct lang_table {
	struct lang	*v;
	size_t		 n;
};

/* Loads the table from path, validates it and checks which toolchains are installed;
 * returns 0 or -1 with *cause (caller frees). lang_table_free releases it. */
int lang_table_load(struct lang_table *t, const char *path, char **cause);
/* Parses a table from JSON text (name is used in messages); as lang_table_load. */
int lang_table_parse(struct lang_table *t, const char *text, const char *name, char **cause);
/* Frees everything the table holds. */
void lang_table_free(struct lang_table *t);
/* Finds a language by id or alias, ignoring case; NULL if unknown. Owned by the table. */
const struct lang *lang_find(const struct lang_table *t, const char *name);
/* Finds the language named by a "#!" first line of code; NULL if none. */
const struct lang *lang_from_shebang(const struct lang_table *t, const char *code, size_t len);
/* Finds the language of a file name by its extension ("x.py", "Main.java"); NULL if none. */
const struct lang *lang_from_filename(const struct lang_table *t, const char *name);
/* Returns the file name the code is written to (malloc'd): source_file, or what
 * the language's source rule derives from the code (Java: the public class). */
char *lang_source_name(const struct lang *l, const char *code, size_t len);
/* Expands an argv template: "{source}" is the main file, "{stem}" the main file without
 * its extension, "{sources}" the main file then every other file with one of the
 * language's extensions (one entry each). files is NULL-terminated (may be NULL).
 * Returns a new NULL-terminated vector of new strings (free with lang_strv_free). */
char **lang_expand(const struct lang *l, char *const *tmpl, const char *source, char *const *files);
/* Returns the union of the installed languages' etc entries, without repeats
 * (NULL-terminated; free with lang_strv_free). */
char **lang_etc(const struct lang_table *t);
/* Returns the union of the installed languages' binds, without repeats
 * (NULL-terminated; free with lang_strv_free). */
char **lang_binds(const struct lang_table *t);
/* Frees a NULL-terminated vector of strings. */
void lang_strv_free(char **v);

#endif
