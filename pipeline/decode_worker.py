"""Audio decoding in a child process, so that one poison file costs a child, not the build.

FFmpeg is C: a file it mishandles can kill the process that decodes it (SIGSEGV, abort, the OOM
killer) or hang it. Inside a Ray actor that death makes Ray retry the task without end. Each
encoder actor therefore keeps one decode child (`python -m autosong.pipeline.decode_worker`) and talks to
it over a pipe; a child that dies is replaced and the song retried once, then the song becomes a
reject row ("the decoder crashed on this file (signal 11, SIGSEGV)"), and a child that takes
longer than the timeout is killed and its song rejected.

AUTOSONG_FAULT_DECODE_CRASH=TEXT makes the child kill itself with SIGSEGV on any path containing
TEXT: a fault-injection hook, so tests can prove the isolation without a file that crashes
today's FFmpeg.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from autosong.model.audio import AudioDecodeError, DecodedAudio, load_audio

CRASH_HOOK = "AUTOSONG_FAULT_DECODE_CRASH"
TIMEOUT_S = 300.0   # a 20-minute song decodes in seconds; far past this the decoder is hung
ATTEMPTS = 2        # a crash may be the machine (OOM): one retry on a fresh child


def _death(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"signal {-returncode}, {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class IsolatedDecoder:
    """`decoder(path, sample_rate, max_seconds, limit_seconds)` = `model.audio.load_audio(...)`, run
    in a child process. Raises AudioDecodeError (the file's fault) or OSError (reading it)."""

    def __init__(self, timeout_s: float = TIMEOUT_S, attempts: int = ATTEMPTS):
        self.timeout_s, self.attempts = timeout_s, attempts
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": "1"}  # one decode per actor, each actor one CPU: no thread pool to oversubscribe
        self._proc = subprocess.Popen([sys.executable, "-m", "autosong.pipeline.decode_worker", str(to_child_r),
                                       str(from_child_w)], pass_fds=(to_child_r, from_child_w), env=env,
                                      stdin=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._conn = _Duplex(from_child_r, to_child_w)

    def close(self) -> None:
        if self._proc is not None:
            self._conn.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = self._conn = None

    def _kill(self) -> int | None:
        self._proc.kill()
        code = self._proc.wait()
        self._conn.close()
        self._proc = self._conn = None
        return code

    def __call__(self, path: str, sample_rate: int, max_seconds: float | None,
                 limit_seconds: float | None) -> DecodedAudio:
        death = ""
        for _ in range(self.attempts):
            if self._proc is None:
                self._start()
            try:
                self._conn.send((str(path), sample_rate, max_seconds, limit_seconds))
                if not self._conn.poll(self.timeout_s):
                    self._kill()
                    raise AudioDecodeError(f"the decoder hung on this file (no result in {self.timeout_s:g} s)")
                status, payload = self._conn.recv()
            except (EOFError, OSError):  # the child died mid-song
                self._proc.wait()
                death = _death(self._proc.returncode)
                self._kill()
                continue
            if status == "ok":
                return payload
            if status == "oserror":
                raise OSError(*payload)
            raise AudioDecodeError(payload)
        raise AudioDecodeError(f"the decoder crashed on this file ({death}; {self.attempts} tries)")

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Duplex:
    """send/recv/poll over two one-way pipes (multiprocessing's Connection, one per direction)."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader = Connection(read_fd, writable=False)
        self.writer = Connection(write_fd, readable=False)

    def send(self, obj) -> None:
        self.writer.send(obj)

    def recv(self):
        return self.reader.recv()

    def poll(self, timeout: float) -> bool:
        return self.reader.poll(timeout)

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


def _serve(read_fd: int, write_fd: int) -> None:
    conn = _Duplex(read_fd, write_fd)
    crash_on = os.environ.get(CRASH_HOOK)
    while True:
        try:
            path, sample_rate, max_seconds, limit_seconds = conn.recv()
        except EOFError:  # the actor is gone
            return
        if crash_on and crash_on in path:
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            reply = ("ok", load_audio(path, sample_rate, max_seconds, limit_seconds))
        except AudioDecodeError as err:
            reply = ("error", str(err))
        except OSError as err:
            reply = ("oserror", (err.errno, err.strerror, err.filename))
        except Exception as err:  # a decoder bug: the song is rejected, the reason names it
            reply = ("error", f"the decoder failed ({type(err).__name__}: {err})")
        conn.send(reply)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
