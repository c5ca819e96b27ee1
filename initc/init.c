// The Go tool refuses C files in a package without cgo; this constraint
// keeps it from compiling this one. Package initc embeds it instead and
// compiles it with musl-gcc or gcc.
//go:build ignore

/*
 * fledge-init: PID 1 of a fledge initramfs in default mode.
 *
 * It mounts the pseudo filesystems the Kestrel agent expects, gives it a
 * console, loads the kernel modules the recipe's [kernel] lists, brings up
 * the network the kernel command line's ip= asks for where the kernel did
 * not (no CONFIG_IP_PNP), and execs /bin/kestrel with a sane environment.
 * An initramfs plugin has no root disk, so nothing here probes devices or
 * waits.
 *
 * PID 1 must never exit: the kernel panics when it does, and with panic=-1
 * the VM reboots into the same failure forever. Every fatal error therefore
 * prints one "fledge-init: <what>: <reason>" line and powers the VM off.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AGENT "/bin/kestrel"
/* The load order of the image's modules, one absolute path a line. */
#define MODULES "/etc/fledge/modules"

extern char **environ;

struct pseudo_fs {
	const char *type;
	const char *target;
	unsigned long flags;
	const char *data;
	mode_t mode;
};

/* /dev comes first: the console and /dev/null live there. */
static const struct pseudo_fs dev_fs = {
	"devtmpfs", "/dev", MS_NOSUID, "mode=0755", 0755,
};

static const struct pseudo_fs other_fs[] = {
	{ "proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555 },
	{ "sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555 },
	{ "tmpfs", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777", 01777 },
	{ "tmpfs", "/run", MS_NOSUID | MS_NODEV, "mode=0755", 0755 },
};

static int fd_usable(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void put(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* append copies s to the end of buf (of size n), truncating to fit. */
static void append(char *buf, size_t n, const char *s)
{
	size_t len = strlen(buf);

	while (*s != '\0' && len + 1 < n)
		buf[len++] = *s++;
	buf[len] = '\0';
}

/*
 * say reports on the console as one line, "fledge-init: " plus the
 * NULL-terminated parts in ap plus ": " and strerror(err), written at once
 * so kernel messages cannot split it.
 */
static void say(int err, va_list ap)
{
	char line[320] = "fledge-init: ";
	const char *part;
	int fd = 2;

	while ((part = va_arg(ap, const char *)) != NULL)
		append(line, sizeof(line), part);
	append(line, sizeof(line), ": ");
	append(line, sizeof(line), strerror(err));
	append(line, sizeof(line), "\n");
	if (!fd_usable(fd))
		fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		put(fd, line);
}

/* warn reports a failure the boot survives; see say. */
static __attribute__((sentinel)) void warn(int err, ...)
{
	va_list ap;

	va_start(ap, err);
	say(err, ap);
	va_end(ap);
}

/* die reports a fatal failure (see say) and powers off; it never returns. */
static _Noreturn __attribute__((sentinel)) void die(int err, ...)
{
	va_list ap;

	va_start(ap, err);
	say(err, ap);
	va_end(ap);
	sync();
	reboot(RB_POWER_OFF);
	/* Only reached when the kernel refuses; still never return. */
	for (;;)
		pause();
}

/*
 * mounted reports whether something is already mounted on dir: a mount
 * point lives on another device than the root. Mounting proc or devtmpfs
 * again would not fail but stack a second copy, so EBUSY alone is not
 * enough to notice a kernel (devtmpfs.mount) or wrapper that got there first.
 */
static int mounted(const char *dir)
{
	struct stat root, st;

	if (stat("/", &root) < 0 || stat(dir, &st) < 0)
		return 0;
	return root.st_dev != st.st_dev;
}

static void mount_fs(const struct pseudo_fs *fs)
{
	if (mkdir(fs->target, fs->mode) < 0 && errno != EEXIST)
		die(errno, "mkdir ", fs->target, NULL);
	if (mounted(fs->target))
		return;
	if (mount(fs->type, fs->target, fs->type, fs->flags, fs->data) < 0 &&
	    errno != EBUSY)
		die(errno, "mount ", fs->type, " on ", fs->target, NULL);
}

/*
 * open_console opens the console for fds the kernel could not give us (no
 * /dev/console in the archive). Without a console (console=null) it falls
 * back to /dev/null, so the agent's first open() never lands on fd 0-2.
 */
static int open_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		fd = open("/dev/null", O_RDWR | O_NOCTTY);
	if (fd < 0)
		die(errno, "open /dev/console and /dev/null", NULL);
	return fd;
}

/*
 * setup_console makes sure fds 0, 1 and 2 are open, keeping the ones the
 * kernel opened on the console, and makes fd 0 the agent's controlling
 * terminal.
 */
static void setup_console(void)
{
	int fd = -1;

	for (int i = 0; i <= 2; i++) {
		if (fd_usable(i))
			continue;
		if (fd < 0)
			fd = open_console();
		if (fd != i && dup2(fd, i) < 0)
			die(errno, "dup2 console", NULL);
	}
	if (fd > 2)
		close(fd);
	/* A console that is not a tty (/dev/null) just means no job control. */
	setsid();
	ioctl(0, TIOCSCTTY, 1);
}

/* load_module loads one module file; one already loaded is no failure. */
static void load_module(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		warn(errno, "load ", path, NULL);
		return;
	}
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
		warn(errno, "load ", path, NULL);
	close(fd);
}

/*
 * load_modules loads the modules MODULES lists, in its order, which puts
 * each after what it needs. A module that fails is reported and the boot
 * goes on: the agent may not need it.
 */
static void load_modules(void)
{
	char buf[4096];
	size_t len = 0;
	ssize_t n;
	int fd = open(MODULES, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			warn(errno, "open " MODULES, NULL);
		return;
	}
	do {
		char *line = buf, *nl;

		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
		/* At the end, a last line without its newline counts too. */
		if (n <= 0 && len > 0)
			buf[len++] = '\n';
		while ((nl = memchr(line, '\n', len - (size_t)(line - buf))) != NULL) {
			*nl = '\0';
			if (*line == '/')
				load_module(line);
			line = nl + 1;
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
		if (len == sizeof(buf) - 1) {
			warn(ENAMETOOLONG, "read " MODULES, NULL);
			len = 0;
		}
	} while (n > 0);
	close(fd);
}

/* set_flags turns on the interface flags on. */
static int set_flags(int s, const char *dev, short on)
{
	struct ifreq ifr = { 0 };

	strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= on;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* in_addr_of parses a dotted IPv4 address into sa; 0 when s is none. */
static int in_addr_of(const char *s, struct sockaddr *sa)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;

	memset(sa, 0, sizeof(*sa));
	in->sin_family = AF_INET;
	return *s != '\0' && inet_pton(AF_INET, s, &in->sin_addr) == 1;
}

/*
 * ip_config brings up the interface ip= names as the kernel's IP_PNP
 * would: ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF, static
 * addresses only. An interface that has an address already was configured
 * by the kernel and is left alone. Every failure is one line; the boot goes
 * on without the network.
 */
static void ip_config(int s, const char *arg)
{
	char fields[256];
	char *f[7] = { 0 };
	char *p = fields;
	struct ifreq ifr = { 0 };
	struct rtentry rt = { 0 };
	const char *dev;
	int i;

	/* Split a copy: messages quote arg whole. */
	fields[0] = '\0';
	append(fields, sizeof(fields), arg + 3);
	for (i = 0; i < 7 && p != NULL; i++) {
		f[i] = p;
		p = strchr(p, ':');
		if (p != NULL)
			*p++ = '\0';
	}
	for (; i < 7; i++)
		f[i] = "";
	if (!strcmp(f[0], "off") || !strcmp(f[0], "none"))
		return;
	if (!in_addr_of(f[0], &ifr.ifr_addr)) {
		warn(EINVAL, arg, ": fledge's init sets static addresses only "
		     "(ip=ADDR::GATEWAY:NETMASK:HOSTNAME:DEVICE:off)", NULL);
		return;
	}
	dev = *f[5] != '\0' ? f[5] : "eth0";
	strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
	if (ioctl(s, SIOCGIFADDR, &ifr) == 0)
		return;
	if (errno == ENODEV) {
		warn(ENODEV, arg, ": no interface ", dev,
		     "; is its driver a module? list it in [kernel] modules", NULL);
		return;
	}
	in_addr_of(f[0], &ifr.ifr_addr);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
		warn(errno, arg, ": address of ", dev, NULL);
		return;
	}
	if (in_addr_of(f[3], &ifr.ifr_netmask) &&
	    ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		warn(errno, arg, ": netmask of ", dev, NULL);
	if (set_flags(s, dev, IFF_UP) < 0) {
		warn(errno, arg, ": bring up ", dev, NULL);
		return;
	}
	if (in_addr_of(f[2], &rt.rt_gateway)) {
		in_addr_of("0.0.0.0", &rt.rt_dst);
		in_addr_of("0.0.0.0", &rt.rt_genmask);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = (char *)dev;
		if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			warn(errno, arg, ": route via gateway ", f[2], NULL);
	}
	if (*f[4] != '\0' && sethostname(f[4], strlen(f[4])) < 0)
		warn(errno, arg, ": hostname ", f[4], NULL);
}

/*
 * network brings up lo, and the interface of the command line's ip= when
 * the kernel did not configure it. The last ip= counts, as in the kernel.
 */
static void network(void)
{
	char cmdline[4096];
	char *ip = NULL;
	ssize_t n = 0;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (s < 0) {
		warn(errno, "socket for the network setup", NULL);
		return;
	}
	if (set_flags(s, "lo", IFF_UP) < 0)
		warn(errno, "bring up lo", NULL);
	if (fd >= 0) {
		n = read(fd, cmdline, sizeof(cmdline) - 1);
		close(fd);
	}
	cmdline[n > 0 ? n : 0] = '\0';
	for (char *w = strtok(cmdline, " \n"); w != NULL; w = strtok(NULL, " \n")) {
		if (!strncmp(w, "ip=", 3))
			ip = w;
	}
	if (ip != NULL)
		ip_config(s, ip);
	close(s);
}

/*
 * The kernel hands init HOME=/ and TERM=linux plus any NAME=value from its
 * command line. The agent gets HOME=/root; PATH and TERM from the command
 * line win over ours.
 */
static char *const env_defaults[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=linux",
};

#define N_DEFAULTS (sizeof(env_defaults) / sizeof(env_defaults[0]))

static int same_name(const char *a, const char *b)
{
	while (*a != '\0' && *a != '=' && *a == *b) {
		a++;
		b++;
	}
	return *a == '=' && *b == '=';
}

static int has_name(char **env, size_t n, const char *kv)
{
	for (size_t i = 0; i < n; i++) {
		if (same_name(env[i], kv))
			return 1;
	}
	return 0;
}

/*
 * agent_env fills env, which has room for environ plus the defaults and a
 * terminator. Building it in place keeps malloc out of PID 1.
 */
static void agent_env(char **env)
{
	size_t n = 0;

	for (char **e = environ; *e != NULL; e++) {
		if (!same_name(*e, "HOME="))
			env[n++] = *e;
	}
	for (size_t i = 0; i < N_DEFAULTS; i++) {
		if (!has_name(env, n, env_defaults[i]))
			env[n++] = env_defaults[i];
	}
	env[n] = NULL;
}

int main(int argc, char **argv)
{
	char *no_args[] = { NULL, NULL };
	char **agent_argv = argc > 0 ? argv : no_args;
	size_t n_environ = 0;

	/*
	 * Run by hand on a host, this binary would mount over the host's
	 * directories and power the host off on failure: refuse.
	 */
	if (getpid() != 1) {
		put(2, "fledge-init: must run as PID 1 (the init of a VM); "
		       "refusing to run as an ordinary process\n");
		return 1;
	}
	mount_fs(&dev_fs);
	setup_console();
	for (size_t i = 0; i < sizeof(other_fs) / sizeof(other_fs[0]); i++)
		mount_fs(&other_fs[i]);
	load_modules();
	network();
	if (chdir("/") < 0)
		die(errno, "chdir /", NULL);

	while (environ[n_environ] != NULL)
		n_environ++;
	char *env[n_environ + N_DEFAULTS + 1];

	agent_env(env);
	/* The agent's own argv[0]; init's extra arguments pass through. */
	agent_argv[0] = "kestrel";
	execve(AGENT, agent_argv, env);
	die(errno, "exec " AGENT, NULL);
}
