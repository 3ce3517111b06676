/* Unit tests: the language table (languages/languages.json): loading, validation,
 * detection by extension and shebang, the Java source rule and argv templates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang.h"

static struct lang_table T;

/* Loads the repository's table. */
static int setup(void **state)
{
	char *cause = NULL;
	(void)state;
	if (lang_table_load(&T, CORRAL_SRCDIR "/languages/languages.json", &cause) < 0) {
		fprintf(stderr, "# %s\n", cause);
		return -1;
	}
	return 0;
}

/* Frees the table. */
static int teardown(void **state)
{
	(void)state;
	lang_table_free(&T);
	return 0;
}

/* Asserts that a file name is detected as language id (NULL: not detected). */
static void expect_ext(const char *name, const char *id)
{
	const struct lang *l = lang_from_filename(&T, name);
	if (id == NULL) {
		if (l != NULL)
			fail_msg("%s detected as %s, expected nothing", name, l->id);
		return;
	}
	if (l == NULL)
		fail_msg("%s not detected, expected %s", name, id);
	assert_string_equal(l->id, id);
}

/* Every extension the issue lists maps to its language; unavailable ones map to nothing. */
static void test_extensions(void **state)
{
	static const char *const map[][2] = {
		{ "a.py", "python" }, { "a.js", "javascript" }, { "a.ts", "typescript" }, { "a.rb", "ruby" },
		{ "a.php", "php" }, { "a.pl", "perl" }, { "a.sh", "bash" }, { "a.r", "r" }, { "a.R", "r" },
		{ "a.lua", "lua" }, { "a.go", "go" }, { "a.rs", "rust" }, { "a.c", "c" }, { "a.cpp", "cpp" },
		{ "a.cc", "cpp" }, { "a.cxx", "cpp" }, { "Main.java", "java" }, { "a.kt", "kotlin" },
		{ "a.m", "objc" }, { "a.cs", "csharp" }, { "a.ml", "ocaml" }, { "a.clj", "clojure" },
		{ "a.scm", "scheme" }, { "a.ss", "scheme" }, { "a.erl", "erlang" }, { "a.ex", "elixir" },
		{ "a.exs", "elixir" }, { "a.d", "d" }, { "a.nim", "nim" }, { "a.cr", "crystal" },
		{ "a.groovy", "groovy" }, { "a.f90", "fortran" }, { "a.f95", "fortran" }, { "a.lisp", "commonlisp" },
		{ "a.lsp", "commonlisp" }, { "a.cob", "cobol" }, { "a.tcl", "tcl" }, { "a.raku", "raku" },
		{ "a.pro", "prolog" }, { "a.4th", "forth" }, { "a.forth", "forth" }, { "a.fth", "forth" },
		{ "a.scala", "scala" }, { "a.awk", "awk" }, { "dir.x/a.PY", "python" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		expect_ext(map[i][0], map[i][1]);
	/* no Debian 12 package: julia, zig, v, dart, F#; and no extension at all */
	expect_ext("a.jl", NULL);
	expect_ext("a.zig", NULL);
	expect_ext("a.dart", NULL);
	expect_ext("a.fs", NULL);
	expect_ext("Makefile", NULL);
	expect_ext("a.", NULL);
}

/* Asserts the language a first line names. */
static void expect_shebang(const char *code, const char *id)
{
	const struct lang *l = lang_from_shebang(&T, code, strlen(code));
	if (id == NULL) {
		if (l != NULL)
			fail_msg("'%s' detected as %s", code, l->id);
		return;
	}
	if (l == NULL)
		fail_msg("'%s' not detected, expected %s", code, id);
	assert_string_equal(l->id, id);
}

/* Shebangs: a path, env, env -S, interpreter options; none or unknown is NULL. */
static void test_shebangs(void **state)
{
	(void)state;
	expect_shebang("#!/usr/bin/env python3\nprint(1)\n", "python");
	expect_shebang("#!/usr/bin/python\n", "python");
	expect_shebang("#!/bin/bash\necho\n", "bash");
	expect_shebang("#!/bin/sh -e\n", "bash");
	expect_shebang("#!/usr/bin/env -S node --no-warnings\n", "javascript");
	expect_shebang("#!/usr/bin/perl -w\n", "perl");
	expect_shebang("#!/usr/bin/env ruby", "ruby");
	expect_shebang("#!/usr/bin/env php\n", "php");
	expect_shebang("#!/usr/bin/env Rscript\n", "r");
	expect_shebang("#!/usr/bin/env lua\n", "lua");
	expect_shebang("#!/usr/bin/tclsh\n", "tcl");
	expect_shebang("#!/usr/bin/env raku\n", "raku");
	expect_shebang("#!/usr/bin/env elixir\n", "elixir");
	expect_shebang("#!/usr/bin/gawk -f\n", "awk");
	expect_shebang("#!/usr/bin/env guile\n", "scheme");
	expect_shebang("print(1)\n", NULL);
	expect_shebang("#!/usr/bin/env nosuchlang\n", NULL);
	expect_shebang("#!", NULL);
}

/* Ids and aliases, case-insensitively; the 12 of seed 004 by their seed names. */
static void test_find(void **state)
{
	static const char *const map[][2] = {
		{ "python3", "python" }, { "PYTHON", "python" }, { "javascript", "javascript" }, { "node", "javascript" },
		{ "js", "javascript" }, { "typescript", "typescript" }, { "ts", "typescript" }, { "go", "go" },
		{ "java", "java" }, { "cpp", "cpp" }, { "c++", "cpp" }, { "c", "c" }, { "bash", "bash" },
		{ "sh", "bash" }, { "rust", "rust" }, { "ruby", "ruby" }, { "php", "php" }, { "csharp", "csharp" },
		{ "cs", "csharp" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		const struct lang *l = lang_find(&T, map[i][0]);
		if (l == NULL)
			fail_msg("%s unknown", map[i][0]);
		assert_string_equal(l->id, map[i][1]);
	}
	assert_null(lang_find(&T, "cobolx"));
}

/* Every entry is usable: packages named, argv absolute, compiled ones cache something. */
static void test_entries(void **state)
{
	(void)state;
	assert_true(T.n >= 12);
	for (size_t i = 0; i < T.n; i++) {
		const struct lang *l = &T.v[i];
		assert_non_null(l->packages);
		assert_non_null(l->packages[0]);
		assert_int_equal(l->run_argv[0][0], '/');
		if (l->compile_steps != NULL)
			assert_non_null(l->outputs);
		for (char **e = l->extensions; e != NULL && *e != NULL; e++) {
			char name[300];
			snprintf(name, sizeof name, "x.%s", *e);
			assert_ptr_equal(lang_from_filename(&T, name), l);
		}
	}
}

/* Java: the file is named after the public class, wherever it is; comments and strings
 * do not count; without one it is Main.java. */
static void test_java_source(void **state)
{
	const struct lang *j = lang_find(&T, "java");
	static const char *const cases[][2] = {
		{ "public class Hello { }", "Hello.java" },
		{ "import x.y;\n\npublic final class Solver {}", "Solver.java" },
		{ "// public class Fake\n/* public class Fake2 */\nclass A {}\npublic class Real {}", "Real.java" },
		{ "class A { String s = \"public class Nope\"; }", "Main.java" },
		{ "class Only {}", "Main.java" },
		{ "public interface Shape {}", "Shape.java" },
		{ "publicclass X {}", "Main.java" },
	};
	char *name;
	(void)state;
	assert_non_null(j);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		name = lang_source_name(j, cases[i][0], strlen(cases[i][0]));
		assert_string_equal(name, cases[i][1]);
		free(name);
	}
	name = lang_source_name(lang_find(&T, "python"), "public class X {}", 17);
	assert_string_equal(name, "main.py");
	free(name);
}

/* Templates: {source}, {stem} and {sources} (the main file, then the job's files of the
 * language's extensions). */
static void test_expand(void **state)
{
	const struct lang *c = lang_find(&T, "c");
	char *tmpl[] = { "/usr/bin/gcc", "-o", "{stem}", "{sources}", "-DF={source}", NULL };
	char *files[] = { "main.c", "util.c", "util.h", "data.txt", NULL };
	char **v;
	(void)state;
	v = lang_expand(c, tmpl, "main.c", files);
	assert_string_equal(v[0], "/usr/bin/gcc");
	assert_string_equal(v[1], "-o");
	assert_string_equal(v[2], "main");
	assert_string_equal(v[3], "main.c");
	assert_string_equal(v[4], "util.c");
	assert_string_equal(v[5], "-DF=main.c");
	assert_null(v[6]);
	lang_strv_free(v);
}

/* Asserts that a table text is refused with a cause containing want. */
static void expect_bad(const char *text, const char *want)
{
	struct lang_table t;
	char *cause = NULL;
	assert_int_equal(lang_table_parse(&t, text, "t.json", &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause '%s' does not contain '%s'", cause, want);
	free(cause);
}

#define E(x) "{\"languages\": [" x "]}"
#define A "{\"id\":\"a\",\"source_file\":\"a.x\",\"extensions\":[\"x\"],\"run\":[\"/bin/true\"]}"

/* Validation: each broken table is refused with a cause naming the problem. */
static void test_validation(void **state)
{
	struct lang_table t;
	char *cause = NULL;
	(void)state;
	assert_int_equal(lang_table_parse(&t, E(A), "t.json", &cause), 0);
	assert_true(t.v[0].installed);
	lang_table_free(&t);
	expect_bad("[]", "expected");
	expect_bad(E(A "," A), "also names");
	expect_bad(E(A ",{\"id\":\"b\",\"aliases\":[\"A\"],\"source_file\":\"b\",\"run\":[\"/bin/true\"]}"), "id also names b");
	expect_bad(E(A ",{\"id\":\"b\",\"extensions\":[\"x\"],\"source_file\":\"b\",\"run\":[\"/bin/true\"]}"), "extension 'x'");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"../a\",\"run\":[\"/bin/true\"]}"), "source_file");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"true\"]}"), "absolute");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\",\"{nope}\"]}"), "placeholder");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"env\":[\"PATH=/x\"]}"), "env entry");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"env\":[\"LD_PRELOAD=x\"]}"), "env entry");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"outputs\":[\"a\"]}"), "needs 'compile'");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"compile\":[\"/bin/true\"],"
	    "\"outputs\":[\"../a\"]}"), "output");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"source_file_rule\":\"x\"}"), "source_file_rule");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"files\":{\"a/b\":\"x\"}}"), "files");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"memory_mb\":-1}"), "memory_mb");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[]}"), "must not be empty");
	/* binds: absolute, normalized, under /var/lib or /usr/lib only */
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"binds\":[\"/etc/shadow\"]}"), "bind '/etc/shadow'");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"binds\":[\"var/lib/x\"]}"), "bind");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"binds\":[\"/var/lib/../../root\"]}"), "bind");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"binds\":[\"/var/lib/\"]}"), "bind");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"binds\":[\"/var/lib//x\"]}"), "bind");
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"binds\":[\"/var/libx/y\"]}"), "bind");
	assert_int_equal(lang_table_parse(&t, E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],"
	    "\"binds\":[\"/var/lib/ghc\",\"/usr/lib/x\"]}"), "t.json", &cause), 0);
	{
		char **b = lang_binds(&t);
		assert_string_equal(b[0], "/var/lib/ghc");
		assert_string_equal(b[1], "/usr/lib/x");
		assert_null(b[2]);
		lang_strv_free(b);
	}
	lang_table_free(&t);
	/* a compiler that does not exist: known but not installed */
	assert_int_equal(lang_table_parse(&t, E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/box/a\"],"
	    "\"compile\":[[\"/bin/true\"],[\"/nonexistent/cc\"]],\"outputs\":[\"a\"]}"), "t.json", &cause), 0);
	assert_false(t.v[0].installed);
	assert_int_equal(t.v[0].ncompile, 2);
	lang_table_free(&t);
	/* a compiler whose back end is missing (gcc without cc1obj): known but not installed */
	assert_int_equal(lang_table_parse(&t, E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],"
	    "\"requires\":[\"/nonexistent/cc1obj\"]}"), "t.json", &cause), 0);
	assert_false(t.v[0].installed);
	lang_table_free(&t);
	assert_int_equal(lang_table_parse(&t, E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],"
	    "\"requires\":[\"/bin/sh\"]}"), "t.json", &cause), 0);
	assert_true(t.v[0].installed);
	lang_table_free(&t);
	expect_bad(E("{\"id\":\"a\",\"source_file\":\"a\",\"run\":[\"/bin/true\"],\"requires\":[\"cc1obj\"]}"), "requires entry");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_shebangs),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_java_source),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_validation),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
