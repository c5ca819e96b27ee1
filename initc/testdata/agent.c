/*
 * Stand-in agent for the init tests: prints what the init handed it
 * (argv, environment), then runs /check, a shell script that reports the
 * mounts and the console.
 */
#include <stdio.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	char *check[] = { "sh", "/check", NULL };

	for (int i = 0; i < argc; i++)
		printf("argv%d=%s\n", i, argv[i]);
	for (char **e = environ; *e != NULL; e++)
		printf("env=%s\n", *e);
	fflush(stdout);
	execve("/bin/sh", check, environ);
	perror("exec /bin/sh");
	return 1;
}
