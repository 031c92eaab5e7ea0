"""Run a build command so that it never outlives the edgekd process that started it.

Started by path (``python childguard.py LOG CWD WORKDIR -- cmd ...``, standard library only, so it
starts in milliseconds): it runs ``cmd`` in ``CWD`` (inside ``WORKDIR``) in a process group of its own, writes
``pid <n>`` and later ``rc <code>`` on stdout, and keeps watching its stdin, a pipe from the
edgekd process. End of file on that pipe — the parent closed it, or died however it died,
SIGKILL included — kills the command's whole group (make, verilator, g++, cc1plus), then
removes ``WORKDIR``. So a killed run leaves no build running and no half-built objects.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str]) -> int:
    log_path, cwd, workdir, sep, *cmd = argv
    if sep != "--" or not cmd:
        print("usage: childguard.py LOG CWD WORKDIR -- command ...", file=sys.stderr)
        return 2
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    print(f"pid {proc.pid}", flush=True)
    parent_gone = threading.Event()

    def watch() -> None:
        sys.stdin.buffer.read()  # returns at end of file only
        parent_gone.set()
        _kill_group(proc.pid)

    threading.Thread(target=watch, daemon=True).start()
    rc = proc.wait()
    if not parent_gone.is_set():
        try:
            print(f"rc {rc}", flush=True)
        except BrokenPipeError:
            pass
        parent_gone.wait()  # the parent copies what it needs from WORKDIR, then closes the pipe
    _kill_group(proc.pid)  # anything the command left in its group
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which closes the pipe
    sys.exit(main(sys.argv[1:]))
