/* spawnloop: the bare floor for bench/run. Runs PROGRAM ARGS... in N parallel loops for S
 * seconds (fork + execve + wait, stdout and stderr to /dev/null) and prints one line:
 * "SPAWN loops=N runs=R seconds=T rate=R/s p50_ms=.. p95_ms=.. p99_ms=.. failed=F".
 * usage: spawnloop N SECONDS PROGRAM [ARGS...] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Starts one run; returns its pid. */
static pid_t start(char **argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int main(int argc, char **argv)
{
	int n, failed = 0;
	double secs, t0, end, *lat, *begun;
	pid_t *pids;
	size_t runs = 0, cap = 1 << 20;
	if (argc < 4 || (n = atoi(argv[1])) < 1 || (secs = atof(argv[2])) <= 0) {
		fprintf(stderr, "usage: spawnloop N SECONDS PROGRAM [ARGS...]\n");
		return 2;
	}
	lat = malloc(cap * sizeof *lat);
	pids = calloc((size_t)n, sizeof *pids);
	begun = calloc((size_t)n, sizeof *begun);
	t0 = now_ms();
	end = t0 + secs * 1e3;
	for (int i = 0; i < n; i++) {
		begun[i] = now_ms();
		pids[i] = start(argv + 3);
	}
	for (int live = n; live > 0;) {
		int st;
		pid_t p = wait(&st);
		if (p < 0)
			break;
		for (int i = 0; i < n; i++) {
			if (pids[i] != p)
				continue;
			double t = now_ms();
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				failed++;
			if (runs < cap)
				lat[runs++] = t - begun[i];
			if (t < end) {
				begun[i] = t;
				pids[i] = start(argv + 3);
			} else {
				pids[i] = 0;
				live--;
			}
		}
	}
	double el = (now_ms() - t0) / 1e3;
	qsort(lat, runs, sizeof *lat, cmp);
	printf("SPAWN loops=%d runs=%zu seconds=%.2f rate=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f failed=%d\n",
	    n, runs, el, runs / el, runs ? lat[runs / 2] : 0, runs ? lat[runs * 95 / 100] : 0,
	    runs ? lat[runs * 99 / 100] : 0, failed);
	return 0;
}
