/* lang: loading and looking up the language table. */
#include "lang.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util.h"

/* Frees a NULL-terminated string vector. */
static void strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* Copies a JSON array of strings into a NULL-terminated vector (NULL if absent).
 * Returns 0, or -1 with *cause when the value is not an array of strings. */
static int strv_from_json(json_object *o, const char *lang, const char *key, bool need,
    char ***out, char **cause)
{
	json_object *a;
	size_t n;
	*out = NULL;
	if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null)) {
		if (need)
			return util_fail(cause, "language %s: '%s' is required", lang, key);
		return 0;
	}
	if (!json_object_is_type(a, json_type_array))
		return util_fail(cause, "language %s: '%s' must be an array of strings", lang, key);
	n = json_object_array_length(a);
	if (need && n == 0)
		return util_fail(cause, "language %s: '%s' must not be empty", lang, key);
	*out = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		if (!json_object_is_type(s, json_type_string)) {
			strv_free(*out);
			*out = NULL;
			return util_fail(cause, "language %s: '%s' must be an array of strings", lang, key);
		}
		(*out)[i] = xstrdup(json_object_get_string(s));
	}
	return 0;
}

/* Reads an optional integer member; returns its value or 0. */
static int int_member(json_object *o, const char *key)
{
	json_object *v;
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
		return json_object_get_int(v);
	return 0;
}

/* Returns true when path is an absolute path to an executable file. */
static bool exec_ok(const char *path)
{
	return path != NULL && path[0] == '/' && access(path, X_OK) == 0;
}

/* Fills one entry from its JSON object; returns 0 or -1 with *cause. */
static int lang_from_json(struct lang *l, json_object *o, char **cause)
{
	json_object *v;
	const char *id;
	if (!json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string))
		return util_fail(cause, "a language entry has no string 'id'");
	id = json_object_get_string(v);
	l->id = xstrdup(id);
	if (!json_object_object_get_ex(o, "source_file", &v) || !json_object_is_type(v, json_type_string) ||
	    strchr(json_object_get_string(v), '/') != NULL || *json_object_get_string(v) == '\0')
		return util_fail(cause, "language %s: 'source_file' must be a plain file name", id);
	l->source_file = xstrdup(json_object_get_string(v));
	if (strv_from_json(o, id, "aliases", false, &l->aliases, cause) < 0 ||
	    strv_from_json(o, id, "extensions", false, &l->extensions, cause) < 0 ||
	    strv_from_json(o, id, "shebangs", false, &l->shebangs, cause) < 0 ||
	    strv_from_json(o, id, "packages", false, &l->packages, cause) < 0 ||
	    strv_from_json(o, id, "compile", false, &l->compile_argv, cause) < 0 ||
	    strv_from_json(o, id, "run", true, &l->run_argv, cause) < 0 ||
	    strv_from_json(o, id, "version", false, &l->version_argv, cause) < 0)
		return -1;
	l->memory_mb = int_member(o, "memory_mb");
	l->processes = int_member(o, "processes");
	l->installed = exec_ok(l->run_argv[0]) &&
	    (l->compile_argv == NULL || exec_ok(l->compile_argv[0]));
	return 0;
}

/* Frees one entry. */
static void lang_free(struct lang *l)
{
	free(l->id);
	free(l->source_file);
	strv_free(l->aliases);
	strv_free(l->extensions);
	strv_free(l->shebangs);
	strv_free(l->packages);
	strv_free(l->compile_argv);
	strv_free(l->run_argv);
	strv_free(l->version_argv);
}

/* Loads the whole table. */
int lang_table_load(struct lang_table *t, const char *path, char **cause)
{
	size_t len;
	char *text = util_read_file(path, 4 << 20, &len, cause);
	json_object *root, *arr;
	int rc = 0;
	t->v = NULL;
	t->n = 0;
	if (text == NULL)
		return -1;
	root = json_tokener_parse(text);
	free(text);
	if (root == NULL || !json_object_object_get_ex(root, "languages", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(root);
		return util_fail(cause, "%s: expected {\"languages\": [...]}", path);
	}
	t->n = json_object_array_length(arr);
	t->v = xcalloc(t->n, sizeof *t->v);
	for (size_t i = 0; i < t->n && rc == 0; i++) {
		char *why = NULL;
		if (lang_from_json(&t->v[i], json_object_array_get_idx(arr, i), &why) < 0) {
			rc = util_fail(cause, "%s: %s", path, why);
			free(why);
		}
	}
	json_object_put(root);
	if (rc < 0)
		lang_table_free(t);
	return rc;
}

/* Frees the table. */
void lang_table_free(struct lang_table *t)
{
	for (size_t i = 0; i < t->n; i++)
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
