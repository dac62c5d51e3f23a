"""fpt.collect on hand-made job folders with known numbers: grouping, mean/std, best rows, relative cost, failures.

(tests/test_sweeps.py collects real sweeps; here the arithmetic is checked against values written by hand.)
"""
import csv
import json
import statistics

import pytest
import yaml

from fpt.collect import collect, read_sweeps, make_rows


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
    (second / "0").mkdir(parents=True)  # a re-run that skipped job 0 (fpt/run.py writes the link)
    link = {"run_dir": str(first / "0"), "earlier_status": "completed"}
    (second / "0" / "run_link.json").write_text(json.dumps(link))
    job(second / "1", lr=1e-2, length=4, seed=2, best=0.9)
    rows, _ = make_rows(read_sweeps([second]))
    assert [len(r.done) for r in rows] == [2] and rows[0].stat("best")[0] == pytest.approx(0.8)
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
    rows, columns = make_rows(read_sweeps([sweep]))
    assert columns == ["task", "model", "prompt", "schedule"] and [r.values["model"] for r in rows] == ["a", "b"]


def test_cli_names_a_missing_folder(tmp_path, capsys):
    from fpt.collect import main
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])
    assert str(tmp_path / "nope") in capsys.readouterr().err
