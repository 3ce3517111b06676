/* corral-fcgi: the FastCGI app. Loads the config, the master key and the language table,
 * opens the unix socket nginx connects to, drops root, and preforks fcgi_processes
 * children that each hold one PostgreSQL connection and answer requests. The parent only
 * respawns children and stops them on SIGTERM/SIGINT. Logs go to stderr. */
#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "handlers.h"
#include "http.h"
#include "keys.h"
#include "lang.h"
#include "util.h"

/* A child that dies sooner than this after its start is respawned after a pause. */
#define RESPAWN_FAST_MS	1000

static volatile sig_atomic_t main_stopping;

/* Notes that the parent was asked to stop. */
static void main_on_signal(int sig)
{
	(void)sig;
	main_stopping = 1;
}

/* Prints the usage line to stderr and exits with status 2. */
static void main_usage(void)
{
	fprintf(stderr, "usage: corral-fcgi [-c CONFIG]\n");
	exit(2);
}

/* Removes a stale socket at path (only a socket: never another kind of file). */
static void main_unlink_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && unlink(path) < 0)
		die("cannot remove the stale socket %s: %s", path, strerror(errno));
	if (lstat(path, &st) == 0)
		die("%s exists and is not a socket", path);
}

/* Opens the listening socket at c->fcgi_socket, owned by fcgi_user (when root) and mode
 * 0660; returns its descriptor. Dies on failure (startup only). */
static int main_open_socket(const struct conf *c, const struct passwd *pw)
{
	mode_t old;
	int fd;

	if (c->fcgi_socket[0] != '/')
		die("fcgi_socket must be an absolute path, not \"%s\"", c->fcgi_socket);
	main_unlink_stale(c->fcgi_socket);
	old = umask(0117);
	fd = FCGX_OpenSocket(c->fcgi_socket, 128);
	umask(old);
	if (fd < 0)
		die("cannot listen on %s", c->fcgi_socket);
	if (geteuid() == 0 && chown(c->fcgi_socket, pw->pw_uid, pw->pw_gid) < 0)
		die("chown %s: %s", c->fcgi_socket, strerror(errno));
	if (chmod(c->fcgi_socket, 0660) < 0)
		die("chmod %s: %s", c->fcgi_socket, strerror(errno));
	return fd;
}

/* Becomes pw when running as root; refuses to go on as uid 0 in any case. */
static void main_drop_root(const struct passwd *pw)
{
	if (geteuid() == 0 || getuid() == 0) {
		if (pw->pw_uid == 0)
			die("fcgi_user %s is root; the app never runs as root", pw->pw_name);
		if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
		    setuid(pw->pw_uid) < 0)
			die("cannot become %s: %s", pw->pw_name, strerror(errno));
		if (setuid(0) == 0)
			die("could regain root after dropping it");
		log_info("running as %s (uid %d)", pw->pw_name, (int)pw->pw_uid);
	}
	if (geteuid() == 0 || getuid() == 0 || getegid() == 0)
		die("refusing to run as root");
}

/* http_read_fn over a FastCGI input stream. */
static ssize_t main_fcgi_read(void *ctx, char *p, size_t n)
{
	int want = n > INT_MAX ? INT_MAX : (int)n;
	return FCGX_GetStr(p, want, ctx);
}

/* Answers one accepted request and writes the whole answer to its output stream. */
static void main_serve_one(struct app *app, FCGX_Request *rq, long long max_body)
{
	struct http_req req;
	struct http_resp resp;
	uint64_t t0 = util_mono_ms();
	size_t len;
	char *out;

	http_req_init(&req);
	http_resp_init(&resp);
	http_req_from_params(&req, rq->envp);
	if (http_req_read_body(&req, main_fcgi_read, rq->in, max_body, &resp) == 0)
		app_handle(app, &req, &resp);
	out = http_resp_serialize(&resp, &len);
	if (FCGX_PutStr(out, (int)len, rq->out) < 0)
		log_warn("%s %s: the client went away", req.method, req.path);
	log_info("%s %s %d %llums", req.method, req.path, resp.status > 0 ? resp.status : 500,
	    (unsigned long long)(util_mono_ms() - t0));
	free(out);
	http_resp_free(&resp);
	http_req_free(&req);
}

/* A child's life: one database connection, then accept and answer until killed. */
static void main_child(int fd, const struct conf *c, const struct lang_table *langs,
    const unsigned char *master)
{
	struct app app;
	FCGX_Request rq;
	char *cause = NULL;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);
	if (app_init(&app, c, langs, master, &cause) < 0)
		die("%s", cause);
	if (FCGX_InitRequest(&rq, fd, 0) != 0)
		die("FCGX_InitRequest failed");
	while (FCGX_Accept_r(&rq) >= 0) {
		main_serve_one(&app, &rq, c->max_body);
		FCGX_Finish_r(&rq);
	}
	log_error("FCGX_Accept_r failed; child exiting");
	app_free(&app);
	_exit(1);
}

/* Forks one child; returns its pid (or -1 when fork failed, logged). */
static pid_t main_spawn(int fd, const struct conf *c, const struct lang_table *langs,
    const unsigned char *master)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		main_child(fd, c, langs, master);
	return pid;
}

/* Installs the parent's stop handler (no SA_RESTART so waitpid returns) and ignores
 * SIGPIPE (a client that goes away must not kill a child). */
static void main_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = main_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Sleeps ms milliseconds unless a signal comes first. */
static void main_pause(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Keeps n children alive until asked to stop, then stops them. */
static void main_supervise(int fd, const struct conf *c, const struct lang_table *langs,
    const unsigned char *master)
{
	int n = c->fcgi_processes;
	pid_t *kids = xcalloc((size_t)n, sizeof *kids);
	uint64_t *born = xcalloc((size_t)n, sizeof *born);

	for (int i = 0; i < n; i++) {
		kids[i] = main_spawn(fd, c, langs, master);
		born[i] = util_mono_ms();
	}
	log_info("listening on %s with %d processes", c->fcgi_socket, n);
	while (!main_stopping) {
		int st, i;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0) {
			if (errno != EINTR)
				main_pause(RESPAWN_FAST_MS);
			continue;
		}
		for (i = 0; i < n && kids[i] != p; i++)
			;
		if (i == n)
			continue;
		if (WIFSIGNALED(st))
			log_error("child %d killed by signal %d", (int)p, WTERMSIG(st));
		else
			log_error("child %d exited with status %d", (int)p, WEXITSTATUS(st));
		kids[i] = -1;
		if (main_stopping)
			break;
		if (util_mono_ms() - born[i] < RESPAWN_FAST_MS)
			main_pause(RESPAWN_FAST_MS);
		if (main_stopping)
			break;
		kids[i] = main_spawn(fd, c, langs, master);
		born[i] = util_mono_ms();
	}
	log_info("stopping %d processes", n);
	for (int i = 0; i < n; i++) {
		if (kids[i] > 0)
			kill(kids[i], SIGTERM);
	}
	for (int i = 0; i < n; i++) {
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	}
	free(kids);
	free(born);
}

/* Starts the app: config, key, languages, socket, privileges, then the supervisor. */
int main(int argc, char **argv)
{
	struct conf c;
	struct lang_table langs = { NULL, 0 };
	unsigned char master[KEYS_MASTER_LEN];
	const char *cpath = NULL;
	const struct passwd *pw;
	char *cause = NULL;
	int opt, fd;

	log_init("corral-fcgi");
	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		if (opt == 'c')
			cpath = optarg;
		else
			main_usage();
	}
	if (optind != argc)
		main_usage();
	conf_init(&c);
	if (conf_load(&c, conf_path(cpath), &cause) < 0)
		die("%s", cause);
	/* The master key file is root-only: read it before giving root up. */
	if (keys_load_master(c.master_key_file, master, &cause) < 0)
		die("%s", cause);
	if (lang_table_load(&langs, c.languages_file, &cause) < 0)
		die("%s", cause);
	pw = getpwnam(c.fcgi_user);
	if (pw == NULL && geteuid() == 0)
		die("fcgi_user %s does not exist", c.fcgi_user);
	if (pw == NULL)
		pw = getpwuid(geteuid());
	if (pw == NULL)
		die("cannot find the current user");
	if (FCGX_Init() != 0)
		die("FCGX_Init failed");
	fd = main_open_socket(&c, pw);
	main_drop_root(pw);
	main_signals();
	main_supervise(fd, &c, &langs, master);
	if (unlink(c.fcgi_socket) < 0 && errno != ENOENT)
		log_warn("cannot remove %s: %s", c.fcgi_socket, strerror(errno));
	explicit_bzero(master, sizeof master);
	lang_table_free(&langs);
	conf_free(&c);
	log_info("stopped");
	return 0;
}
