/* lang: loading, validating and looking up the language table. */
#include "lang.h"

#include <ctype.h>
#include <stddef.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util.h"

/* Frees a NULL-terminated string vector. */
void lang_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* Returns the number of entries of a NULL-terminated vector (0 for NULL). */
static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/* Copies a JSON array of strings into a NULL-terminated vector.
 * Returns 0, or -1 with *cause when the value is not an array of strings. */
static int strv_from_array(json_object *a, const char *lang, const char *key, bool need,
    char ***out, char **cause)
{
	size_t n;
	*out = NULL;
	if (!json_object_is_type(a, json_type_array))
		return util_fail(cause, "language %s: '%s' must be an array of strings", lang, key);
	n = json_object_array_length(a);
	if (need && n == 0)
		return util_fail(cause, "language %s: '%s' must not be empty", lang, key);
	*out = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		if (!json_object_is_type(s, json_type_string)) {
			lang_strv_free(*out);
			*out = NULL;
			return util_fail(cause, "language %s: '%s' must be an array of strings", lang, key);
		}
		(*out)[i] = xstrdup(json_object_get_string(s));
	}
	return 0;
}

/* Copies an optional (or required) member that is an array of strings (NULL if absent). */
static int strv_from_json(json_object *o, const char *lang, const char *key, bool need,
    char ***out, char **cause)
{
	json_object *a;
	*out = NULL;
	if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null)) {
		if (need)
			return util_fail(cause, "language %s: '%s' is required", lang, key);
		return 0;
	}
	return strv_from_array(a, lang, key, need, out, cause);
}

/* Reads an optional non-negative integer member; returns 0 or -1 with *cause. */
static int int_member(json_object *o, const char *lang, const char *key, int *out, char **cause)
{
	json_object *v;
	*out = 0;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int(v) < 0)
		return util_fail(cause, "language %s: '%s' must be a non-negative integer", lang, key);
	*out = json_object_get_int(v);
	return 0;
}

/* Returns true when path is an absolute path to an executable file. */
static bool exec_ok(const char *path)
{
	return path != NULL && path[0] == '/' && access(path, X_OK) == 0;
}

/* Returns true for a plain file name: no '/', not "." or "..", no control bytes, < 256 bytes. */
static bool plain_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* Checks an argv template: argv[0] absolute (a toolchain under /usr or /bin, or a program
 * the compile left in /box), only known placeholders. Returns 0 or -1 with *cause. */
static int argv_check(char **v, const char *lang, const char *key, char **cause)
{
	if (v[0][0] != '/')
		return util_fail(cause, "language %s: '%s' must start with an absolute path", lang, key);
	for (char **p = v; *p != NULL; p++) {
		const char *b = strchr(*p, '{');
		if (b == NULL)
			continue;
		if (strcmp(*p, "{sources}") != 0 && strstr(*p, "{source}") == NULL && strstr(*p, "{stem}") == NULL)
			return util_fail(cause, "language %s: '%s' has an unknown placeholder in '%s'", lang, key, *p);
	}
	return 0;
}

/* Checks NAME=VALUE entries: a valid name that the sandbox accepts (not PATH, HOME, LD_*). */
static int env_check(char **v, const char *lang, char **cause)
{
	for (char **p = v; p != NULL && *p != NULL; p++) {
		const char *eq = strchr(*p, '=');
		bool ok = eq != NULL && eq != *p && (isalpha((unsigned char)**p) || **p == '_');
		for (const char *c = *p; ok && c < eq; c++)
			ok = isalnum((unsigned char)*c) || *c == '_';
		if (!ok || strncmp(*p, "PATH=", 5) == 0 || strncmp(*p, "HOME=", 5) == 0 || strncmp(*p, "LD_", 3) == 0)
			return util_fail(cause, "language %s: env entry '%s' is not an allowed NAME=VALUE", lang, *p);
	}
	return 0;
}

/* Reads "compile": one argv, or an array of argv (steps run in order). */
static int compile_from_json(struct lang *l, json_object *o, char **cause)
{
	json_object *a;
	size_t n;
	if (!json_object_object_get_ex(o, "compile", &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) == 0)
		return util_fail(cause, "language %s: 'compile' must be an argv or a list of argv", l->id);
	if (json_object_is_type(json_object_array_get_idx(a, 0), json_type_string)) {
		l->compile_steps = xcalloc(2, sizeof *l->compile_steps);
		l->ncompile = 1;
		if (strv_from_array(a, l->id, "compile", true, &l->compile_steps[0], cause) < 0)
			return -1;
	} else {
		n = json_object_array_length(a);
		l->compile_steps = xcalloc(n + 1, sizeof *l->compile_steps);
		for (size_t i = 0; i < n; i++) {
			if (strv_from_array(json_object_array_get_idx(a, i), l->id, "compile", true,
			    &l->compile_steps[i], cause) < 0)
				return -1;
			l->ncompile = i + 1;
		}
	}
	for (size_t i = 0; i < l->ncompile; i++)
		if (argv_check(l->compile_steps[i], l->id, "compile", cause) < 0)
			return -1;
	l->compile_argv = l->compile_steps[0];
	return 0;
}

/* Reads "files": {"name": "content", ...}. */
static int files_from_json(struct lang *l, json_object *o, char **cause)
{
	json_object *f;
	size_t i = 0;
	if (!json_object_object_get_ex(o, "files", &f) || json_object_is_type(f, json_type_null))
		return 0;
	if (!json_object_is_type(f, json_type_object))
		return util_fail(cause, "language %s: 'files' must be an object of name: text", l->id);
	l->files = xcalloc((size_t)json_object_object_length(f) + 1, sizeof *l->files);
	json_object_object_foreach(f, k, v) {
		if (!plain_name(k) || !json_object_is_type(v, json_type_string))
			return util_fail(cause, "language %s: 'files' entry '%s' must be a plain name with text", l->id, k);
		l->files[i].name = xstrdup(k);
		l->files[i].data = xstrdup(json_object_get_string(v));
		l->nfiles = ++i;
	}
	return 0;
}

/* True if p is a normalized absolute path strictly under /var/lib or /usr/lib. */
static bool bind_ok(const char *p)
{
	size_t n = strlen(p);
	if (strncmp(p, "/var/lib/", 9) != 0 && strncmp(p, "/usr/lib/", 9) != 0)
		return false;
	if (n <= 9 || p[n - 1] == '/' || strstr(p, "//") != NULL || strstr(p, "/./") != NULL ||
	    strstr(p, "/../") != NULL || strcmp(p + n - 2, "/.") == 0 || strcmp(p + n - 3, "/..") == 0)
		return false;
	for (const char *c = p; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

/* Fills one entry from its JSON object; returns 0 or -1 with *cause. */
static int lang_from_json(struct lang *l, json_object *o, char **cause)
{
	json_object *v;
	const char *id;
	if (!json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string) ||
	    *json_object_get_string(v) == '\0')
		return util_fail(cause, "a language entry has no string 'id'");
	id = json_object_get_string(v);
	l->id = xstrdup(id);
	if (!json_object_object_get_ex(o, "source_file", &v) || !json_object_is_type(v, json_type_string) ||
	    !plain_name(json_object_get_string(v)))
		return util_fail(cause, "language %s: 'source_file' must be a plain file name", id);
	l->source_file = xstrdup(json_object_get_string(v));
	l->source_rule = LANG_SOURCE_FIXED;
	if (json_object_object_get_ex(o, "source_file_rule", &v)) {
		if (json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), "java_public_class") == 0)
			l->source_rule = LANG_SOURCE_JAVA_CLASS;
		else
			return util_fail(cause, "language %s: unknown 'source_file_rule' (known: java_public_class)", id);
	}
	if (strv_from_json(o, id, "aliases", false, &l->aliases, cause) < 0 ||
	    strv_from_json(o, id, "extensions", false, &l->extensions, cause) < 0 ||
	    strv_from_json(o, id, "shebangs", false, &l->shebangs, cause) < 0 ||
	    strv_from_json(o, id, "packages", false, &l->packages, cause) < 0 ||
	    compile_from_json(l, o, cause) < 0 ||
	    strv_from_json(o, id, "outputs", false, &l->outputs, cause) < 0 ||
	    strv_from_json(o, id, "run", true, &l->run_argv, cause) < 0 ||
	    strv_from_json(o, id, "version", false, &l->version_argv, cause) < 0 ||
	    strv_from_json(o, id, "env", false, &l->env, cause) < 0 ||
	    strv_from_json(o, id, "etc", false, &l->etc, cause) < 0 ||
	    strv_from_json(o, id, "binds", false, &l->binds, cause) < 0 ||
	    strv_from_json(o, id, "requires", false, &l->requires, cause) < 0 ||
	    files_from_json(l, o, cause) < 0 ||
	    int_member(o, id, "memory_mb", &l->memory_mb, cause) < 0 ||
	    int_member(o, id, "processes", &l->processes, cause) < 0)
		return -1;
	if (argv_check(l->run_argv, id, "run", cause) < 0 ||
	    (l->version_argv != NULL && argv_check(l->version_argv, id, "version", cause) < 0) ||
	    env_check(l->env, id, cause) < 0)
		return -1;
	if (l->outputs != NULL && l->compile_steps == NULL)
		return util_fail(cause, "language %s: 'outputs' needs 'compile'", id);
	for (char **p = l->outputs; p != NULL && *p != NULL; p++) {
		char *eq = strchr(*p, '=');
		bool ok = eq == NULL ? plain_name(*p) && strchr(*p, '*') == NULL :
		    strncmp(*p, "*.", 2) == 0 && strncmp(eq + 1, "*.", 2) == 0 && strchr(eq + 2, '=') == NULL;
		if (!ok)
			return util_fail(cause, "language %s: output '%s' must be a plain name or '*.in=*.out'", id, *p);
	}
	for (char **p = l->etc; p != NULL && *p != NULL; p++)
		if (**p == '\0' || **p == '/' || strstr(*p, "..") != NULL)
			return util_fail(cause, "language %s: etc entry '%s' must be a name under /etc", id, *p);
	for (char **p = l->binds; p != NULL && *p != NULL; p++)
		if (!bind_ok(*p))
			return util_fail(cause, "language %s: bind '%s' must be an absolute path under /var/lib "
			    "or /usr/lib, without '.', '..', '//' or a trailing '/'", id, *p);
	for (char **p = l->requires; p != NULL && *p != NULL; p++)
		if (**p != '/')
			return util_fail(cause, "language %s: requires entry '%s' must be an absolute path", id, *p);
	/* installed: every toolchain program exists (programs in /box are made by the compile),
	 * and every file it requires */
	l->installed = strncmp(l->run_argv[0], "/box/", 5) == 0 || exec_ok(l->run_argv[0]);
	for (size_t i = 0; i < l->ncompile; i++)
		l->installed = l->installed && exec_ok(l->compile_steps[i][0]);
	for (char **p = l->requires; p != NULL && *p != NULL; p++)
		l->installed = l->installed && access(*p, F_OK) == 0;
	return 0;
}

/* Frees one entry. */
static void lang_free(struct lang *l)
{
	free(l->id);
	free(l->source_file);
	free(l->version);
	lang_strv_free(l->aliases);
	lang_strv_free(l->extensions);
	lang_strv_free(l->shebangs);
	lang_strv_free(l->packages);
	for (size_t i = 0; l->compile_steps != NULL && l->compile_steps[i] != NULL; i++)
		lang_strv_free(l->compile_steps[i]);
	free(l->compile_steps);
	lang_strv_free(l->outputs);
	lang_strv_free(l->run_argv);
	lang_strv_free(l->version_argv);
	lang_strv_free(l->env);
	lang_strv_free(l->etc);
	lang_strv_free(l->binds);
	lang_strv_free(l->requires);
	for (size_t i = 0; i < l->nfiles; i++) {
		free(l->files[i].name);
		free(l->files[i].data);
	}
	free(l->files);
}

/* Checks that no id, alias or extension names two languages. */
static int table_unique(const struct lang_table *t, char **cause)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct lang *a = &t->v[i];
		for (size_t j = i + 1; j < t->n; j++) {
			const struct lang *b = &t->v[j];
			if (lang_find(&(struct lang_table){ .v = (struct lang *)b, .n = 1 }, a->id) != NULL)
				return util_fail(cause, "language %s: id also names %s", a->id, b->id);
			for (char **al = a->aliases; al != NULL && *al != NULL; al++)
				if (lang_find(&(struct lang_table){ .v = (struct lang *)b, .n = 1 }, *al) != NULL)
					return util_fail(cause, "language %s: alias '%s' also names %s", a->id, *al, b->id);
			for (char **e = a->extensions; e != NULL && *e != NULL; e++)
				for (char **f = b->extensions; f != NULL && *f != NULL; f++)
					if (strcmp(*e, *f) == 0)
						return util_fail(cause, "languages %s and %s share the extension '%s'",
						    a->id, b->id, *e);
		}
	}
	return 0;
}

/* Collects one list member (at offset off in struct lang) of the installed languages, without repeats. */
static char **lang_union(const struct lang_table *t, size_t off)
{
	size_t n = 0, k = 0;
	char **etc;
	for (size_t i = 0; i < t->n; i++)
		n += strv_len(*(char ***)((char *)&t->v[i] + off));
	etc = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < t->n; i++) {
		if (!t->v[i].installed)
			continue;
		for (char **p = *(char ***)((char *)&t->v[i] + off); p != NULL && *p != NULL; p++) {
			bool seen = false;
			for (size_t j = 0; j < k && !seen; j++)
				seen = strcmp(etc[j], *p) == 0;
			if (!seen)
				etc[k++] = xstrdup(*p);
		}
	}
	return etc;
}

/* Collects the etc entries of the installed languages, without repeats. */
char **lang_etc(const struct lang_table *t)
{
	return lang_union(t, offsetof(struct lang, etc));
}

/* Collects the binds of the installed languages, without repeats. */
char **lang_binds(const struct lang_table *t)
{
	return lang_union(t, offsetof(struct lang, binds));
}

/* Parses and validates the whole table from JSON text. */
int lang_table_parse(struct lang_table *t, const char *text, const char *name, char **cause)
{
	json_object *root, *arr;
	int rc = 0;
	t->v = NULL;
	t->n = 0;
	root = json_tokener_parse(text);
	if (root == NULL || !json_object_object_get_ex(root, "languages", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(root);
		return util_fail(cause, "%s: expected {\"languages\": [...]}", name);
	}
	t->n = json_object_array_length(arr);
	t->v = xcalloc(t->n + 1, sizeof *t->v);
	for (size_t i = 0; i < t->n && rc == 0; i++) {
		char *why = NULL;
		json_object *e = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(e, json_type_object))
			why = xstrdup("a language entry is not an object");
		if (why != NULL || lang_from_json(&t->v[i], e, &why) < 0) {
			rc = util_fail(cause, "%s: %s", name, why);
			free(why);
		}
	}
	json_object_put(root);
	if (rc == 0) {
		char *why = NULL;
		if (table_unique(t, &why) < 0) {
			rc = util_fail(cause, "%s: %s", name, why);
			free(why);
		}
	}
	if (rc < 0)
		lang_table_free(t);
	return rc;
}

/* Loads the whole table from a file. */
int lang_table_load(struct lang_table *t, const char *path, char **cause)
{
	size_t len;
	char *text = util_read_file(path, 4 << 20, &len, cause);
	int rc;
	t->v = NULL;
	t->n = 0;
	if (text == NULL)
		return -1;
	rc = lang_table_parse(t, text, path, cause);
	free(text);
	return rc;
}

/* Frees the table. */
void lang_table_free(struct lang_table *t)
{
	for (size_t i = 0; t->v != NULL && i < t->n; i++)
		lang_free(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

/* Finds a language by id or alias, case-insensitively. */
const struct lang *lang_find(const struct lang_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcasecmp(t->v[i].id, name) == 0)
			return &t->v[i];
	}
	for (size_t i = 0; i < t->n; i++) {
		for (char **a = t->v[i].aliases; a != NULL && *a != NULL; a++)
			if (strcasecmp(*a, name) == 0)
				return &t->v[i];
	}
	return NULL;
}

/* Finds the language of a "#!" line: the interpreter's base name, or the word after env. */
const struct lang *lang_from_shebang(const struct lang_table *t, const char *code, size_t len)
{
	char line[256], *p, *word, *save = NULL;
	size_t n = 0;
	if (len < 3 || code[0] != '#' || code[1] != '!')
		return NULL;
	while (n + 2 < len && n < sizeof line - 1 && code[n + 2] != '\n') {
		line[n] = code[n + 2];
		n++;
	}
	line[n] = '\0';
	for (word = strtok_r(line, " \t\r", &save); word != NULL; word = strtok_r(NULL, " \t\r", &save)) {
		p = strrchr(word, '/');
		p = p ? p + 1 : word;
		if (strcmp(p, "env") == 0 || *p == '-')
			continue;
		for (size_t i = 0; i < t->n; i++)
			for (char **s = t->v[i].shebangs; s != NULL && *s != NULL; s++)
				if (strcmp(*s, p) == 0)
					return &t->v[i];
		return NULL;
	}
	return NULL;
}

/* Finds the language of a file name by its extension: exact case first, then any case. */
const struct lang *lang_from_filename(const struct lang_table *t, const char *name)
{
	const char *dot = strrchr(name, '.');
	const char *ext = dot != NULL ? dot + 1 : name;
	if (*ext == '\0')
		return NULL;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < t->n; i++)
			for (char **e = t->v[i].extensions; e != NULL && *e != NULL; e++)
				if (pass == 0 ? strcmp(*e, ext) == 0 : strcasecmp(*e, ext) == 0)
					return &t->v[i];
	return NULL;
}

/* Returns true when c may be part of a Java identifier (ASCII subset). */
static bool java_ident(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* Finds "public [final|abstract|static|sealed|strictfp]* class|interface|enum|record NAME"
 * at a word boundary, outside // and block comments and string literals; NULL if none. */
static char *java_public_class(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
			while (i < n && s[i] != '\n')
				i++;
		} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
			i += 2;
			while (i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'))
				i++;
			i += 2;
		} else if (s[i] == '"' || s[i] == '\'') {
			char q = s[i++];
			while (i < n && s[i] != q && s[i] != '\n')
				i += s[i] == '\\' ? 2 : 1;
			i++;
		} else if ((i == 0 || !java_ident(s[i - 1])) && n - i > 6 && memcmp(s + i, "public", 6) == 0 &&
		    !java_ident(s[i + 6])) {
			size_t j = i + 6;
			for (;;) {
				size_t w;
				while (j < n && isspace((unsigned char)s[j]))
					j++;
				w = j;
				while (j < n && java_ident(s[j]))
					j++;
				if (j == w)
					break;
				if ((j - w == 5 && memcmp(s + w, "final", 5) == 0) ||
				    (j - w == 8 && memcmp(s + w, "abstract", 8) == 0) ||
				    (j - w == 6 && memcmp(s + w, "static", 6) == 0) ||
				    (j - w == 6 && memcmp(s + w, "sealed", 6) == 0) ||
				    (j - w == 8 && memcmp(s + w, "strictfp", 8) == 0))
					continue;
				if ((j - w == 5 && memcmp(s + w, "class", 5) == 0) ||
				    (j - w == 9 && memcmp(s + w, "interface", 9) == 0) ||
				    (j - w == 4 && memcmp(s + w, "enum", 4) == 0) ||
				    (j - w == 6 && memcmp(s + w, "record", 6) == 0)) {
					while (j < n && isspace((unsigned char)s[j]))
						j++;
					w = j;
					while (j < n && java_ident(s[j]) && j - w < 200)
						j++;
					if (j > w && !isdigit((unsigned char)s[w]))
						return xasprintf("%.*s.java", (int)(j - w), s + w);
				}
				break;
			}
			i = j > i + 6 ? j : i + 6;
		} else
			i++;
	}
	return NULL;
}

/* Returns the name the main source is written to. */
char *lang_source_name(const struct lang *l, const char *code, size_t len)
{
	char *name = NULL;
	if (l->source_rule == LANG_SOURCE_JAVA_CLASS)
		name = java_public_class(code, len);
	return name != NULL ? name : xstrdup(l->source_file);
}

/* Returns true when name ends with "." followed by one of l's extensions. */
static bool has_lang_ext(const struct lang *l, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot == NULL || dot == name)
		return false;
	for (char **e = l->extensions; e != NULL && *e != NULL; e++)
		if (strcmp(dot + 1, *e) == 0)
			return true;
	return false;
}

/* Replaces every occurrence of key in s with val; returns a new string. */
static char *replace_all(const char *s, const char *key, const char *val)
{
	size_t kl = strlen(key), vl = strlen(val), n = 0, o = 0;
	const char *p;
	char *r;
	for (p = strstr(s, key); p != NULL; p = strstr(p + kl, key))
		n++;
	r = xmalloc(strlen(s) + n * vl + 1);
	while ((p = strstr(s, key)) != NULL) {
		memcpy(r + o, s, (size_t)(p - s));
		o += (size_t)(p - s);
		memcpy(r + o, val, vl);
		o += vl;
		s = p + kl;
	}
	strcpy(r + o, s);
	return r;
}

/* Expands the placeholders of an argv template. */
char **lang_expand(const struct lang *l, char *const *tmpl, const char *source, char *const *files)
{
	size_t n = strv_len(tmpl) + strv_len(files) + 1, k = 0;
	char **v = xcalloc(n + 1, sizeof(char *)), *stem = xstrdup(source), *dot = strrchr(stem, '.');
	if (dot != NULL && dot != stem)
		*dot = '\0';
	for (char *const *p = tmpl; *p != NULL; p++) {
		if (strcmp(*p, "{sources}") == 0) {
			v[k++] = xstrdup(source);
			for (char *const *f = files; f != NULL && *f != NULL; f++)
				if (strcmp(*f, source) != 0 && has_lang_ext(l, *f))
					v[k++] = xstrdup(*f);
		} else {
			char *a = replace_all(*p, "{source}", source);
			v[k++] = replace_all(a, "{stem}", stem);
			free(a);
		}
	}
	free(stem);
	return v;
}
