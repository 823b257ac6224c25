"""Confine one tool process, then become it: rlimits, no_new_privs, Landlock, execve.

The engine renders in a thread pool, where `preexec_fn` is unsafe, so the restrictions are applied
here instead: `core.host.sandbox` starts this file as a script of a fresh, single-threaded and
isolated interpreter (`python -I -S confine.py OPTIONS -- TOOL ARGS`), which restricts itself and
then replaces itself with the tool. Landlock rules survive execve and bind every child the tool
starts; they need no privilege, only no_new_privs, which also survives execve.

The tool may read (`--read`), read and execute (`--exec`) and fully use (`--write`) the paths
given, nothing else on the file system; with Landlock ABI 4 or newer it may neither connect nor
bind a TCP socket; with ABI 6 or newer it may not signal processes outside its sandbox or reach
abstract UNIX sockets. `--probe` checks all of this in this process and prints what holds.

This file imports the standard library only (it runs without site-packages) and must never run
the tool when any restriction asked for cannot be applied: it exits with status 125 and a message
starting with "sandbox:" instead.
"""

from __future__ import annotations

# Only what the exec path needs, all cheap to import: this runs once per tool process.
import ctypes
import errno
import os
import resource
import stat
import sys

__all__ = ["FAILED", "ConfineError", "Policy", "check_abi", "handled_fs", "main"]

FAILED = 125
"""Exit status when confinement fails (as `env` and `timeout` report their own failures)."""

# Landlock's system calls are numbered alike on these architectures (the generic table).
_SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38

# File-system access rights (uapi/linux/landlock.h) and the ABI that introduced each group.
_EXECUTE = 1 << 0
_WRITE_FILE = 1 << 1
_READ_FILE = 1 << 2
_READ_DIR = 1 << 3
_ABI1_FS = (1 << 13) - 1  # execute .. make_sym
_REFER = 1 << 13  # ABI 2
_TRUNCATE = 1 << 14  # ABI 3
_IOCTL_DEV = 1 << 15  # ABI 5
# Rights that apply to a file (the others only make sense beneath a directory).
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV
_NET_TCP = 0b11  # bind, connect (ABI 4)
_SCOPES = 0b11  # abstract UNIX sockets, signals (ABI 6)


def handled_fs(abi: int) -> int:
    """Return every file-system right a ruleset of this ABI handles (denied unless allowed)."""
    rights = _ABI1_FS
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    if abi >= 5:
        rights |= _IOCTL_DEV
    return rights


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class ConfineError(Exception):
    """A restriction could not be applied; the tool must not run."""


class Policy:
    """What the confined process may use (a plain class: dataclasses cost milliseconds to import).

    Attributes:
        read: Paths it may read (directories: everything beneath).
        execute: Paths it may read and execute (the tool, the dynamic loader's libraries).
        write: Directories it may fully use (a scratch directory).
        memory: Address-space limit in bytes, or None.
        network_rules: Require TCP rules (ABI 4); without them it could open connections.
        argv: The tool and its arguments.
    """

    def __init__(
        self,
        *,
        read: tuple[str, ...] = (),
        execute: tuple[str, ...] = (),
        write: tuple[str, ...] = (),
        memory: int | None = None,
        network_rules: bool = True,
        argv: tuple[str, ...] = (),
    ) -> None:
        self.read = read
        self.execute = execute
        self.write = write
        self.memory = memory
        self.network_rules = network_rules
        self.argv = argv


class _Landlock:
    """The three Landlock system calls through libc's `syscall`."""

    def __init__(self) -> None:
        machine = os.uname().machine
        numbers = _SYSCALLS.get(machine)
        if numbers is None:
            raise ConfineError(f"Landlock is not supported on {machine} here")
        self.nr_create, self.nr_add, self.nr_restrict = numbers
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def call(self, number: int, *args: object) -> int:
        result = int(self.libc.syscall(number, *args))
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result

    def abi(self) -> int:
        """Return the kernel's Landlock ABI version; raise when Landlock is unavailable."""
        try:
            return self.call(self.nr_create, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
        except OSError as exc:
            reason = {
                errno.ENOSYS: "the kernel has no Landlock",
                errno.EOPNOTSUPP: "Landlock is disabled at boot (lsm=)",
                errno.EPERM: "a seccomp filter denies Landlock",
            }.get(exc.errno or 0, exc.strerror)
            raise ConfineError(f"Landlock unavailable: {reason}") from None

    def no_new_privs(self) -> None:
        if self.libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise ConfineError(f"no_new_privs: {os.strerror(ctypes.get_errno())}")

    def restrict(self, abi: int, policy: Policy) -> None:
        """Build the ruleset of `policy` for this ABI and enforce it on this thread."""
        fs = handled_fs(abi)
        net = _NET_TCP if abi >= 4 and policy.network_rules else 0
        attr = _RulesetAttr(fs, net, _SCOPES if abi >= 6 else 0)
        # Older kernels refuse a larger struct than they know: pass the size of this ABI's.
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        ruleset = self.call(self.nr_create, ctypes.byref(attr), ctypes.c_size_t(size), 0)
        try:
            read = _READ_FILE | _READ_DIR
            for paths, rights in (
                (policy.read, read),
                (policy.execute, read | _EXECUTE),
                (policy.write, fs),
            ):
                for path in paths:
                    self._allow(ruleset, path, rights & fs)
            self.no_new_privs()
            self.call(self.nr_restrict, ruleset, 0)
        finally:
            os.close(ruleset)

    def _allow(self, ruleset: int, path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfineError(f"cannot open {path}: {exc.strerror}") from None
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                rights &= _FILE_RIGHTS
            rule = _PathBeneathAttr(rights, fd)
            self.call(self.nr_add, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
        except OSError as exc:
            raise ConfineError(f"cannot allow {path}: {exc.strerror}") from None
        finally:
            os.close(fd)


def confine(policy: Policy) -> int:
    """Apply `policy` to this process and return the Landlock ABI used."""
    landlock = _Landlock()
    abi = landlock.abi()
    check_abi(abi, network_rules=policy.network_rules)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if policy.memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (policy.memory, policy.memory))
    except (ValueError, OSError) as exc:
        raise ConfineError(f"rlimits: {exc}") from None
    try:
        landlock.restrict(abi, policy)
    except OSError as exc:
        raise ConfineError(f"Landlock: {exc.strerror}") from None
    return abi


def check_abi(abi: int, *, network_rules: bool) -> None:
    """Refuse an ABI that cannot enforce what is asked: TCP rules need ABI 4 (Linux 6.7)."""
    if abi < 1:
        raise ConfineError(f"Landlock ABI {abi} is not usable")
    if abi < 4 and network_rules:
        raise ConfineError(
            f"Landlock ABI {abi} cannot deny network connections (ABI 4, Linux 6.7, can)"
        )


def probe(network_rules: bool) -> dict[str, object]:
    """Confine this process to nothing and check that files and TCP are really denied."""
    import socket  # only the probe needs it

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    abi = confine(Policy(network_rules=network_rules))
    try:
        with open(__file__, "rb"):
            files = False
    except PermissionError:
        files = True
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect(listener.getsockname())
        network = False
    except PermissionError:
        network = True
    finally:
        client.close()
        listener.close()
    return {"abi": abi, "files": files, "network": network}


def parse(args: list[str]) -> tuple[Policy, bool]:
    """Parse the options and the command; return the policy and whether to probe.

    `[--read P]... [--exec P]... [--write P]... [--memory N] [--no-network-rules] [--probe]
    -- TOOL ARGS`
    """
    options: dict[str, list[str]] = {"--read": [], "--exec": [], "--write": []}
    memory: int | None = None
    network_rules, probing = True, False
    rest = list(args)
    while rest and rest[0] != "--":
        option = rest.pop(0)
        if option in options and rest:
            options[option].append(rest.pop(0))
        elif option == "--memory" and rest:
            memory = int(rest.pop(0))
        elif option == "--no-network-rules":
            network_rules = False
        elif option == "--probe":
            probing = True
        else:
            raise ConfineError(f"bad option {option!r}")
    argv = tuple(rest[1:])
    if not argv and not probing:
        raise ConfineError("no command after --")
    policy = Policy(
        read=tuple(options["--read"]),
        execute=tuple(options["--exec"]),
        write=tuple(options["--write"]),
        memory=memory,
        network_rules=network_rules,
        argv=argv,
    )
    return policy, probing


def main(args: list[str]) -> int:
    """Confine this process as `args` say, then exec the tool (or print the probe's result)."""
    try:
        policy, probing = parse(args)
        if probing:
            import json  # only the probe needs it

            print(json.dumps(probe(policy.network_rules)))
            return 0
        confine(policy)
    except ConfineError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return FAILED
    try:
        os.execv(policy.argv[0], policy.argv)  # noqa: S606 - becoming the tool is the point
    except OSError as exc:
        print(f"sandbox: cannot run {policy.argv[0]}: {exc.strerror}", file=sys.stderr)
    return FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
