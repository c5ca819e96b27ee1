package inspect

// rules is the lint table. Ids are stable: scripts match on them.
var rules = []Rule{
	{ID: "init-missing", Severity: Error, run: checkInitPresent,
		Fix: "provide /init: drop [init] for fledge's init, set [init] path, or map a program to /init"},
	{ID: "init-not-executable", Severity: Error, run: checkInitExecutable,
		Fix: "make /init a regular file with execute permission (chmod 0755 the host file it comes from)"},
	{ID: "init-interp-missing", Severity: Error, run: checkInterp,
		Fix: "add the ELF interpreter to the image (a rootfs or a mapping), or link the program statically"},
	{ID: "lib-missing", Severity: Error, run: checkLibs,
		Fix: "add the library to /lib, /usr/lib or the binary's RUNPATH in the image (a recipe adds the host's unless [source] host_libraries = false), or link the program statically"},
	{ID: "shebang-missing", Severity: Error, run: checkShebangs,
		Fix: "add the interpreter named after #! to the image (BusyBox provides /bin/sh), or correct the #! line"},
	{ID: "kestrel-missing", Severity: Error, run: checkKestrel,
		Fix: "the default init execs /bin/kestrel: configure [agent], or choose [init] path or none"},
	{ID: "symlink-host-path", Severity: Error, run: checkHostLinks,
		Fix: "point the link at a path inside the image (relative, or absolute from the image root), not at the build host"},
	{ID: "symlink-dangling", Severity: Warning, run: checkDangling,
		Fix: "point the link at something the image contains, or remove it"},
	{ID: "console-missing", Severity: Error, run: checkConsole,
		Fix: "keep /dev/console (c 5 1, from the skeleton layer): the kernel opens it as init's stdin, stdout and stderr"},
	{ID: "shadowed", Severity: Warning, run: checkShadowed,
		Fix: "if the override is not intended, remove the path from one of the layers or map to another path"},
	{ID: "arch-mismatch", Severity: Error, run: checkArch,
		Fix: "rebuild the binary for the architecture of /init, or remove it"},
}
