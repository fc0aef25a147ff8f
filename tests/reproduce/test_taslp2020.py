"""The taslp2020 reproduction end to end at a tiny scale (the CLI's --quick takes minutes), and
the paper registry's lazy loading."""

from __future__ import annotations

import csv
import json

import pytest

from explorer import reproduce
from explorer.cli import main
from explorer.errors import InputError
from explorer.reproduce import taslp2020
from explorer.training.loop import TrainingConfig


def tiny_plan(options):
    return taslp2020.Plan(
        "taslp2020-quick", TrainingConfig(epochs=1, max_steps_per_epoch=4), 1, 3, 60, 1, 1
    )


def test_reproduce_writes_tables_figures_and_findings(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(taslp2020, "plan", tiny_plan)
    out = tmp_path / "out"
    code = main(
        [
            "reproduce",
            "taslp2020",
            "--data",
            "synth:2x3",
            "--out",
            str(out),
            "--quick",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for stem in ("table1_tod_r", "table2_snr_to_model", "table3_snr_to_true"):
        lines = (out / f"{stem}.md").read_text().splitlines()
        assert [
            line.split(" |")[0] for line in lines if line.startswith("| ") and "model |" not in line
        ] == ["| dae", "| mss-dae", "| sf"]
        rows = list(csv.DictReader(open(out / f"{stem}.csv")))
        assert {row["model"] for row in rows} == {"dae", "mss-dae", "sf"}
    tod = summary["tables"]["tod_r"]
    for model in ("dae", "mss-dae", "sf"):
        for strategy in ("student", "compositional", "linear"):
            assert tod[model][strategy]["mean"] > 0
        assert tod[model]["identity"]["mean"] is None  # infinite: no off-diagonal part
        assert (out / "figures" / f"linear_{model}.png").is_file()
        assert (out / "figures" / f"couplings_{model}_compositional.png").is_file()
    assert len(summary["findings"]) == 7 and all(
        isinstance(check["holds"], bool) for check in summary["findings"]
    )
    assert "Table 1" in (out / "findings.md").read_text()
    # A rerun into the same folder reuses the finished checkpoints instead of training again.
    stamp = (out / "checkpoints" / "sf-seed0.pt").stat().st_mtime_ns
    assert (
        main(
            [
                "reproduce",
                "taslp2020",
                "--data",
                "synth:2x3",
                "--out",
                str(out),
                "--quick",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    assert (out / "checkpoints" / "sf-seed0.pt").stat().st_mtime_ns == stamp


def test_papers_not_implemented_are_input_errors(monkeypatch) -> None:
    monkeypatch.setitem(reproduce.PAPERS, "future-paper", "future_paper_module")
    with pytest.raises(InputError, match="not implemented yet"):
        reproduce.load_paper("future-paper")
    with pytest.raises(InputError, match="unknown paper"):
        reproduce.load_paper("nope")
    assert reproduce.load_paper("taslp2020") is taslp2020
