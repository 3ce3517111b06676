/* Unit tests: the configuration file parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

/* Writes text to a temporary file and returns its malloc'd path. */
static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/corral-conf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Values override defaults; comments (whole-line and inline) and blank lines are ignored. */
static void test_load(void **state)
{
	struct conf c;
	char *cause = NULL;
	char *path = write_tmp("# comment\n\ndb = host=/tmp/x port=5 dbname=corral\n"
	    "lease = 7   # seconds\nweak_limits = yes\noutput_max = 33554432\nworker_name =\n");
	(void)state;
	conf_init(&c);
	assert_int_equal(c.lease, 30);
	assert_int_equal(conf_load(&c, path, &cause), 0);
	assert_string_equal(c.db, "host=/tmp/x port=5 dbname=corral");
	assert_int_equal(c.lease, 7);
	assert_true(c.weak_limits);
	assert_int_equal(c.output_max, 33554432LL);
	assert_string_equal(c.worker_name, "");
	assert_int_equal(c.wall_max, 900);
	conf_free(&c);
	unlink(path);
	free(path);
}

/* Bad lines are refused with the line number and the rule. */
static void test_errors(void **state)
{
	struct conf c;
	char *cause = NULL;
	char *p1 = write_tmp("lease = 5\n\nnope = 1\n");
	char *p2 = write_tmp("lease = five\n");
	char *p3 = write_tmp("lease = 1\n");
	char *p4 = write_tmp("just words\n");
	char *p5 = write_tmp("wall_default = 100\nwall_max = 50\n");
	(void)state;
	conf_init(&c);
	assert_int_equal(conf_load(&c, p1, &cause), -1);
	assert_non_null(strstr(cause, "line 3"));
	assert_non_null(strstr(cause, "unknown setting 'nope'"));
	free(cause);
	assert_int_equal(conf_load(&c, p2, &cause), -1);
	assert_non_null(strstr(cause, "whole number"));
	free(cause);
	assert_int_equal(conf_load(&c, p3, &cause), -1);
	assert_non_null(strstr(cause, "from 2 to 3600"));
	free(cause);
	assert_int_equal(conf_load(&c, p4, &cause), -1);
	assert_non_null(strstr(cause, "key = value"));
	free(cause);
	assert_int_equal(conf_load(&c, p5, &cause), -1);
	assert_non_null(strstr(cause, "wall_default"));
	free(cause);
	assert_int_equal(conf_load(&c, "/nonexistent/corral.conf", &cause), -1);
	free(cause);
	conf_free(&c);
	for (char **p = (char *[]){ p1, p2, p3, p4, p5, NULL }; *p; p++) {
		unlink(*p);
		free(*p);
	}
}

/* The sample file in the repository is valid and matches the built-in defaults. */
static void test_sample(void **state)
{
	struct conf a, b;
	char *cause = NULL, *path;
	(void)state;
	path = malloc(strlen(getenv("abs_top_srcdir") ? getenv("abs_top_srcdir") : CORRAL_SRCDIR) + 32);
	sprintf(path, "%s/corral.conf.sample", getenv("abs_top_srcdir") ? getenv("abs_top_srcdir") : CORRAL_SRCDIR);
	conf_init(&a);
	conf_init(&b);
	assert_int_equal(conf_load(&a, path, &cause), 0);
	assert_string_equal(a.db, b.db);
	assert_string_equal(a.fcgi_socket, b.fcgi_socket);
	assert_int_equal(a.lease, b.lease);
	assert_int_equal(a.sync_wait, b.sync_wait);
	assert_int_equal(a.memory_default, b.memory_default);
	assert_int_equal(a.output_default, b.output_default);
	assert_int_equal(a.code_max, b.code_max);
	assert_int_equal(a.weak_limits, b.weak_limits);
	conf_free(&a);
	conf_free(&b);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_sample),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
