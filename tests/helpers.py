"""Helpers shared by tests/unit and tests/integration (`from helpers import ...`; pytest puts tests/ on the path,
pyproject.toml). Fixtures and skip_or_fail stay in tests/conftest.py."""
import importlib.util
import json
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from conftest import skip_or_fail
from hydra import compose as hydra_compose, initialize_config_dir
from safetensors.torch import load_file

from fpt import CONF_DIR
from fpt.config import compose, register_configs
from fpt.runs.launch import main as run_main

ROOT = Path(__file__).resolve().parents[1]  # the checkout: train.py, eval.py, conf/


# --------------------------------------------------------------------------- composing configs
# compose(*overrides, config_name="config"): the config train.py would see (fpt.config.compose)
def compose_hydra(*overrides: str, config_name: str = "config"):
    """The composed config with its `hydra` node (sweeper, launcher), as `train.py -m` would see it
    (config_name="eval": as eval.py would)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)


def tiny_run(steps: int, eval_every: int, eval_samples: int, *more: str) -> list[str]:
    """A few training steps of a deep prompt on the random tiny-bert, one thread, no progress bar."""
    return ["model=tiny-bert", "prompt=deep", "prompt.length=4", f"trainer.max_steps={steps}",
            f"trainer.eval_every={eval_every}", "trainer.batch_size=8", "trainer.eval_batch_size=50",
            f"task.max_eval_samples={eval_samples}", "trainer.threads=1", "trainer.progress=false", *more]


# a 4-layer tiny-bert grown in three stages of 4 steps (layers 2 -> 3 -> 4, FFN 1/2 -> 3/4 -> all)
TINY_FPT = ["model=tiny-bert", "model.from_config.num_hidden_layers=4", "prompt=deep", "prompt.length=4",
            "trainer.max_steps=12", "trainer.eval_every=4", "trainer.batch_size=8", "trainer.eval_batch_size=50",
            "task.max_eval_samples=100", "trainer.threads=1", "trainer.progress=false", "trainer.log_every=1"]
GROWTH_STAGES = "schedule.stages=[{layers: 2, ffn_ratio: 0.5, steps: 4}, {layers: 3, ffn_ratio: 0.75, steps: 4}, {}]"


def need(module: str):
    """Skip without an optional package (the retrieval extra's faiss, ir_measures, bm25s); fail instead with
    FPT_REQUIRE_RETRIEVAL=1 (.ci/run, which installs the extra)."""
    if importlib.util.find_spec(module) is None:
        skip_or_fail(f"{module} (the retrieval extra: pip install -e '.[retrieval]') is not installed",
                     require="FPT_REQUIRE_RETRIEVAL")


# --------------------------------------------------------------------------- subprocesses
def subprocess_env(fault: str | None = None, full_error: str = "0") -> dict:
    """This environment for a child python; fault="point:step" SIGKILLs its training there (fpt/trainer.py)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": full_error}
    env.pop("FPT_FAULT", None)
    if fault:
        env["FPT_FAULT"] = fault
    return env


def run_python(*args: str, fault: str | None = None, full_error: str = "0", timeout: float = 600):
    """`python <args>` in the checkout; the returned process has `.output` = stdout + stderr."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=subprocess_env(fault, full_error),
                          capture_output=True, text=True, timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc


def train_py(run_dir: Path, *overrides: str, fault: str | None = None, root: Path | None = None,
             full_error: str = "0", timeout: float = 300):
    """`python train.py <overrides>` into run_dir; earlier runs of the same config are looked up under `root`
    (default: run_dir)."""
    return run_python(str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}",
                      f"output_root={root or run_dir}", fault=fault, full_error=full_error, timeout=timeout)


# --------------------------------------------------------------------------- run folders (test_run_dir*)
RUN_DIR_TINY = tiny_run(6, 3, 50, "trainer.log_every=1")


def run_dir_cfg(*overrides: str, root: Path):
    return compose(*RUN_DIR_TINY, f"output_root={root}", *overrides)


def run_in_process(folder: Path, *overrides: str, root: Path | None = None) -> dict:
    return run_main(run_dir_cfg(*overrides, root=root or folder), folder)


def final_state(folder: Path):
    return load_file(folder / "trainable_final.safetensors"), json.loads((folder / "results.json").read_text())


def assert_same_run(a: Path, b: Path):
    (ta, ra), (tb, rb) = final_state(a), final_state(b)
    assert set(ta) == set(tb)
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name
    for key in ("final", "best", "best_step", "train_flops", "steps"):
        assert ra[key] == rb[key], key


# --------------------------------------------------------------------------- successive halving (test_halving*)
# a tiny run with dropout on, 8 steps, evaluated every 4: stopped at a rung (trainer.stop_at_step) and promoted
HALVING_TINY = ["model=tiny-bert", "prompt=deep", "prompt.length=4", "prompt.dropout=0.1", "model.dropout=0.1",
                "trainer.max_steps=8", "trainer.eval_every=4", "trainer.batch_size=8", "trainer.eval_batch_size=50",
                "task.max_eval_samples=50", "trainer.threads=1", "trainer.progress=false", "trainer.log_every=1"]


def halving_run(folder: Path, *extra: str) -> dict:
    """HALVING_TINY in-process into `folder`; earlier runs of the same config are looked up beside it."""
    return run_main(compose(*HALVING_TINY, f"output_root={folder.parent}", *extra), folder)


# --------------------------------------------------------------------------- bad input (test_errors*)
ERRORS_TINY = tiny_run(4, 2, 20)
TSV = "sentence\tlabel\n"


def sst2_files(folder: Path, train: str = TSV + "good movie\t1\nbad movie\t0\n", dev: str | bytes | None = None):
    """A local SST-2 folder (train.tsv, dev.tsv); bytes are written as they are."""
    folder.mkdir(exist_ok=True)
    for name, content in [("train.tsv", train), ("dev.tsv", TSV + "a fine film\t1\na bad film\t0\n" if dev is None
                                                  else dev)]:
        if content is not None:
            (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["task=sst2", f"task.data_dir={folder}"]


def leaves_nothing_complete(run: Path) -> None:
    for name in ("results.json", "run_state.json"):
        if (run / name).exists():
            assert json.loads((run / name).read_text())["status"] != "completed"
    assert not (run / "trainable_final.safetensors").exists()


# --------------------------------------------------------------------------- README.md's commands (test_readme*)
# How tests/integration/test_readme.py runs README.md's ```bash blocks (its docstring states the convention): the
# plan of each command line and the shortening of a train.py command; the plan itself: tests/unit/test_readme_plan.py.
README_SCALED = ("trainer.max_steps", "trainer.eval_every")
README_SHORTEN = {"trainer.max_steps": "2", "trainer.eval_every": "2", "task.max_eval_samples": "16",
                  "trainer.threads": "1", "trainer.progress": "false"}
README_SKIPPED = ("pip ", "python3 -m venv", "python -m venv", "python -m pytest")
README_DEMO = "train.py prompt=deep trainer.max_steps=40 trainer.eval_every=20 hydra.run.dir=outputs/demo"


def bash_blocks(text: str) -> list[list[str]]:
    """The lines of each ```bash block, in order."""
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.strip() == "```bash":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def readme_plan(text: str) -> list[tuple[str, list[str]]]:
    """(how, words) per command line: how is "run", "cfg" (a GPU job: --cfg job) or "skip"."""
    out = []
    for block in bash_blocks(text):
        gpu = bool(block) and block[0].strip() == "# GPU"
        for line in block:
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if line.strip().startswith(README_SKIPPED) or words[0] not in ("python", "python3"):
                out.append(("skip", words))
            elif gpu:
                multirun = words[1] != "-m" and bool({"-m", "--multirun"} & set(words[2:]))
                out.append(("skip" if multirun else "cfg", words))
            else:
                out.append(("run", words))
    return out


def shortened_command(words: list[str]) -> list[str]:
    """A train.py command as test_readme runs it: README_SCALED values divided by 10 (at least 2), README_SHORTEN's
    keys appended where the command does not give them; any other command as it is."""
    if not words[1].endswith("train.py"):
        return words
    given = {w.split("=", 1)[0]: i for i, w in enumerate(words) if "=" in w}
    words = list(words)
    for key in README_SCALED:
        if key in given:
            words[given[key]] = f"{key}={max(2, int(words[given[key]].split('=', 1)[1]) // 10)}"
    return words + [f"{key}={value}" for key, value in README_SHORTEN.items() if key not in given]


# --------------------------------------------------------------------------- a toy task a tiny model learns
# (test_after_training, test_eval_cli; the `toy`, `bert_run` and `t5_run` fixtures in conftest.py)
GOOD = ["great", "lovely", "superb", "fine", "wonderful", "nice"]
BAD = ["awful", "terrible", "poor", "boring", "dull", "bad"]
TOY_BERT = ["model=tiny-bert", "prompt=deep", "optim.lr=0.1", "model.head_dropout=0", "model.pooling=mean",
            "trainer.max_steps=30"]
TOY_T5 = ["model=tiny-t5", "prompt=deep", "optim.lr=0.3", "optim.schedule=constant", "trainer.max_steps=25"]


def write_toy(folder: Path) -> Path:
    """48 training sentences whose label is given by one word; dev = the first 24 (a tiny model can learn them)."""
    rnd = random.Random(0)
    rows = [(f"the film was {rnd.choice(GOOD if i % 2 else BAD)} and {rnd.choice(['long', 'short', 'new', 'old'])}",
             i % 2) for i in range(48)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    (folder / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows[:24]))
    return folder


def toy_settings(data: Path, root: Path, *overrides: str) -> list[str]:
    return [f"task.data_dir={data}", "prompt.length=4", "trainer.eval_every=5", "trainer.batch_size=8",
            "trainer.eval_batch_size=8", "trainer.threads=1", "trainer.progress=false", "model.dropout=0",
            f"output_root={root}", *overrides]


def train_toy(root: Path, toy: Path, *overrides: str) -> tuple[Path, dict]:
    results = run_main(compose(*toy_settings(toy, root, *overrides)), root / "run")
    assert results["status"] == "completed"
    return root / "run", results


def read_predictions(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- tiny files in each task's official format
# (test_task_runs, test_after_training)
CONTEXT = "Alice was born in Paris in 1990. Bob lives in Rome. The cat is black."
SQUAD = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": [
    {"id": "1", "question": "Where was Alice born?", "answers": [{"text": "Paris", "answer_start": 18}]},
    {"id": "2", "question": "Where does Bob live?", "answers": [{"text": "Rome", "answer_start": 46}]},
    {"id": "3", "question": "What colour is the dog?", "answers": [], "is_impossible": True},
    {"id": "4", "question": "When was Alice born?", "answers": [{"text": "1990", "answer_start": 27}]}]}]}]}
RECORD = {"idx": 0, "source": "x", "passage": {
    "text": "Tom met Ann in Rome.\n@highlight\nAnn is a doctor", "entities": [
        {"start": 0, "end": 2}, {"start": 8, "end": 10}, {"start": 15, "end": 18}]}, "qas": [
    {"idx": 0, "query": "@placeholder met a doctor in Rome.", "answers": [{"start": 0, "end": 2, "text": "Tom"}]},
    {"idx": 1, "query": "The doctor was in @placeholder.", "answers": [{"start": 15, "end": 18, "text": "Rome"}]},
    {"idx": 2, "query": "Tom met @placeholder.", "answers": [{"start": 8, "end": 10, "text": "Ann"}]}]}
XSUM = [{"document": "The council approved a new park in the town centre on Monday.", "summary": "New park approved.",
         "id": "1"},
        {"document": "Heavy rain flooded several roads across the county overnight.", "summary": "Rain floods roads.",
         "id": "2"}]
MNLI_TRAIN = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n")
MNLI_DEV = MNLI_TRAIN.replace("label1\tgold_label", "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
MNLI_ROWS = [("A man plays a guitar.", "A man plays music.", "entailment"),
             ("A dog runs in a park.", "A cat sleeps at home.", "contradiction"),
             ("A woman reads a book.", "The woman is a teacher.", "neutral")]
QQP = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n" + "".join(
    f"{i}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate([
        ("How do I learn Python?", "What is the best way to learn Python?", 1),
        ("How tall is Everest?", "Who wrote Hamlet?", 0),
        ("Why is the sky blue?", "What makes the sky look blue?", 1),
        ("Is coffee healthy?", "How far is the Moon?", 0)]))
MULTIRC = {"idx": 0, "passage": {"text": "Tom has a red cat and a dog.", "questions": [
    {"idx": 0, "question": "What pets does Tom have?", "answers": [
        {"idx": 0, "text": "A cat", "label": 1}, {"idx": 1, "text": "A fish", "label": 0},
        {"idx": 2, "text": "A dog", "label": 1}]},
    {"idx": 1, "question": "What colour is the cat?", "answers": [
        {"idx": 3, "text": "Red", "label": 1}, {"idx": 4, "text": "Blue", "label": 0}]}]}}
COPA = [{"premise": "The man fell.", "choice1": "He slipped.", "choice2": "He laughed.", "question": "cause",
         "label": 0, "idx": 0},
        {"premise": "It rained.", "choice1": "We got dry.", "choice2": "We got wet.", "question": "effect",
         "label": 1, "idx": 1},
        {"premise": "The glass broke.", "choice1": "I dropped it.", "choice2": "I washed it.", "question": "cause",
         "label": 0, "idx": 2},
        {"premise": "She was hungry.", "choice1": "She slept.", "choice2": "She ate.", "question": "effect",
         "label": 1, "idx": 3}]
CONLL = ("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\ncall NN I-NP O\n\n"
         "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\nvisited VBD I-VP O\nLondon NNP I-NP I-LOC\n\n"
         "Smith NNP I-NP I-PER\nmet VBD I-VP O\nJones NNP I-NP I-PER\nin IN I-PP O\nParis NNP I-NP I-LOC\n")
SRL = ("1 The cat sat on the mat ||| B-A0 I-A0 B-V B-AM-LOC I-AM-LOC I-AM-LOC\n"
       "0 Kozlowski resigned yesterday ||| B-A0 B-V B-AM-TMP\n"
       "2 Investors quickly sold shares ||| B-A0 B-AM-MNR B-V B-A1\n")


def write(folder, files: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def two_row_batch(tok, seq2seq: bool) -> dict:
    """Two rows of different lengths (so with padding) and their labels: T5 target ids or class indices."""
    batch = dict(tok(["a short one", "a somewhat longer sentence with padding needed"], padding=True,
                     return_tensors="pt"))
    if seq2seq:
        batch["labels"] = tok(text_target=["yes", "no it is not"], padding=True, return_tensors="pt")["input_ids"]
    else:
        batch["label"] = torch.tensor([0, 1])
    return batch
