"""fpt.collect on hand-made job folders with known numbers: grouping, mean/std, best rows, relative cost, failures.

(tests/integration/test_sweeps.py collects real sweeps; here the arithmetic is checked against values written by hand.)
"""
import csv
import json
import statistics

import pytest
import yaml

from fpt.collect import collect, make_table, read_sweeps


def job(folder, *, lr, length, seed, schedule="none", best=None, flops=100.0, seconds=10.0, status="completed",
        error=None, model="tiny-bert", name_or_path="tiny-bert"):
    folder.mkdir(parents=True)
    cfg = {"model": {"name": model, "name_or_path": name_or_path}, "task": {"name": "rte", "metric": "accuracy"},
           "prompt": {"type": "deep", "length": length}, "schedule": {"name": schedule},
           "optim": {"lr": lr}, "trainer": {"threads": seed, "device": f"cuda:{seed}"}, "seed": seed,
           "output_root": "outputs", "run_dir": str(folder)}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    if status == "unfinished":
        (folder / "run_state.json").write_text(json.dumps({"fingerprint": "x", "status": "running"}))
        return
    results = {"task": "rte", "model": model, "prompt": "deep", "schedule": schedule, "seed": seed,
               "metric": "accuracy",
               "best": {"accuracy": best, "f1": best / 2} if best is not None else {},
               "final": {"accuracy": best - 0.1} if best is not None else {}, "train_flops": flops,
               "train_seconds": seconds, "status": status}
    if error:
        results["error"] = error
    (folder / "results.json").write_text(json.dumps(results))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_groups_by_differing_values_except_seed_with_mean_and_std(tmp_path):
    sweep = tmp_path / "sweep"
    values = {(1e-2, 4): [0.60, 0.70, 0.65], (1e-2, 8): [0.80, 0.90, 0.85], (5e-3, 4): [0.50, 0.52, 0.54]}
    k = 0
    for (lr, length), bests in values.items():
        for seed, best in enumerate(bests):
            job(sweep / str(k), lr=lr, length=length, seed=seed, best=best, flops=100.0 * (seed + 1))
            k += 1
    text = collect([sweep])
    rows = read_csv(sweep / "results.csv")
    assert len(rows) == 3
    assert "seed" not in rows[0] and "trainer.threads" not in rows[0] and "trainer.device" not in rows[0]
    for row in rows:
        bests = values[float(row["optim.lr"]), int(row["prompt.length"])]
        assert int(row["n"]) == 3 and row["seeds"] == "0 1 2"
        assert float(row["best_mean"]) == pytest.approx(statistics.fmean(bests))
        assert float(row["best_std"]) == pytest.approx(statistics.stdev(bests))
        assert float(row["final_mean"]) == pytest.approx(statistics.fmean(bests) - 0.1)
        assert float(row["best_f1_mean"]) == pytest.approx(statistics.fmean(bests) / 2)
        assert float(row["train_flops_mean"]) == pytest.approx(200.0)
    assert "0.8500 ± 0.0500 *" in text  # the best configuration is starred, mean ± sample std
    best = read_csv(sweep / "best.csv")
    assert len(best) == 1 and best[0]["configuration"] == "optim.lr=0.01 prompt.length=8"  # config-file order
    assert text.count("\n| rte |") == 4  # 3 configuration rows + 1 best row


def test_failed_and_unfinished_jobs_are_listed_not_dropped(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep / "0", lr=1e-2, length=4, seed=1, best=0.7)
    job(sweep / "1", lr=1e-2, length=4, seed=2, status="failed", error="FileNotFoundError: /data/dev.tsv\nmore")
    job(sweep / "2", lr=1e-2, length=4, seed=3, status="unfinished")
    (sweep / "3" / ".hydra").mkdir(parents=True)  # Hydra made the folder, the job never started
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text("- prompt.length=4\n- seed=4\n")
    text = collect([sweep])
    assert "4 jobs: 1 completed, 3 failed or unfinished" in text
    problems = text.split("## Failed or unfinished jobs")[1]
    assert "| 1 | failed |" in problems and "FileNotFoundError: /data/dev.tsv" in problems and "more" not in problems
    assert "| 2 | unfinished |" in problems and "run_state: running" in problems
    assert "| 3 | unfinished | prompt.length=4 seed=4 | never started |" in problems
    jobs = read_csv(sweep / "jobs.csv")
    assert [j["status"] for j in jobs] == ["completed", "failed", "unfinished", "unfinished"]


def test_follows_links_of_skipped_jobs_and_counts_a_run_once(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    job(first / "0", lr=1e-2, length=4, seed=1, best=0.7)
    job(first / "1", lr=1e-2, length=4, seed=2, best=0.8)
    (second / "0").mkdir(parents=True)  # a re-run that skipped job 0 (fpt/runs/launch.py writes the link)
    link = {"run_dir": str(first / "0"), "earlier_status": "completed"}
    (second / "0" / "run_link.json").write_text(json.dumps(link))
    job(second / "1", lr=1e-2, length=4, seed=2, best=0.9)
    table, _ = make_table(read_sweeps([second]))
    assert list(table["n"]) == [2] and table.at[0, "best_mean"] == pytest.approx(0.8)
    both = read_sweeps([first, second])
    assert len(both) == 3  # first/0 reached twice, counted once


def test_cost_relative_to_vanilla_prompt_tuning(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (1, 2):
        job(sweep / f"pt{seed}", lr=1e-2, length=4, seed=seed, best=0.7, flops=1000.0, seconds=100.0)
        job(sweep / f"fpt{seed}", lr=1e-2, length=4, seed=seed, best=0.7, schedule="fpt", flops=700.0, seconds=60.0)
    text = collect([sweep])
    rows = {r["schedule"]: r for r in read_csv(sweep / "results.csv")}
    assert float(rows["fpt"]["flops_vs_vanilla"]) == pytest.approx(0.7)
    assert float(rows["fpt"]["seconds_vs_vanilla"]) == pytest.approx(0.6)
    assert float(rows["none"]["flops_vs_vanilla"]) == pytest.approx(1.0)
    assert "| 0.70x | 0.60x |" in text


def test_model_details_hidden_when_the_model_column_says_it(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep / "0", lr=1e-2, length=4, seed=1, best=0.7, model="a", name_or_path="org/a")
    job(sweep / "1", lr=1e-2, length=4, seed=1, best=0.8, model="b", name_or_path="org/b")
    table, columns = make_table(read_sweeps([sweep]))
    assert columns == ["task", "model", "prompt", "schedule"] and list(table["model"]) == ["a", "b"]


def test_cli_names_a_missing_folder(tmp_path, capsys):
    from fpt.collect import main
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])
    assert str(tmp_path / "nope") in capsys.readouterr().err


def test_csv_files_hold_numbers_in_number_columns(tmp_path):
    import pandas as pd
    sweep = tmp_path / "sweep"
    job(sweep / "0", lr=1e-2, length=4, seed=1, best=0.6)
    job(sweep / "1", lr=1e-2, length=4, seed=2, best=0.8)
    job(sweep / "2", lr=3e-2, length=4, seed=1, best=0.9)  # a single seed: std undefined
    collect([sweep])
    results = pd.read_csv(sweep / "results.csv")
    for col in ["optim.lr", "best_mean", "best_std", "final_mean", "best_f1_mean", "train_flops_mean"]:
        assert pd.api.types.is_float_dtype(results[col]), col
    assert pd.api.types.is_integer_dtype(results["n"])
    assert list(results["best_mean"]) == pytest.approx([0.7, 0.9])
    assert results["best_std"][0] == pytest.approx(statistics.stdev([0.6, 0.8])) and pd.isna(results["best_std"][1])
    best = pd.read_csv(sweep / "best.csv")
    assert list(best["best_mean"]) == [0.9] and pd.isna(best["best_std"][0]) and list(best["optim.lr"]) == [0.03]


def test_a_single_run_folder_is_collected(tmp_path, capsys):
    from fpt.collect import main
    run = tmp_path / "outputs" / "2026-01-01" / "12-00-00"
    job(run, lr=1e-2, length=4, seed=7, best=0.75)
    (run / "tensorboard").mkdir()  # a run's own subfolders are not jobs
    main([str(run)])
    assert "1 jobs: 1 completed" in capsys.readouterr().out
    [row] = read_csv(run / "results.csv")
    assert row["n"] == "1" and row["seeds"] == "7" and float(row["best_mean"]) == 0.75 and row["best_std"] == ""


def test_logger_choice_does_not_split_a_configuration(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, logger in [(1, {"csv": {"_target_": "fpt.loggers.CSVLogger"}}), (2, {})]:
        job(sweep / str(seed), lr=1e-2, length=4, seed=seed, best=0.5 + seed / 10)
        cfg = yaml.safe_load((sweep / str(seed) / "config.yaml").read_text())
        (sweep / str(seed) / "config.yaml").write_text(yaml.safe_dump({**cfg, "logger": logger}))
    table, _ = make_table(read_sweeps([sweep]))
    assert list(table["n"]) == [2] and table.at[0, "best_mean"] == pytest.approx(0.65)


def _curve(folder, points):
    lines = [json.dumps({"step": s, "loss": 1.0, "train_flops": f}) for s, f, _ in points]
    lines += [json.dumps({"step": s, "eval": {"accuracy": a}, "train_flops": f}) for s, f, a in points]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_plot_draws_the_seed_mean_with_a_band(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the dev/sweeps extras)")
    from fpt.collect.plot import eval_curve, seed_curve
    sweep = tmp_path / "sweep"
    job(sweep / "0", lr=1e-2, length=4, seed=1, best=0.7)
    job(sweep / "1", lr=1e-2, length=4, seed=2, best=0.8)
    _curve(sweep / "0", [(2, 10.0, 0.5), (4, 20.0, 0.7), (6, 30.0, 0.6)])
    _curve(sweep / "1", [(2, 12.0, 0.6), (4, 22.0, 0.8)])  # a shorter run: step 6 is not averaged
    curve = seed_curve([eval_curve(sweep / k, "accuracy") for k in ("0", "1")])
    assert list(curve["step"]) == [2, 4] and list(curve["flops"]) == [11.0, 21.0]
    assert list(curve["mean"]) == pytest.approx([0.55, 0.75])
    assert list(curve["std"]) == pytest.approx([statistics.stdev([0.5, 0.6]), statistics.stdev([0.7, 0.8])])
    one = seed_curve([eval_curve(sweep / "0", "accuracy")])
    assert list(one["mean"]) == [0.5, 0.7, 0.6] and one["std"].isna().all()  # one seed: no band

    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)  # keep the figure to look at what was drawn
    collect([sweep], with_plot=True)
    monkeypatch.undo()
    [fig] = drawn
    [ax] = fig.axes
    [line] = ax.get_lines()
    assert list(line.get_xdata()) == [11.0, 21.0] and list(line.get_ydata()) == pytest.approx([0.55, 0.75])
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection)]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.55 - statistics.stdev([0.5, 0.6]))
    assert ys.max() == pytest.approx(0.75 + statistics.stdev([0.7, 0.8]))
    assert (sweep / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_runtime_keys_do_not_split_a_configuration_grouped_by_identity(tmp_path):
    """paths.data_root (where the data is found: the data enters the identity through task.data_dir and the files'
    contents) and a key added later at its old value (fpt/runs/identity.py ADDED_KEYS) are not part of a run's identity."""
    sweep = tmp_path / "sweep"
    extra = [{"paths": {"data_root": "data"}, "schedule": {"name": "none"}},
             {"paths": {"data_root": "../shared/data"}, "schedule": {"name": "none", "keep_layers": "spread"}}]
    for seed, more in enumerate(extra, 1):
        job(sweep / str(seed), lr=1e-2, length=4, seed=seed, best=0.5 + seed / 10)
        cfg = yaml.safe_load((sweep / str(seed) / "config.yaml").read_text())
        (sweep / str(seed) / "config.yaml").write_text(yaml.safe_dump({**cfg, **more}))
    table, columns = make_table(read_sweeps([sweep]))
    assert list(table["n"]) == [2] and table.at[0, "best_mean"] == pytest.approx(0.65)
    assert not any(c.startswith("paths.") for c in columns)


def test_a_nan_seed_makes_the_mean_nan_and_is_never_best(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep / "0", lr=1e-2, length=4, seed=1, best=0.9)
    job(sweep / "1", lr=1e-2, length=4, seed=2, best=float("nan"))  # a completed run whose metric is NaN
    job(sweep / "2", lr=3e-2, length=4, seed=1, best=0.5)
    text = collect([sweep])
    rows = {float(r["optim.lr"]): r for r in read_csv(sweep / "results.csv")}
    assert rows[1e-2]["n"] == "2" and rows[1e-2]["best_mean"] == ""  # not 0.9, the mean of the other seed
    assert "| 0.01 | 2 | accuracy | nan | nan |" in text and "0.5000 *" in text
    assert read_csv(sweep / "best.csv")[0]["configuration"] == "optim.lr=0.03"


def test_plot_has_a_panel_per_task_and_model_with_a_legend_of_what_varies_in_it(tmp_path, monkeypatch):
    """Two sweeps: tiny-bert varies lr and prompt length, tiny-t5 only lr. One panel per model, each legend naming
    only its own varying keys, outside the axes."""
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the dev/sweeps extras)")
    from fpt.collect.plot import panels
    bert, t5 = tmp_path / "bert", tmp_path / "t5"
    k = 0
    for lr, length in [(1e-2, 4), (1e-2, 8), (5e-3, 4)]:
        job(bert / str(k), lr=lr, length=length, seed=1, best=0.5 + k / 10)
        _curve(bert / str(k), [(2, 10.0, 0.5), (4, 20.0, 0.5 + k / 10)])
        k += 1
    for lr in (1e-2, 5e-3):
        job(t5 / str(k), lr=lr, length=4, seed=1, best=0.6, model="tiny-t5", name_or_path="tiny-t5")
        _curve(t5 / str(k), [(2, 10.0, 0.5), (4, 20.0, 0.6)])
        k += 1
    table, columns = make_table(read_sweeps([bert, t5]))
    found = panels(table, columns)
    assert list(found) == [("rte", "tiny-bert", "accuracy"), ("rte", "tiny-t5", "accuracy")]
    assert sorted(label for _, label in found["rte", "tiny-bert", "accuracy"]) == [
        "optim.lr=0.005, prompt.length=4 (n=1)", "optim.lr=0.01, prompt.length=4 (n=1)",
        "optim.lr=0.01, prompt.length=8 (n=1)"]
    assert sorted(label for _, label in found["rte", "tiny-t5", "accuracy"]) == [
        "optim.lr=0.005 (n=1)", "optim.lr=0.01 (n=1)"]  # prompt.length does not vary here: not named

    import matplotlib.pyplot as plt
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    collect([bert, t5], out=tmp_path / "out", with_plot=True)
    monkeypatch.undo()
    [fig] = drawn
    assert [ax.get_title() for ax in fig.axes] == ["rte · tiny-bert", "rte · tiny-t5"]
    for ax, count in zip(fig.axes, (3, 2)):
        assert len(ax.get_lines()) == count
        legend = ax.get_legend()
        fig.canvas.draw()
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # right of the axes, not over the curves
    assert (tmp_path / "out" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_search_summary_names_the_best_completed_job_and_sums_the_flops(tmp_path):
    from fpt.collect import search_summary
    sweep = tmp_path / "sweep"
    job(sweep / "0", lr=1e-2, length=4, seed=1, best=0.7, flops=100.0)
    job(sweep / "1", lr=2e-2, length=4, seed=1, best=0.9, flops=50.0, status="stopped")  # a pruned trial: not best
    job(sweep / "2", lr=5e-3, length=8, seed=1, best=0.8, flops=200.0)
    job(sweep / "3", lr=5e-3, length=8, seed=2, best=0.8, flops=300.0)  # a tie: the first in folder order stays
    job(sweep / "4", lr=1e-3, length=8, seed=1, status="unfinished")  # nothing measured: not counted
    s = search_summary(sweep)
    assert s["best"].folder == sweep / "2" and s["value"] == 0.8
    assert (s["flops"], s["jobs"], s["full_length"]) == (650.0, 4, 3)
