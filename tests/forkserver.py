"""Fresh Python processes for the tests without paying torch's import in each: a fork server.

Many tests need a process of their own (a checkpoint loaded without hf_w2s, a token only in the environment, the Hub
client's settings read at import, a terminal, the CLI as a user starts it). Each such interpreter spent ~9 s of CPU
importing before it ran a line of the test; two thirds of that is torch, scipy and sympy, which read nothing a test
varies. So each pytest worker starts one server process that imports only those (``PRELOAD``: no Hugging Face
library, no hf_w2s, nothing that starts a thread) and forks a child per command. The child then becomes the process a
fresh interpreter would be: the command's stdin / stdout / stderr (file descriptors passed over a Unix socket), working
directory, whole environment, ``sys.argv`` and ``sys.path`` (PYTHONPATH included), a new ``__main__``, numpy's global
generator seeded from the OS; it imports transformers, huggingface_hub, datasets and hf_w2s itself, under its own
environment, and ends as the interpreter does (non-daemon threads joined, atexit handlers, streams flushed) with the
command's exit code. ``sys.modules`` of a child holds no module of ``NEVER`` before the command runs (checked once,
when the server starts: it refuses to serve otherwise).

    proc = forkserver.popen([sys.executable, "-m", "hf_w2s.cli", "train", ...], env=env, cwd=tmp)
    stdout, stderr = proc.communicate(timeout=300)   # text, like subprocess.Popen(..., text=True)
    done = forkserver.run([sys.executable, "-c", CODE, "arg"], env=env)   # a subprocess.CompletedProcess

Commands it serves: ``[sys.executable, "-c", code, ...]``, ``[sys.executable, "-m", module, ...]``,
``[sys.executable, script.py, ...]`` and a console script of this interpreter (``hf-w2s``: its ``#!`` line names
``sys.executable`` or a link to the same file, run as ``[sys.executable, script, ...]``, what the kernel does). Anything else (torchrun, another program) and every command when ``HF_W2S_TESTS_FORKSERVER=0``
is in the environment starts as a real subprocess, the same API. docs/testing.md says what it saves.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

# what the server imports: ~6 s of the ~9 s an interpreter spends importing torch / transformers / peft / datasets
PRELOAD = ("numpy", "torch", "torch._dynamo", "torch.distributed.tensor", "torch.fx.experimental.symbolic_shapes",
           "scipy.linalg", "scipy.optimize", "scipy.stats", "sympy", "PIL.Image", "safetensors.torch", "yaml")
# packages whose import reads the environment a test sets (HF_ENDPOINT, HF_HOME, HF_TOKEN, offline mode, ...) or that
# start threads (pyarrow's allocator): never imported by the server, always by the child itself
NEVER = ("huggingface_hub", "transformers", "datasets", "accelerate", "peft", "evaluate", "hf_w2s", "pyarrow", "pandas",
         "sklearn", "matplotlib", "tensorboard")
HEADER = 16  # bytes of the request's length, sent with the three file descriptors


# ---- the server (this file run as a script) --------------------------------------------------------------------------
def _serve(path: str) -> None:
    import gc
    import importlib
    import select

    for name in PRELOAD:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in NEVER)
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()
    if leaked or threads != 1:
        sys.exit(f"forkserver: not serving: imported {leaked[:5]}, {threads} threads")
    base_path = sys.path[1:]  # without this script's folder
    gc.collect()
    gc.freeze()  # the preloaded modules stay out of the children's garbage collections (and shared, copy-on-write)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    children: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [], 0.05)
        while children:  # report every child that ended
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid)
            try:
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            except OSError:
                pass
            conn.close()
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            return  # the pytest worker is gone
        if listener in ready:
            conn, _ = listener.accept()
            request, fds = _receive(conn)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in children.values():
                    other.close()
                conn.close()
                _become(request, fds, base_path)  # never returns
            for fd in fds:
                os.close(fd)
            children[pid] = conn
            conn.sendall(f"{pid}\n".encode())


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _, _ = socket.recv_fds(conn, HEADER, 3)
    head += _exactly(conn, HEADER - len(head))
    return json.loads(_exactly(conn, int(head))), list(fds)


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:  # the client went away mid-request: fail instead of spinning on an empty read
            raise ConnectionError("forkserver: a request ended early")
        data += chunk
    return data


def _stream(fd: int, write: bool, encoding: str, unbuffered: bool):
    """What the interpreter makes of fd 0 / 1 / 2 at start-up (Python/pylifecycle.c, create_stdio)."""
    import io

    raw = io.FileIO(fd, "w" if write else "r", closefd=False)
    tty = raw.isatty()
    if not write:
        return io.TextIOWrapper(io.BufferedReader(raw), encoding=encoding, line_buffering=tty)
    errors = "backslashreplace" if fd == 2 else "strict"
    if unbuffered:  # PYTHONUNBUFFERED / -u: no binary buffer, every write goes through
        return io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=tty or fd == 2)


def _become(request: dict, fds: list[int], base_path: list[str]) -> None:
    """In the forked child: turn into the fresh interpreter ``request["argv"]`` would start, run it, exit."""
    import atexit as child_atexit
    import builtins
    import importlib
    import runpy
    import types

    import numpy as np

    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            if fd > 2:
                os.close(fd)
        encoding, unbuffered = sys.stdout.encoding, bool(request["env"].get("PYTHONUNBUFFERED"))
        sys.stdin = sys.__stdin__ = _stream(0, False, encoding, unbuffered)
        sys.stdout = sys.__stdout__ = _stream(1, True, encoding, unbuffered)
        sys.stderr = sys.__stderr__ = _stream(2, True, encoding, unbuffered)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        argv = request["argv"][1:]
        pythonpath = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        if argv[0] == "-c":
            first, sys.argv = "", ["-c", *argv[2:]]
        elif argv[0] == "-m":
            first, sys.argv = os.getcwd(), ["-m", *argv[2:]]  # runpy puts the module's path in argv[0]
        else:
            first, sys.argv = os.path.dirname(os.path.realpath(argv[0])), list(argv)
        sys.path[:] = [first, *pythonpath, *base_path]
        importlib.invalidate_caches()
        sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))
        np.random.seed()  # numpy's global generator: a fresh interpreter seeds it from the OS (random does at fork)
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        try:
            if argv[0] == "-c":
                exec(compile(argv[1], "<string>", "exec"), main.__dict__)
            elif argv[0] == "-m":
                runpy._run_module_as_main(argv[1], alter_argv=True)  # what `python -m` runs
            else:  # the script's code in __main__ itself, as `python script.py` runs it
                main.__file__, main.__cached__ = os.path.abspath(argv[0]), None
                with open(argv[0], "rb") as script:
                    exec(compile(script.read(), argv[0], "exec"), main.__dict__)
            code = 0
        except SystemExit as exit:
            if exit.code is None or isinstance(exit.code, int):
                code = exit.code or 0
            else:
                print(exit.code, file=sys.stderr)
                code = 1
        except BaseException:
            kind, value, traceback = sys.exc_info()
            value.__traceback__ = traceback.tb_next  # from the command's first frame on, not this function's
            sys.excepthook(kind, value, traceback.tb_next)
            code = 1
        threading._shutdown()  # as the interpreter ends: join non-daemon threads, then atexit
        child_atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code & 0xFF)


# ---- the client (the pytest worker) ----------------------------------------------------------------------------------
class _Server:
    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="hf_w2s-forkserver-")
        self.path = os.path.join(self.folder, "socket")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line != b"ready\n":
            raise RuntimeError(f"the fork server did not start (exit {self.proc.wait()})")
        atexit.register(self.close)

    def close(self):
        self.proc.stdin.close()  # the server returns on end of file
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        try:
            os.unlink(self.path)
            os.rmdir(self.folder)
        except OSError:
            pass


_SERVER: _Server | None = None
_LOCK = threading.Lock()


def _server() -> _Server:
    global _SERVER
    with _LOCK:
        if _SERVER is None or _SERVER.proc.poll() is not None:  # not started yet, or gone (killed): a new one
            _SERVER = _Server()
        return _SERVER


def served(argv: list) -> bool:
    """Whether ``argv`` runs in a child of the fork server (see the module docstring)."""
    if os.environ.get("HF_W2S_TESTS_FORKSERVER", "1") == "0" or len(argv) < 2 or not sys.platform.startswith("linux"):
        return False
    if str(argv[0]) == sys.executable:
        return argv[1] in ("-c", "-m") and len(argv) >= 3 or not str(argv[1]).startswith("-")
    try:
        with open(argv[0], "rb") as script:
            line = script.readline(4096).decode(errors="replace").strip()
    except OSError:
        return False
    return line.startswith("#!") and os.path.realpath(line[2:]) == os.path.realpath(sys.executable)


class ForkedProcess:
    """A child of the fork server with the part of ``subprocess.Popen``'s API the tests use (text pipes)."""

    def __init__(self, argv, *, env=None, cwd=None, stdin=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
        argv = [str(a) for a in argv]
        if argv[0] != sys.executable:  # a console script: what its #! line runs
            argv = [sys.executable, *argv]
        self.args, self.returncode = argv, None
        self._chunks, self._readers, theirs = {}, [], []
        for name, given in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if given == subprocess.PIPE and name != "stdin":
                read, write = os.pipe()
                theirs.append(write)
                self._chunks[name] = []
                self._readers.append(threading.Thread(target=self._drain, args=(read, name), daemon=True))
            elif given is None or given == subprocess.DEVNULL:
                theirs.append(os.open(os.devnull, os.O_RDWR))
            elif isinstance(given, int) and given >= 0:
                theirs.append(os.dup(given))
            else:
                raise ValueError(f"forkserver: unsupported {name}={given!r}")
        body = json.dumps({"argv": argv, "env": dict(os.environ if env is None else env),
                           "cwd": os.path.abspath(cwd or os.getcwd())}).encode()
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(_server().path)
        socket.send_fds(self._conn, [f"{len(body):{HEADER}d}".encode()], theirs)
        self._conn.sendall(body)
        for fd in theirs:
            os.close(fd)
        for reader in self._readers:
            reader.start()
        self._received = b""
        self.pid = int(self._line(None))

    def _drain(self, fd: int, name: str) -> None:
        with open(fd, "rb") as pipe:
            while chunk := pipe.read1(65536):
                self._chunks[name].append(chunk)

    def _line(self, timeout: float | None) -> str:
        """The server's next line: the child's pid, then its exit code (-N: killed by signal N)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._received:
            self._conn.settimeout(None if deadline is None else max(1e-4, deadline - time.monotonic()))
            try:
                chunk = self._conn.recv(64)
            except (socket.timeout, TimeoutError):
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            if not chunk:
                raise RuntimeError("the fork server closed the connection (did it die?)")
            self._received += chunk
        line, self._received = self._received.split(b"\n", 1)
        return line.decode()

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = int(self._line(timeout))
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(timeout=0.001)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass

    def _text(self, name: str) -> str | None:
        if name not in self._chunks:
            return None
        text = b"".join(self._chunks[name]).decode("utf-8", errors="replace")
        return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as text=True gives

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wait(timeout)
        for reader in self._readers:  # the pipes close when the child (and anything it started) has exited
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self._text("stdout"), self._text("stderr")


def popen(argv, *, env=None, cwd=None, stdin=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """A child of the fork server when ``served(argv)``, else ``subprocess.Popen(..., text=True)``."""
    if served(argv):
        return ForkedProcess(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    return subprocess.Popen(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, text=True)


def run(argv, *, env=None, cwd=None, timeout=None) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, capture_output=True, text=True, ...)``, served when it can be."""
    proc = popen(argv, env=env, cwd=cwd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


if __name__ == "__main__":
    _serve(sys.argv[1])
