/* corral-fcgi: the FastCGI app. Loads the config, the master key and the language table,
 * opens the unix socket nginx connects to, drops root, and preforks fcgi_processes
 * children that each hold one PostgreSQL connection and answer requests. The parent (the
 * supervisor) respawns children, stops them on SIGTERM/SIGINT, and is the host's only
 * LISTENing connection: it LISTENs on a channel of its own ("corral_done_<random>"), and
 * a finished job whose jobs.waiter is "<that channel> <n>" is handed to child n as a line
 * "<job id>" on its pipe (sql/006). Logs go to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <openssl/rand.h>
#include <poll.h>
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
#include "db.h"
#include "handlers.h"
#include "http.h"
#include "keys.h"
#include "lang.h"
#include "util.h"

/* A child that dies sooner than this after its start is respawned after a pause. */
#define RESPAWN_FAST_MS	1000

static volatile sig_atomic_t main_stopping;

/* The supervisor: its children, their pipes and its database connection. */
struct sup {
	const struct conf	*c;
	int			 n;
	pid_t			*kids;
	uint64_t		*born;
	int			*pipe_w;	/* write end of child i's wake-up pipe, -1 when none */
	char			 channel[64];	/* "corral_done_<16 hex>" */
	PGconn			*db;		/* NULL while the database is away */
	uint64_t		 next_connect;
};

/* Notes that the parent was asked to stop. */
static void main_on_signal(int sig)
{
	(void)sig;
	main_stopping = 1;
}

/* Does nothing: SIGCHLD only has to interrupt the supervisor's ppoll. */
static void main_on_child(int sig)
{
	(void)sig;
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
    const unsigned char *master, const char *waiter, int wake_fd)
{
	struct app app;
	FCGX_Request rq;
	char *cause = NULL;
	sigset_t none;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);
	if (app_init(&app, c, langs, master, waiter, wake_fd, &cause) < 0)
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

/* Installs the parent's stop handler (no SA_RESTART so its wait returns) and ignores
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

/* Forks child i with a fresh wake-up pipe; sets its pid (-1 when that failed, logged). */
static void main_spawn(struct sup *sp, int i, int fd, const struct lang_table *langs,
    const unsigned char *master)
{
	int pv[2];
	pid_t pid;

	sp->kids[i] = -1;
	if (sp->pipe_w[i] >= 0)
		close(sp->pipe_w[i]);
	sp->pipe_w[i] = -1;
	if (pipe2(pv, O_NONBLOCK) < 0) {
		log_error("pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(pv[0]);
		close(pv[1]);
		return;
	}
	if (pid == 0) {
		char *waiter = xasprintf("%s %d", sp->channel, i);
		close(pv[1]);
		for (int k = 0; k < sp->n; k++)
			if (sp->pipe_w[k] >= 0)
				close(sp->pipe_w[k]);
		if (sp->db != NULL)
			close(PQsocket(sp->db));	/* the supervisor's; never PQfinish it here */
		main_child(fd, sp->c, langs, master, waiter, pv[0]);
	}
	close(pv[0]);
	sp->pipe_w[i] = pv[1];
	sp->kids[i] = pid;
	sp->born[i] = util_mono_ms();
}

/* Writes one line to child i's pipe; a full pipe drops it (the child looks at its job again
 * on its own after a while). */
static void main_tell(struct sup *sp, int i, const char *line)
{
	if (i < 0 || i >= sp->n || sp->pipe_w[i] < 0)
		return;
	if (write(sp->pipe_w[i], line, strlen(line)) < 0 && errno != EAGAIN)
		log_warn("child %d: wake-up pipe: %s", i, strerror(errno));
}

/* Connects and LISTENs on the supervisor's channel; on success tells every child to look at
 * its job again (NOTIFYs sent while there was no connection are lost). */
static void main_connect(struct sup *sp)
{
	char *cause = NULL, *sql;
	if (sp->db != NULL)
		PQfinish(sp->db);
	sp->db = db_connect(sp->c->db, "corral-fcgi-relay", &cause);
	if (sp->db != NULL) {
		sql = xasprintf("LISTEN %s", sp->channel);
		if (db_exec(sp->db, sql, &cause) < 0) {
			PQfinish(sp->db);
			sp->db = NULL;
		}
		free(sql);
	}
	if (sp->db == NULL) {
		log_warn("supervisor: %s (retrying every second)", cause);
		free(cause);
		sp->next_connect = util_mono_ms() + 1000;
		return;
	}
	log_info("supervisor: listening on %s", sp->channel);
	for (int i = 0; i < sp->n; i++)
		main_tell(sp, i, "R\n");
}

/* Reads the notifications that arrived: "<n> <job id>" goes to child n as "<job id>\n". */
static void main_relay(struct sup *sp)
{
	PGnotify *nt;
	if (PQconsumeInput(sp->db) == 0) {
		log_warn("supervisor: database: %s", PQerrorMessage(sp->db));
		PQfinish(sp->db);
		sp->db = NULL;
		sp->next_connect = util_mono_ms();
		return;
	}
	while ((nt = PQnotifies(sp->db)) != NULL) {
		char *end, line[64];
		long i = strtol(nt->extra, &end, 10);
		if (end != nt->extra && *end == ' ' && strlen(end + 1) < sizeof line - 1 && i >= 0 && i < sp->n) {
			snprintf(line, sizeof line, "%s\n", end + 1);
			main_tell(sp, (int)i, line);
		}
		PQfreemem(nt);
	}
}

/* Reaps children that ended and starts them again (after a pause when they die young). */
static void main_reap(struct sup *sp, int fd, const struct lang_table *langs,
    const unsigned char *master)
{
	pid_t p;
	int st;
	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		int i;
		for (i = 0; i < sp->n && sp->kids[i] != p; i++)
			;
		if (i == sp->n)
			continue;
		if (WIFSIGNALED(st))
			log_error("child %d killed by signal %d", (int)p, WTERMSIG(st));
		else
			log_error("child %d exited with status %d", (int)p, WEXITSTATUS(st));
		sp->kids[i] = -1;
		if (main_stopping)
			return;
		if (util_mono_ms() - sp->born[i] < RESPAWN_FAST_MS)
			main_pause(RESPAWN_FAST_MS);
		if (main_stopping)
			return;
		main_spawn(sp, i, fd, langs, master);
	}
}

/* Keeps n children alive and relays their answers until asked to stop, then stops them. */
static void main_supervise(int fd, const struct conf *c, const struct lang_table *langs,
    const unsigned char *master)
{
	struct sup sp;
	unsigned char rnd[8];
	char hex[17];
	sigset_t block, orig;
	struct sigaction sa;
	int n = c->fcgi_processes;

	memset(&sp, 0, sizeof sp);
	sp.c = c;
	sp.n = n;
	sp.kids = xcalloc((size_t)n, sizeof *sp.kids);
	sp.born = xcalloc((size_t)n, sizeof *sp.born);
	sp.pipe_w = xcalloc((size_t)n, sizeof *sp.pipe_w);
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		die("no random bytes");
	util_hex(rnd, sizeof rnd, hex);
	snprintf(sp.channel, sizeof sp.channel, "corral_done_%s", hex);
	/* Signals reach the supervisor only inside ppoll (no lost wake-up between a check and
	 * the wait); the children unblock them. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = main_on_child;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	for (int i = 0; i < n; i++) {
		sp.pipe_w[i] = -1;
		main_spawn(&sp, i, fd, langs, master);
	}
	log_info("listening on %s with %d processes", c->fcgi_socket, n);
	main_connect(&sp);
	while (!main_stopping) {
		struct pollfd p = { .fd = -1, .events = POLLIN };
		struct timespec ts = { 1, 0 };
		main_reap(&sp, fd, langs, master);
		if (main_stopping)
			break;
		if (sp.db == NULL && util_mono_ms() >= sp.next_connect)
			main_connect(&sp);
		if (sp.db != NULL)
			p.fd = PQsocket(sp.db);
		if (ppoll(&p, 1, sp.db != NULL ? NULL : &ts, &orig) > 0 && sp.db != NULL)
			main_relay(&sp);
	}
	log_info("stopping %d processes", n);
	for (int i = 0; i < n; i++) {
		if (sp.kids[i] > 0)
			kill(sp.kids[i], SIGTERM);
	}
	for (int i = 0; i < n; i++) {
		if (sp.kids[i] > 0)
			waitpid(sp.kids[i], NULL, 0);
		if (sp.pipe_w[i] >= 0)
			close(sp.pipe_w[i]);
	}
	if (sp.db != NULL)
		PQfinish(sp.db);
	free(sp.kids);
	free(sp.born);
	free(sp.pipe_w);
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
