"""bench.command: the whole-command benchmark runs both contestants and reads the command's log."""

from __future__ import annotations

import json

from bench import command


def test_the_whole_command_benchmark_runs_and_names_every_part(tmp_path, capsys):
    out = tmp_path / "figures.json"
    assert command.main(["--rows", "2000", "--repeats", "1", "--epochs", "1", "--folder", str(tmp_path),
                         "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    summary, runs = figures["summary"], figures["runs"]
    assert len(runs["minimal"]) == len(runs["builder"]) == 1
    # Every part the command logs was found in its log: the gap has names.
    assert set(summary["builder_parts_s"]) == set(command.PART_LINES)
    assert all(seconds >= 0 for seconds in summary["builder_parts_s"].values())
    assert summary["ratio_min"] == summary["builder_s"]["min"] / summary["minimal_s"]["min"]
    assert 0.5 < summary["builder_accuracy"] <= 1.0 and summary["minimal_training_s"] > 0
    assert (tmp_path / "bundle.zip").is_file() and (tmp_path / "minimal.pt").is_file()
    printed = capsys.readouterr().out
    assert "ratio" in printed and "PERFORMANCE.md's bar: 1.25x" in printed
