import subprocess
import sys


def run(*args, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_autosong_help_lists_the_stages():
    out = run("-m", "autosong_cli", "--help")
    assert out.returncode == 0
    for stage in ("pipeline", "demo"):
        assert f"  {stage}" in out.stdout


def test_every_command_help_shows_its_defaults():
    cases = {("generate",): "--seconds SECONDS", ("eval",): "--notes NOTES", ("train",): "--deepspeed DEEPSPEED",
             ("codec", "train"): "--minutes MINUTES", ("codec", "check"): "--codec CODEC", ("pipeline", "build"): "--shard-samples SHARD_SAMPLES",
             ("demo",): "--songs SONGS"}
    for command, option in cases.items():
        out = run("-m", "autosong_cli", *command, "--help")
        assert out.returncode == 0 and out.stderr == "", (command, out.stderr)
        lines = out.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(option))
        assert "(default: " in " ".join(lines[at : at + 4]), (command, lines[at : at + 4])
    codec = run("-m", "autosong_cli", "codec", "--help").stdout
    assert codec.startswith("usage: autosong codec check") and "autosong codec train" in codec


def test_python_m_pipeline_synth(tmp_path):
    out = run("-m", "autosong.pipeline", "synth", str(tmp_path / "c"), "--songs", "2", "--seconds", "2")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["song_000", "song_001", "synth.json"]


def test_bad_codec_is_one_clear_line_not_a_traceback(tmp_path):
    (tmp_path / "notadir").write_text("x")
    out = run("-m", "autosong_cli", "demo", "--out", str(tmp_path / "d"), "--songs", "1", "--seconds", "2",
              "--codec", str(tmp_path / "notadir"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "autosong: error:" in out.stderr
