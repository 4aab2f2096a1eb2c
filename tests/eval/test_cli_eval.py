"""`tierwise eval`: flags reach EvalConfig, errors become click errors naming the problem."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tierwise.cli import main


def test_eval_help_lists_the_flags() -> None:
    out = CliRunner().invoke(main, ["eval", "--help"])
    assert out.exit_code == 0, out.output
    for flag in ("--model", "--data", "--train-data", "--out", "--judge-scores", "--no-track"):
        assert flag in out.output


def test_eval_reports_a_bad_bundle_as_a_click_error(tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(
        '{"id": "1", "request": {"prompt": "hi"}, "scores": {"haiku": {"score": 1, "source": "x"}}}\n'
    )
    (tmp_path / "empty").mkdir()
    args = ["eval", "--model", str(tmp_path / "empty"), "--data", str(data), "--no-track"]
    out = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "reports")])
    assert out.exit_code == 1
    assert out.output.strip() == (
        f"Error: no manifest.json in {str(tmp_path / 'empty')!r} and no DEFAULT file naming a "
        "bundle there"
    )


def test_router_eval_and_router_label_script_groups() -> None:
    """router-eval and router-label are groups whose one subcommand is eval / label. Not a
    word search of --help: each group's description says "eval" / "label" anyway."""
    from eval.cli import main as router_eval
    from labeling.cli import main as router_label

    for group, command, flag in (
        (router_eval, "eval", "--policy"),
        (router_label, "label", "--input"),
    ):
        out = CliRunner().invoke(group, ["--help"])
        assert out.exit_code == 0, out.output
        listed = out.output.split("Commands:", 1)[1].split()
        assert listed[0] == command, out.output
        sub = CliRunner().invoke(group, [command, "--help"])
        assert sub.exit_code == 0 and flag in sub.output, sub.output
