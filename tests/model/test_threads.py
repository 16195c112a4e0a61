"""The CPU threads a command runs on: --threads, then OMP_NUM_THREADS, then the cores the load leaves."""
import os

from autosong.model.threads import cpu_threads


def test_threads_follow_the_flag_the_environment_then_the_load(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(5) == (5, "--threads")
    assert cpu_threads(None) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    for load, threads in ((0.1, 8), (2.2, 6), (7.5, 1), (30.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        got, why = cpu_threads(None)
        assert got == threads, (load, got)
        assert ("busy" in why) == (threads < 8)
