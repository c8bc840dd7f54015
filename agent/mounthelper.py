"""mount(8)'s helper for the JuiceFS lines of jfs-milvus-agent: mount.juicefs-jfsmilvus SOURCE DIR [-o OPTIONS]

jfs-milvus-agent writes its fstab line with the type juicefs-jfsmilvus, so `mount DIR`, `mount -a`,
systemd's mount unit at boot and the agent itself all run /sbin/mount.juicefs-jfsmilvus. It takes its own
two options out of OPTIONS:

  jfs-milvus.env-file=PATH   the volume's env file, which the agent keeps in juicefs.secrets_dir (root's,
                             mode 0600): its META_PASSWORD and REDIS_PASSWORD go into the environment of juicefs
  jfs-milvus.juicefs=PATH    the juicefs the agent is configured with (juicefs.binary)

and runs that juicefs as JuiceFS's own mount helper (under the name /sbin/mount.juicefs, which makes it read
mount(8)'s arguments) with the other options. The password so reaches juicefs through its environment only:
never on a command line, in a process title or in a file another user may read. An env file that is not a
regular file of root's, or that group or others may read or write, is refused. juicefs itself and JuiceFS's
/sbin/mount.juicefs are not touched.

Exit status: 1 for a wrong invocation (not a line of the agent's), 32 when the mount cannot go on; otherwise
juicefs' own.
"""

# Only the standard library, and nothing of the agent beyond this module: mount(8) runs it at boot, before
# anything else. `launcher_text` is the script at /sbin/mount.juicefs-jfsmilvus, the same whether the agent
# package ships it or an agent run from a source tree writes it.

from __future__ import annotations

import os
import re
import stat
import sys

HELPER_NAME = "mount.juicefs-jfsmilvus"
FSTYPE = HELPER_NAME.removeprefix("mount.")
ENV_OPTION = "jfs-milvus.env-file"
JUICEFS_OPTION = "jfs-milvus.juicefs"
# juicefs behaves as mount(8)'s helper when its argv[0] ends so; the file executed is the configured binary.
JUICEFS_HELPER_ARGV0 = "/sbin/mount.juicefs"
# mount(8)'s helper exit codes: 1 incorrect invocation or permissions, 32 mount failure.
EXIT_USAGE, EXIT_FAILURE = 1, 32

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE = re.compile(r"[^\s\"'\\`$]*")


class HelperError(Exception):
    """Why the mount cannot go on, in one line (never a secret); `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


def fstype_of(helper: str) -> str:
    """The fstab type mount(8) runs `helper` for: /sbin/mount.TYPE."""
    name = os.path.basename(helper)
    if not name.startswith("mount.") or name == "mount.":
        raise ValueError(f"{helper}: a mount helper is named mount.TYPE")
    return name.removeprefix("mount.")


def launcher_text(python: str, code_dir: str, name: str = HELPER_NAME) -> str:
    """The helper script: `python` with -I -S (no environment, no site packages: only the standard library and
    `code_dir`, where the `agent` package is)."""
    if not os.path.isabs(python) or any(c.isspace() for c in python):
        raise ValueError(f"{python!r}: the helper's interpreter must be an absolute path without spaces")
    return (
        f"#!{python} -IS\n"
        f'"""{name}: mount(8) runs it for the JuiceFS lines jfs-milvus-agent writes in fstab."""\n'
        "import sys\n\n"
        "sys.dont_write_bytecode = True\n"
        f"sys.path[:0] = [{code_dir!r}]\n"
        "from agent.mounthelper import main\n\n"
        "sys.exit(main())\n"
    )


def parse_env_file(text: str) -> dict[str, str]:
    """NAME="VALUE" lines as agent/mount/envfile.py writes them (backslash before " \\ ` $), or NAME=VALUE
    without quotes or spaces; comments and blank lines skipped."""
    variables: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = _ASSIGNMENT.fullmatch(stripped)
        quoted = assignment and _QUOTED.fullmatch(assignment[2])
        if quoted:
            variables[assignment[1]] = re.sub(r"\\(.)", r"\1", quoted[1])
        elif assignment and _BARE.fullmatch(assignment[2]):
            variables[assignment[1]] = assignment[2]
        else:
            # The line is not repeated: it may hold a password.
            raise HelperError(f'line {number} is not NAME="VALUE"')
    return variables


def read_env_file(path: str) -> dict[str, str]:
    """The variables of `path`, which must be a regular file of root's (or this user's) that nobody else may
    read or write: a password another user can read has leaked, one another user can write is not ours."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise HelperError(f"cannot open the env file {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise HelperError(f"the env file {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_uid not in (0, os.geteuid()):
            raise HelperError(f"the env file {path} belongs to uid {st.st_uid}, not root")
        if st.st_mode & 0o077:
            raise HelperError(
                f"the env file {path} is mode {stat.S_IMODE(st.st_mode):04o}: only its owner may read it (chmod 600)"
            )
        data = f.read()
    try:
        return parse_env_file(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise HelperError(f"the env file {path} is not UTF-8") from None
    except HelperError as exc:
        raise HelperError(f"the env file {path}: {exc}") from None


def split_options(options: str) -> tuple[dict[str, str], list[str]]:
    """This helper's options (name -> value) and the others, in their order."""
    ours: dict[str, str] = {}
    rest: list[str] = []
    for option in options.split(","):
        name, eq, value = option.partition("=")
        if name in (ENV_OPTION, JUICEFS_OPTION):
            if not eq or not value:
                raise HelperError(f"the option {name} needs a value ({name}=PATH)", EXIT_USAGE)
            ours[name] = value
        elif option:
            rest.append(option)
    return ours, rest


def plan(argv: list[str]) -> tuple[str, list[str], str | None]:
    """From mount(8)'s arguments (`SOURCE DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`): the juicefs to run, its
    argv, and the env file to read."""
    positional: list[str] = []
    flags: list[str] = []
    options: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "-o" or arg == "-t" or arg == "-N":
            value = next(args, None)
            if value is None:
                raise HelperError(f"{arg} needs a value", EXIT_USAGE)
            if arg == "-o":
                options.append(value)
            elif arg == "-N":
                flags += [arg, value]
            # -t TYPE: mount(8) passes the type of a TYPE.SUBTYPE line; it is ours, juicefs does not take it
        elif arg.startswith("-o") and len(arg) > 2:
            options.append(arg[2:])
        elif arg.startswith("-") and len(arg) > 1:
            flags.append(arg)
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise HelperError(f"usage: {HELPER_NAME} SOURCE MOUNTPOINT [-o OPTIONS]", EXIT_USAGE)
    ours, rest = split_options(",".join(options))
    juicefs = ours.get(JUICEFS_OPTION)
    if juicefs is None:
        raise HelperError(
            f"no {JUICEFS_OPTION}=PATH option: this is not a line jfs-milvus-agent wrote (it names its juicefs)",
            EXIT_USAGE,
        )
    if not os.path.isabs(juicefs) or not os.access(juicefs, os.X_OK):
        raise HelperError(f"{JUICEFS_OPTION}={juicefs}: no such executable")
    juicefs_argv = [JUICEFS_HELPER_ARGV0, *positional, *flags]
    if rest:
        juicefs_argv += ["-o", ",".join(rest)]
    return juicefs, juicefs_argv, ours.get(ENV_OPTION)


def main(argv: list[str] | None = None) -> int:
    try:
        juicefs, juicefs_argv, env_file = plan(sys.argv[1:] if argv is None else argv)
        env = dict(os.environ)
        if env_file is not None:
            env.update(read_env_file(env_file))
    except HelperError as exc:
        print(f"{HELPER_NAME}: {exc}", file=sys.stderr)
        return exc.code
    try:
        os.execve(juicefs, juicefs_argv, env)
    except OSError as exc:
        print(f"{HELPER_NAME}: cannot run {juicefs}: {exc.strerror}", file=sys.stderr)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
