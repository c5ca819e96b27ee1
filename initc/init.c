// The Go tool refuses C files in a package without cgo; this constraint
// keeps it from compiling this one. Package initc embeds it instead and
// compiles it with musl-gcc or gcc.
//go:build ignore

/*
 * fledge-init: PID 1 of a fledge initramfs in default mode.
 *
 * It mounts the pseudo filesystems the Kestrel agent expects, gives it a
 * console and a sane environment, and execs /bin/kestrel. An initramfs
 * plugin has no root disk, so nothing here probes devices or waits.
 *
 * PID 1 must never exit: the kernel panics when it does, and with panic=-1
 * the VM reboots into the same failure forever. Every fatal error therefore
 * prints one "fledge-init: <what>: <reason>" line and powers the VM off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#define AGENT "/bin/kestrel"

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
 * die reports the failure on the console as one line, "fledge-init: " plus
 * the NULL-terminated parts plus ": " and strerror(err), written at once so
 * kernel messages cannot split it. Then it powers off; it never returns.
 */
static _Noreturn __attribute__((sentinel)) void die(int err, ...)
{
	char line[256] = "fledge-init: ";
	const char *part;
	va_list ap;
	int fd = 2;

	va_start(ap, err);
	while ((part = va_arg(ap, const char *)) != NULL)
		append(line, sizeof(line), part);
	va_end(ap);
	append(line, sizeof(line), ": ");
	append(line, sizeof(line), strerror(err));
	append(line, sizeof(line), "\n");
	if (!fd_usable(fd))
		fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		put(fd, line);
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
