/* Unit tests: validation of the job model and its normalized JSON round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"
#include "util.h"

static struct conf C;
static struct lang_table T;

/* Loads the defaults and a table with python, bash and a language whose toolchain is missing. */
static int setup(void **state)
{
	char path[] = "/tmp/corral-langs-XXXXXX", *cause = NULL;
	const char *table = "{\"languages\": ["
	    "{\"id\":\"python\",\"aliases\":[\"python3\",\"py\"],\"source_file\":\"main.py\",\"run\":[\"/bin/sh\",\"main.py\"]},"
	    "{\"id\":\"bash\",\"aliases\":[\"sh\"],\"source_file\":\"main.sh\",\"run\":[\"/bin/sh\",\"main.sh\"]},"
	    "{\"id\":\"java\",\"source_file\":\"Main.java\",\"packages\":[\"default-jdk\"],\"memory_mb\":1024,"
	    "\"processes\":256,\"run\":[\"/nonexistent/java\",\"Main\"]}]}";
	int fd = mkstemp(path);
	(void)state;
	assert_true(write(fd, table, strlen(table)) == (ssize_t)strlen(table));
	close(fd);
	conf_init(&C);
	assert_int_equal(lang_table_load(&T, path, &cause), 0);
	unlink(path);
	return 0;
}

/* Frees the fixtures. */
static int teardown(void **state)
{
	(void)state;
	lang_table_free(&T);
	conf_free(&C);
	return 0;
}

/* Parses text and validates it; returns job_parse's result. */
static int parse(const char *text, struct job *j, struct job_error *err)
{
	json_object *o = json_tokener_parse(text);
	int rc = job_parse(j, o, &C, &T, err);
	json_object_put(o);
	return rc;
}

/* Expects text to be refused with code and field. */
static void refused(const char *text, const char *code, const char *field)
{
	struct job j;
	struct job_error err;
	memset(&err, 0, sizeof err);
	if (parse(text, &j, &err) == 0) {
		job_free(&j);
		fail_msg("accepted: %s", text);
	}
	assert_int_equal(err.http, 400);
	assert_string_equal(err.code, code);
	assert_string_equal(err.field, field);
	assert_true(strlen(err.msg) > 10);
}

/* A minimal request gets the documented defaults. */
static void test_defaults(void **state)
{
	struct job j;
	struct job_error err;
	(void)state;
	assert_int_equal(parse("{\"language\":\"python3\",\"code\":\"print(1)\"}", &j, &err), 0);
	assert_string_equal(j.lang->id, "python");
	assert_string_equal(j.code, "print(1)");
	assert_int_equal(j.lim.wall_s, 60);
	assert_int_equal(j.lim.cpu_s, 60);
	assert_int_equal(j.lim.memory_mb, 512);
	assert_int_equal(j.lim.processes, 128);
	assert_int_equal(j.lim.disk_mb, 100);
	assert_int_equal(j.lim.output_bytes, 1 << 20);
	assert_int_equal(j.lim.vcpu, 1);
	assert_false(j.network);
	assert_int_equal(j.nenv, 0);
	assert_null(j.stdin_data);
	job_free(&j);
}

/* network_mode "semitrusted" is accepted and carried as network = true. */
static void test_semitrusted(void **state)
{
	struct job j;
	struct job_error err;
	(void)state;
	assert_int_equal(parse("{\"language\":\"python\",\"code\":\"x\",\"network_mode\":\"semitrusted\"}",
	    &j, &err), 0);
	assert_true(j.network);
	job_free(&j);
}

/* Every field of the job model is carried. */
static void test_full(void **state)
{
	struct job j;
	struct job_error err;
	(void)state;
	assert_int_equal(parse("{\"language\":\"BASH\",\"code\":\"echo $A\",\"stdin\":\"in\",\"env\":{\"A\":\"b\",\"N\":5},"
	    "\"args\":[\"x\",\"y\"],\"ttl\":5,\"cpu_time\":3,\"memory_mb\":256,\"processes\":10,\"disk_mb\":20,"
	    "\"max_output_bytes\":2048,\"vcpu\":2,\"network_mode\":\"zerotrust\",\"return_artifact\":true,"
	    "\"expected_output\":\"b\\n\",\"input_files\":[{\"filename\":\"data.csv\",\"content\":\"YSxi\"}],"
	    "\"return_wasm_artifact\":false,\"some_future_field\":1}", &j, &err), 0);
	assert_string_equal(j.lang->id, "bash");
	assert_string_equal(j.stdin_data, "in");
	assert_int_equal(j.nenv, 2);
	assert_string_equal(j.env[0], "A=b");
	assert_string_equal(j.env[1], "N=5");
	assert_null(j.env[2]);
	assert_int_equal(j.nargs, 2);
	assert_string_equal(j.args[1], "y");
	assert_int_equal(j.lim.wall_s, 5);
	assert_int_equal(j.lim.cpu_s, 3);
	assert_int_equal(j.lim.memory_mb, 256);
	assert_int_equal(j.lim.vcpu, 2);
	assert_false(j.network);
	assert_true(j.return_artifact);
	assert_int_equal(j.nfiles, 1);
	assert_string_equal(j.files[0].name, "data.csv");
	assert_int_equal(j.files[0].len, 3);
	assert_memory_equal(j.files[0].data, "a,b", 3);
	job_free(&j);
}

/* The normalized JSON validates again to the same job (what the worker does). */
static void test_roundtrip(void **state)
{
	struct job a, b;
	struct job_error err;
	json_object *o;
	(void)state;
	assert_int_equal(parse("{\"language\":\"py\",\"code\":\"a\\u0000b\",\"env\":{\"K\":\"v=w\"},\"ttl\":7,"
	    "\"input_files\":[{\"filename\":\"f\",\"content_base64\":\"AAEC\"}]}", &a, &err), 0);
	assert_int_equal(a.code_len, 3);
	o = job_to_json(&a);
	assert_int_equal(job_parse(&b, o, &C, &T, &err), 0);
	assert_string_equal(b.lang->id, "python");
	assert_int_equal(b.code_len, 3);
	assert_memory_equal(b.code, "a\0b", 3);
	assert_string_equal(b.env[0], "K=v=w");
	assert_int_equal(b.lim.wall_s, 7);
	assert_int_equal(b.lim.cpu_s, 7);
	assert_int_equal(b.files[0].len, 3);
	assert_memory_equal(b.files[0].data, "\0\1\2", 3);
	json_object_put(o);
	job_free(&a);
	job_free(&b);
}

/* Missing, mistyped and unknown values name their field. */
static void test_refusals(void **state)
{
	(void)state;
	refused("{\"code\":\"x\"}", "MISSING_FIELD", "language");
	refused("{\"language\":\"python\"}", "MISSING_FIELD", "code");
	refused("{\"language\":\"python\",\"code\":null}", "MISSING_FIELD", "code");
	refused("{\"language\":\"python\",\"code\":5}", "INVALID_FIELD", "code");
	refused("{\"language\":7,\"code\":\"x\"}", "INVALID_FIELD", "language");
	refused("{\"language\":\"brainfudge\",\"code\":\"x\"}", "UNKNOWN_LANGUAGE", "language");
	refused("{\"language\":\"java\",\"code\":\"x\"}", "LANGUAGE_NOT_INSTALLED", "language");
	refused("{\"language\":\"python\",\"code\":\"x\",\"ttl\":0}", "OUT_OF_RANGE", "ttl");
	refused("{\"language\":\"python\",\"code\":\"x\",\"ttl\":901}", "OUT_OF_RANGE", "ttl");
	refused("{\"language\":\"python\",\"code\":\"x\",\"ttl\":\"5\"}", "INVALID_FIELD", "ttl");
	refused("{\"language\":\"python\",\"code\":\"x\",\"ttl\":1.5}", "INVALID_FIELD", "ttl");
	refused("{\"language\":\"python\",\"code\":\"x\",\"vcpu\":9}", "OUT_OF_RANGE", "vcpu");
	refused("{\"language\":\"python\",\"code\":\"x\",\"memory_mb\":4096}", "OUT_OF_RANGE", "memory_mb");
	refused("{\"language\":\"python\",\"code\":\"x\",\"network_mode\":\"open\"}", "INVALID_FIELD", "network_mode");
	refused("{\"language\":\"python\",\"code\":\"x\",\"network_mode\":\"Semitrusted\"}", "INVALID_FIELD", "network_mode");
	refused("{\"language\":\"python\",\"code\":\"x\",\"network_mode\":1}", "INVALID_FIELD", "network_mode");
	refused("{\"language\":\"python\",\"code\":\"x\",\"env\":[]}", "INVALID_FIELD", "env");
	refused("{\"language\":\"python\",\"code\":\"x\",\"env\":{\"A=B\":\"c\"}}", "INVALID_FIELD", "env");
	refused("{\"language\":\"python\",\"code\":\"x\",\"env\":{\"1A\":\"c\"}}", "INVALID_FIELD", "env");
	refused("{\"language\":\"python\",\"code\":\"x\",\"env\":{\"A\":{}}}", "INVALID_FIELD", "env");
	refused("{\"language\":\"python\",\"code\":\"x\",\"args\":[1]}", "INVALID_FIELD", "args");
	refused("{\"language\":\"python\",\"code\":\"x\",\"return_artifact\":\"yes\"}", "INVALID_FIELD", "return_artifact");
	refused("[1,2]", "INVALID_REQUEST", "");
}

/* Input file names and sizes follow the contract's rules. */
static void test_files(void **state)
{
	char big[600];
	(void)state;
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a/b\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"..\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a..b\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a\\u0000b\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a\\u0001b\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a\\nb\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"main.py\",\"content\":\"\"}]}",
	    "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a\",\"content\":\"\"},"
	    "{\"filename\":\"a\",\"content\":\"\"}]}", "INVALID_FILENAME", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a\",\"content\":\"!!\"}]}",
	    "INVALID_FILE", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"a\"}]}",
	    "INVALID_FILE", "input_files");
	refused("{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{},{},{},{},{},{},{},{},{},{},{}]}",
	    "TOO_MANY_FILES", "input_files");
	memset(big, 'a', sizeof big);
	snprintf(big, sizeof big, "{\"language\":\"python\",\"code\":\"x\",\"input_files\":[{\"filename\":\"%0257d\",\"content\":\"\"}]}", 0);
	refused(big, "INVALID_FILENAME", "input_files");
}

/* Language defaults raise limits where the runtime needs more; vcpu caps memory. */
static void test_language_limits(void **state)
{
	struct job j;
	struct job_error err;
	(void)state;
	assert_int_equal(parse("{\"language\":\"python\",\"code\":\"x\",\"memory_mb\":2048}", &j, &err), 0);
	assert_int_equal(j.lim.memory_mb, 2048);
	job_free(&j);
	assert_int_equal(parse("{\"language\":\"python\",\"code\":\"x\",\"vcpu\":3,\"memory_mb\":6144}", &j, &err), 0);
	assert_int_equal(j.lim.memory_mb, 6144);
	job_free(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_semitrusted),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_language_limits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
