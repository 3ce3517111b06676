/*
 * sbx_net.c: network mode "semitrusted": egress to the outside world through
 * a veth pair and NAT (nftables masquerade), never to the host itself, its
 * LAN, private, loopback, link-local or multicast ranges.
 *
 * Per run (slot side, before the proxy is released):
 *   - index n in 0..SBN_MAX-1, claimed by creating the veth "crh<n>" (EEXIST
 *     means another run, of this or another worker, holds it);
 *     `ip link add crh<n> type veth peer name eth0 netns <proxy pid>`;
 *   - host side 10.213.(n/64).(n%64*4+1)/30, box side ...+2/30, default route
 *     of the box via the host side (set by the proxy with ioctls);
 *   - an nftables table "inet corral_<n>" (fed to `nft -f` from a memfd):
 *     input from crh<n> dropped (the host's own addresses, v4 and v6);
 *     forwarding from crh<n> only for the box's source address, IPv4, not to
 *     another box or lo, DNS to the resolvers of /etc/resolv.conf allowed,
 *     then every blocked range and every network directly connected to the
 *     host (its LAN) dropped, the rest accepted and masqueraded; into crh<n>
 *     only established/related traffic.
 * After the run: `ip link del crh<n>` and `nft delete table inet corral_<n>`.
 * A worker that dies mid-run leaves no veth (it dies with the box's network
 * namespace); its table matches an interface that no longer exists and is
 * replaced when the index is claimed again.
 *
 * IPv4 forwarding: if net.ipv4.ip_forward is 0 it is switched on once, after
 * installing the table "inet corral_guard" that drops every forwarded packet
 * not from or to a crh* interface, so the host forwards nothing else than
 * before.  Both stay (host-level setup, like a daemon's sysctl).
 *
 * No shell: ip and nft run by execve with an argv array and an empty
 * environment; nothing touches a path the box can write.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "sbx.h"

#define SBN_MAX       16384            /* /30 links in 10.213.0.0/16 */
#define SBN_NET_A     10
#define SBN_NET_B     213
#define SBN_TRIES     32
#define SBN_RULES_MAX 16384

/* Destination ranges a box never reaches (besides the host's connected networks). */
static const char *const sbn_blocked[] = {
	"0.0.0.0/8",        /* "this network" */
	"10.0.0.0/8",       /* private */
	"100.64.0.0/10",    /* carrier-grade NAT, private in practice */
	"127.0.0.0/8",      /* loopback */
	"169.254.0.0/16",   /* link-local: cloud metadata services */
	"172.16.0.0/12",    /* private */
	"192.0.0.0/24",     /* IETF protocol assignments */
	"192.168.0.0/16",   /* private */
	"198.18.0.0/15",    /* benchmarking, used for internal networks */
	"224.0.0.0/4",      /* multicast */
	"240.0.0.0/4",      /* reserved and limited broadcast */
};

static struct {
	char ip[64], nft[64];   /* absolute paths, "" if not found */
	unsigned next;
	pid_t seeded_by;        /* slots are processes of their own: each starts its search elsewhere */
} N;

/* Picks the first executable path of a NULL-terminated list into dst; true if found. */
static bool sbn_find(char *dst, size_t size, const char *const *paths)
{
	for (size_t i = 0; paths[i] != NULL; i++)
		if (access(paths[i], X_OK) == 0) {
			snprintf(dst, size, "%s", paths[i]);
			return true;
		}
	dst[0] = '\0';
	return false;
}

/* Finds ip(8) and nft(8); 0, or -1 with cause when semitrusted cannot work here. */
int sbn_init(char **cause)
{
	static const char *const ips[] = { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip", NULL };
	static const char *const nfts[] = { "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", NULL };
	if (!sbn_find(N.ip, sizeof N.ip, ips))
		return sbx_set_error(cause, "ip(8) not found (package iproute2)");
	if (!sbn_find(N.nft, sizeof N.nft, nfts))
		return sbx_set_error(cause, "nft(8) not found (package nftables)");
	return 0;
}

/* Runs argv[0] with argv, an empty environment, fd 3 = in_fd (if >= 0); 0 if it exited 0, else -1 with its stderr in err. */
static int sbn_exec(char *const argv[], int in_fd, char *err, size_t errlen)
{
	static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", NULL };
	int ep[2];
	err[0] = '\0';
	if (pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(ep[0]);
		close(ep[1]);
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(ep[1], 2) < 0)
			_exit(126);
		if (in_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : in_fd >= 0 && dup2(in_fd, 3) < 0)
			_exit(126);
		syscall(SYS_close_range, in_fd >= 0 ? 4u : 3u, ~0u, 0u);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(ep[1]);
	size_t got = 0;
	for (;;) {
		ssize_t n = read(ep[0], err + got, errlen - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= errlen - 1) {
			char sink[512];
			while (read(ep[0], sink, sizeof sink) > 0)
				;
			break;
		}
	}
	err[got] = '\0';
	while (got > 0 && (err[got - 1] == '\n' || err[got - 1] == ' '))
		err[--got] = '\0';
	close(ep[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (err[0] == '\0')
		snprintf(err, errlen, "%s exited with status %d", argv[0],
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return -1;
}

/* Loads an nft ruleset text (nft -f /proc/self/fd/3 from a memfd); 0 or -1 with err. */
static int sbn_nft(const char *rules, char *err, size_t errlen)
{
	int fd = memfd_create("corral-nft", MFD_CLOEXEC);
	size_t len = strlen(rules);
	if (fd < 0 || write(fd, rules, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) < 0) {
		snprintf(err, errlen, "memfd: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *const argv[] = { N.nft, "-f", "/proc/self/fd/3", NULL };
	int rc = sbn_exec(argv, fd, err, errlen);
	close(fd);
	return rc;
}

/* Appends formatted text to the rules buffer; false when it is full. */
static bool __attribute__((format(printf, 3, 4))) sbn_add(char *buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, SBN_RULES_MAX - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= SBN_RULES_MAX - *len)
		return false;
	*len += (size_t)n;
	return true;
}

/* Switches IPv4 forwarding on if it is off, after installing the guard table; 0 or -1 with cause. */
static int sbn_forwarding(char **cause)
{
	char v = '0', err[512];
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return sbx_set_error(cause, "open ip_forward: %s", strerror(errno));
	if (read(fd, &v, 1) == 1 && v == '1') {
		close(fd);
		return 0;
	}
	static const char guard[] =
	    "add table inet corral_guard\n"
	    "delete table inet corral_guard\n"
	    "table inet corral_guard {\n"
	    "\tchain forward {\n"
	    "\t\ttype filter hook forward priority -20; policy accept;\n"
	    "\t\tiifname != \"crh*\" oifname != \"crh*\" drop\n"
	    "\t}\n"
	    "}\n";
	if (sbn_nft(guard, err, sizeof err) < 0) {
		close(fd);
		return sbx_set_error(cause, "nft (guard table): %s", err);
	}
	if (pwrite(fd, "1\n", 2, 0) != 2) {
		int e = errno;
		close(fd);
		return sbx_set_error(cause, "enabling ip_forward: %s", strerror(e));
	}
	close(fd);
	return 0;
}

/* Appends "ip daddr X drop" for every network the host reaches directly (its LAN, /proc/net/route). */
static bool sbn_add_connected(char *buf, size_t *len)
{
	FILE *f = fopen("/proc/net/route", "re");
	char line[512];
	if (f == NULL)
		return true;
	if (fgets(line, sizeof line, f) == NULL) {          /* header */
		fclose(f);
		return true;
	}
	bool ok = true;
	while (ok && fgets(line, sizeof line, f) != NULL) {
		char ifname[IFNAMSIZ + 1];
		unsigned long dst, gw, flags, mask;
		int refcnt, use, metric;
		if (sscanf(line, "%16s %lx %lx %lx %d %d %d %lx", ifname, &dst, &gw, &flags, &refcnt,
		    &use, &metric, &mask) != 8)
			continue;
		if (gw != 0 || mask == 0 || strncmp(ifname, "crh", 3) == 0 || strcmp(ifname, "lo") == 0)
			continue;
		struct in_addr a = { .s_addr = (uint32_t)dst }, m = { .s_addr = (uint32_t)mask };
		char as[INET_ADDRSTRLEN];
		int bits = __builtin_popcount(m.s_addr);
		if (inet_ntop(AF_INET, &a, as, sizeof as) == NULL)
			continue;
		ok = sbn_add(buf, len, "\t\tip daddr %s/%d reject with icmp type admin-prohibited\n", as, bits);
	}
	fclose(f);
	return ok;
}

/* Appends DNS accept rules for the IPv4 nameservers of /etc/resolv.conf. */
static bool sbn_add_resolvers(char *buf, size_t *len)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	char line[512], addr[128];
	if (f == NULL)
		return true;
	bool ok = true;
	while (ok && fgets(line, sizeof line, f) != NULL) {
		struct in_addr a;
		if (sscanf(line, " nameserver %127s", addr) != 1 || inet_pton(AF_INET, addr, &a) != 1)
			continue;
		uint8_t first = (uint8_t)(ntohl(a.s_addr) >> 24);
		if (first == 127 || first == 0)
			continue;                               /* a resolver on the host itself stays out */
		ok = sbn_add(buf, len, "\t\tip daddr %s udp dport 53 accept\n"
		    "\t\tip daddr %s tcp dport 53 accept\n", addr, addr);
	}
	fclose(f);
	return ok;
}

/* Builds the run's ruleset text into buf (SBN_RULES_MAX bytes); false if too long. */
static bool sbn_rules(char *buf, const struct sbn_link *l)
{
	char box[INET_ADDRSTRLEN];
	struct in_addr b = { .s_addr = l->box_ip };
	size_t len = 0;
	int n = l->idx;
	inet_ntop(AF_INET, &b, box, sizeof box);
	bool ok = sbn_add(buf, &len,
	    "add table inet corral_%d\n"
	    "delete table inet corral_%d\n"
	    "table inet corral_%d {\n"
	    "\tchain input {\n"
	    "\t\ttype filter hook input priority -10; policy accept;\n"
	    "\t\tiifname \"crh%d\" reject with icmpx type admin-prohibited\n"
	    "\t}\n"
	    "\tchain forward {\n"
	    "\t\ttype filter hook forward priority -10; policy accept;\n"
	    "\t\toifname \"crh%d\" ct state established,related accept\n"
	    "\t\toifname \"crh%d\" drop\n"
	    "\t\tiifname \"crh%d\" jump egress\n"
	    "\t}\n"
	    "\tchain egress {\n"
	    "\t\tmeta nfproto != ipv4 drop\n"
	    "\t\tip saddr != %s drop\n"
	    "\t\toifname \"crh*\" drop\n"
	    "\t\toifname \"lo\" drop\n",
	    n, n, n, n, n, n, n, box);
	ok = ok && sbn_add_resolvers(buf, &len);
	for (size_t i = 0; ok && i < sizeof sbn_blocked / sizeof sbn_blocked[0]; i++)
		ok = sbn_add(buf, &len, "\t\tip daddr %s reject with icmp type admin-prohibited\n", sbn_blocked[i]);
	ok = ok && sbn_add_connected(buf, &len);
	ok = ok && sbn_add(buf, &len,
	    "\t\taccept\n"
	    "\t}\n"
	    "\tchain postrouting {\n"
	    "\t\ttype nat hook postrouting priority 100; policy accept;\n"
	    "\t\tip saddr %s oifname != \"crh%d\" masquerade\n"
	    "\t}\n"
	    "}\n", box, n);
	return ok;
}

/* Sets an interface's IPv4 address/30 and brings it up (ioctls in the caller's netns); 0 or errno. */
int sbn_ifconf(const char *ifname, uint32_t addr, uint32_t mask)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	int e = 0, s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errno;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		e = errno;
	sin->sin_addr.s_addr = mask;
	if (e == 0 && ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		e = errno;
	if (e == 0 && ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		e = errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (e == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		e = errno;
	close(s);
	return e;
}

/* Proxy side: eth0 gets box_ip/30, comes up, default route via gw_ip; 0 or errno. */
int sbn_box_side(uint32_t box_ip, uint32_t gw_ip)
{
	int e = sbn_ifconf("eth0", box_ip, htonl(0xfffffffcu));
	if (e != 0)
		return e;
	struct rtentry rt;
	memset(&rt, 0, sizeof rt);
	struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
	struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
	struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
	dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
	gw->sin_addr.s_addr = gw_ip;
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errno;
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		e = errno;
	close(s);
	return e;
}

/* Writes "1" to /proc/sys/net/ipv6/conf/<ifname>/disable_ipv6 (best effort; nft drops IPv6 anyway). */
static void sbn_no_ipv6(const char *ifname)
{
	char p[128];
	snprintf(p, sizeof p, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1\n", 2) < 0) {
			/* nothing to do: the ruleset drops IPv6 from the box */
		}
		close(fd);
	}
}

/* Sets up the veth pair, addresses and the run's nft table for the proxy's netns; 0 or -1 with cause (undone). */
int sbn_up(struct sbn_link *l, pid_t proxy, char **cause)
{
	char err[512], name[IFNAMSIZ], pidbuf[16];
	memset(l, 0, sizeof *l);
	l->idx = -1;
	if (N.ip[0] == '\0' || N.nft[0] == '\0')
		return sbx_set_error(cause, "network mode semitrusted is unavailable (ip or nft missing)");
	if (sbn_forwarding(cause) < 0)
		return -1;
	if (N.seeded_by != getpid()) {
		N.seeded_by = getpid();
		N.next = (unsigned)getpid() * 37u % SBN_MAX;
	}
	snprintf(pidbuf, sizeof pidbuf, "%d", (int)proxy);
	for (int t = 0; t < SBN_TRIES && l->idx < 0; t++) {
		unsigned n = N.next;
		N.next = (N.next + 1) % SBN_MAX;
		snprintf(name, sizeof name, "crh%u", n);
		char *const argv[] = { N.ip, "link", "add", name, "type", "veth", "peer", "name", "eth0",
		    "netns", pidbuf, NULL };
		if (sbn_exec(argv, -1, err, sizeof err) == 0)
			l->idx = (int)n;
		else if (strstr(err, "exists") == NULL)
			return sbx_set_error(cause, "ip link add %s: %s", name, err);
	}
	if (l->idx < 0)
		return sbx_set_error(cause, "no free veth index after %d tries", SBN_TRIES);
	uint32_t base = (SBN_NET_A << 24) | (SBN_NET_B << 16) | ((uint32_t)l->idx << 2);
	l->host_ip = htonl(base | 1);
	l->box_ip = htonl(base | 2);
	sbn_no_ipv6(name);
	int e = sbn_ifconf(name, l->host_ip, htonl(0xfffffffcu));
	if (e != 0) {
		sbx_set_error(cause, "configuring %s: %s", name, strerror(e));
		goto fail;
	}
	char *rules = malloc(SBN_RULES_MAX);
	if (rules == NULL || !sbn_rules(rules, l)) {
		free(rules);
		sbx_set_error(cause, "nft ruleset too long");
		goto fail;
	}
	l->table = true;
	int rc = sbn_nft(rules, err, sizeof err);
	free(rules);
	if (rc < 0) {
		sbx_set_error(cause, "nft: %s", err);
		goto fail;
	}
	return 0;
fail:
	sbn_down(l);
	return -1;
}

/* Removes the run's veth and nft table (each step best effort). */
void sbn_down(struct sbn_link *l)
{
	char err[512], name[IFNAMSIZ], table[32];
	if (l->idx < 0)
		return;
	snprintf(name, sizeof name, "crh%d", l->idx);
	snprintf(table, sizeof table, "corral_%d", l->idx);
	char *const del[] = { N.ip, "link", "del", name, NULL };
	sbn_exec(del, -1, err, sizeof err);       /* may already be gone with the box's netns */
	if (l->table) {
		char *const nft[] = { N.nft, "delete", "table", "inet", table, NULL };
		sbn_exec(nft, -1, err, sizeof err);
	}
	l->idx = -1;
	l->table = false;
}
