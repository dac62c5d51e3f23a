"""Every command in README.md and docs/*.md code blocks is checked without running it.

- `python train.py`, `fpt-train`, `torchrun ... train.py`: the overrides compose in-process with Hydra, as train.py
  would compose them (a misspelt key, group or option fails). A `-m` sweep composes the first value of each swept
  list, then once more with the first value of each parameter its sweeper searches (hparams_search, experiments).
- `python eval.py`, `fpt-eval`: the overrides compose with conf/eval.yaml.
- `python -m fpt.<module>` / `python -m tools.<module>`: the module imports and has a `main`; its argparse options parse (nothing runs), and
  the `key=value` arguments of a module that takes Hydra overrides (tools.scores, tools.flops_check) compose.
- `python <script>.py`, `bash <script>`: the script exists.
Placeholders are rules, not silence: a `<...>` argument is replaced by a dummy value and the rest is still checked;
a lone `...` argument is left out; commands of the kinds in SKIPPED are not checked, and test_skipped_commands
lists them with their reason. A command may start with `$ ` (a transcript) or `VAR=value` settings.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import re
import shlex
from dataclasses import dataclass, field

import pytest
from helpers import ROOT, compose_hydra

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = "PLACEHOLDER"
HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-dir", "-cd",
                          "--config-path", "-cp", "--info", "-i"}
HYDRA_FLAGS = {"-m", "--multirun", "--resolve", "--help", "-h", "--hydra-help", "--run", "-r"}
# commands that are documented but not checked here, by their first word(s), with the reason
SKIPPED = {
    "pip": "installation (needs the network)",
    "python3 -m venv": "environment set-up",
    "python -m venv": "environment set-up",
    "python -m pytest": "the test command itself",
    "python -c": "inline Python",
    "export": "shell setting",
    "cd": "shell setting",
    "srun": "Slurm internals (submitit)",
    "sbatch": "Slurm internals (submitit)",
}


@dataclass
class Command:
    where: str                     # README.md:35
    text: str                      # the command as documented (continuations joined)
    kind: str = ""                 # train | eval | module | script | skip
    args: list[str] = field(default_factory=list)
    multirun: bool = False
    module: str = ""
    reason: str = ""               # why it is skipped
    placeholders: list[str] = field(default_factory=list)


def code_lines(text: str):
    """(line number, line) of every line inside ``` fences, `\\` continuations joined onto their first line."""
    inside, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        if pending:
            line = pending + " " + line.strip()
        else:
            start = number
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip()
            continue
        pending = ""
        yield start, line


def parse(where: str, line: str) -> Command | None:
    """The command on this code line, or None when the line is not one (output, YAML, prose)."""
    text = line.strip()
    if text.startswith("$ "):
        text = text[2:]
    placeholders = re.findall(r"<[A-Za-z][^<>]*>", text)
    text = re.sub(r"<[A-Za-z][^<>]*>", PLACEHOLDER, text)
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value python train.py ...
        words = words[1:]
    if not words:
        return None
    cmd = Command(where, " ".join(words), placeholders=placeholders)
    head = " ".join(words[:3])
    for prefix, reason in SKIPPED.items():
        if head == prefix or head.startswith(prefix + " "):
            cmd.kind, cmd.reason = "skip", reason
            return cmd
    if words[0] in ("fpt-train", "fpt-eval"):
        cmd.kind, rest = ("train" if words[0] == "fpt-train" else "eval"), words[1:]
    elif words[0] in ("torchrun",) or words[:3] == ["python", "-m", "torch.distributed.run"]:
        scripts = [i for i, w in enumerate(words) if w.endswith(".py")]
        if not scripts:
            return None
        cmd.kind, rest = ("train" if words[scripts[0]].endswith("train.py") else "script"), words[scripts[0] + 1:]
        if cmd.kind == "script":
            cmd.args = [words[scripts[0]]]
            return cmd
    elif words[0] in ("python", "python3") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2:
            if not words[2].startswith(("fpt", "tools.")):
                return None
            cmd.kind, cmd.module, rest = "module", words[2], words[3:]
        elif words[1].endswith("train.py"):
            cmd.kind, rest = "train", words[2:]
        elif words[1].endswith("eval.py"):
            cmd.kind, rest = "eval", words[2:]
        elif words[1].endswith(".py"):
            cmd.kind, cmd.args = "script", [words[1]]
            return cmd
        else:
            return None
    elif words[0] == "bash" and len(words) > 1:
        cmd.kind, cmd.args = "script", [words[1]]
        return cmd
    else:
        return None
    args, skip_next = [], False
    for word in rest:
        if skip_next:
            skip_next = False
            continue
        if cmd.kind in ("train", "eval") and word in HYDRA_FLAGS_WITH_VALUE:
            skip_next = True
            continue
        if cmd.kind in ("train", "eval") and word in HYDRA_FLAGS:
            cmd.multirun |= word in ("-m", "--multirun")
            continue
        if word == "...":  # "and the rest": the shown part is checked
            cmd.placeholders.append(word)
            continue
        args.append(word)
    cmd.args = args
    return cmd


def commands_in(text: str, name: str) -> list[Command]:
    found = (parse(f"{name}:{number}", line) for number, line in code_lines(text))
    return [c for c in found if c is not None]


def documented_commands() -> list[Command]:
    return [c for path in DOCS for c in commands_in(path.read_text(), path.relative_to(ROOT).as_posix())]


# --------------------------------------------------------------------------- checking one command
def first_values(overrides: list[str]) -> list[str]:
    """Each swept override (`a=1,2`, `choice(...)`, `range(...)`, `interval(...)`) with its first value only."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    parser, out = OverridesParser.create(), []
    for text in overrides:
        override = parser.parse_override(text)
        if not override.is_sweep_override():
            out.append(text)
        elif isinstance(override.value(), IntervalSweep):
            out.append(f"{override.get_key_element()}={override.value().start}")
        else:
            out.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
    return out


def check_train(cmd: Command, config_name: str = "config") -> None:
    overrides = first_values(cmd.args)
    cfg = compose_hydra(*overrides, config_name=config_name)
    if not cmd.multirun:
        return
    params = cfg.hydra.sweeper.get("params") if "sweeper" in cfg.hydra else None
    if not params:
        return
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    searched = [f"{key}={params[key]}" for key in params if key not in given]  # the command line wins
    compose_hydra(*overrides, *first_values(searched), config_name=config_name)


class Parsed(Exception):
    """Raised in place of running a module: its command line parsed."""

    def __init__(self, rest: list[str], strict: bool):
        super().__init__(rest)
        self.rest, self.strict = rest, strict


def check_module(cmd: Command, monkeypatch) -> None:
    if importlib.util.find_spec(cmd.module) is None:
        raise AssertionError(f"no module {cmd.module}")
    module = importlib.import_module(cmd.module)
    assert callable(getattr(module, "main", None)), f"{cmd.module} has no main()"
    overrides = [a for a in cmd.args if re.fullmatch(r"[+~]*[\w./@-]+=.*", a)]
    if "argparse" not in inspect.getsource(module.main):  # takes Hydra overrides only (tools.scores)
        assert overrides == cmd.args, f"{cmd.module} takes key=value overrides only, not {cmd.args}"
        compose_hydra(*overrides)
        return
    parse_known = argparse.ArgumentParser.parse_known_args

    def parse_args(self, args=None, namespace=None):
        _, rest = parse_known(self, args, namespace)
        raise Parsed(rest, strict=True)

    def parse_known_args(self, args=None, namespace=None):
        _, rest = parse_known(self, args, namespace)
        raise Parsed(rest, strict=False)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    try:
        module.main(list(cmd.args))
    except Parsed as parsed:
        assert not (parsed.strict and parsed.rest), f"unrecognized arguments: {parsed.rest}"
        if parsed.rest:  # the rest of a parse_known_args command line: Hydra overrides (tools.flops_check)
            compose_hydra(*parsed.rest)
        return
    except SystemExit as err:  # argparse's error: a wrong option or value
        raise AssertionError(f"{cmd.module} refused its arguments (exit {err.code})") from err
    finally:
        monkeypatch.undo()
    raise AssertionError(f"{cmd.module}.main ran without parsing a command line")


def check(cmd: Command, monkeypatch) -> None:
    if cmd.kind == "train":
        check_train(cmd)
    elif cmd.kind == "eval":
        check_train(cmd, config_name="eval")
    elif cmd.kind == "module":
        check_module(cmd, monkeypatch)
    elif cmd.kind == "script":
        assert (ROOT / cmd.args[0]).is_file(), f"no script {cmd.args[0]} in the checkout"
    else:
        raise AssertionError(f"unknown kind {cmd.kind!r}")


# --------------------------------------------------------------------------- the tests
COMMANDS = documented_commands()
CHECKED = [c for c in COMMANDS if c.kind != "skip"]


def test_the_docs_hold_commands_of_every_kind():
    kinds = {c.kind for c in COMMANDS}
    assert {"train", "eval", "module", "skip"} <= kinds, kinds
    assert len(CHECKED) >= 50, len(CHECKED)


@pytest.mark.parametrize("cmd", CHECKED, ids=[f"{c.where} {c.text[:60]}" for c in CHECKED])
def test_documented_command(cmd, monkeypatch):
    try:
        check(cmd, monkeypatch)
    except Exception as err:  # noqa: BLE001  (name the command and its place in the docs)
        pytest.fail(f"{cmd.where}: `{cmd.text}` does not hold: {type(err).__name__}: {err}")


def test_skipped_commands():
    """Every unchecked command has a reason from SKIPPED; placeholders are counted (see the module docstring)."""
    skipped = [c for c in COMMANDS if c.kind == "skip"]
    assert all(c.reason in SKIPPED.values() for c in skipped)
    with_placeholders = [c for c in CHECKED if c.placeholders]
    # a budget, not a list: a doc that turns most commands into placeholders or skips them should be noticed
    assert len(skipped) <= len(COMMANDS) // 5, [f"{c.where}: {c.text} ({c.reason})" for c in skipped]
    assert len(with_placeholders) <= len(CHECKED) // 10, [f"{c.where}: {c.text}" for c in with_placeholders]


# --------------------------------------------------------------------------- the checks catch mistakes
# (a command line, what the error must name)
BAD = [
    ("python train.py promt=deep", "promt"),                                  # a misspelt group
    ("python train.py trainer.max_stepz=10", "max_stepz"),                    # a misspelt key
    ("python train.py model=tiny-bert schedule=fpt_xx", "fpt_xx"),            # a misspelt option
    ("$ python train.py -m prompt.length=4,8 optim.lrr=1e-2,1e-3", "lrr"),    # a misspelt swept key
    ("python train.py -m hparams_search=no_such_search", "no_such_search"),
    ("fpt-train prompt=deep \\\n    trainer.eval_evry=5", "eval_evry"),     # after a continuation
    ("python eval.py run=outputs/demo splt=test", "splt"),                    # eval.py's own config
    ("python -m fpt.collect outputs/multirun --plott", "--plott"),            # a misspelt option
    ("python -m fpt.export outputs/demo --format onnx", "onnx"),              # a value argparse refuses
    ("python -m fpt.nothing_here x", "fpt.nothing_here"),                     # no such module
    ("python -m tools.scores model=t5-large tsk=mnli", "tsk"),                  # a module that takes overrides
    ("python benchmarks/no_such_script.py", "no_such_script.py"),
]
BAD_DOC = "Prose that mentions python train.py promt=deep outside a code block is not a command.\n\n```bash\n" + \
    "\n".join(line for line, _ in BAD) + "\n```\n"


@pytest.mark.parametrize("index", range(len(BAD)), ids=[line.split("\n")[0][:50] for line, _ in BAD])
def test_a_wrong_command_is_caught_naming_the_mistake(index, monkeypatch, capsys):
    cmd = commands_in(BAD_DOC, "bad.md")[index]
    with pytest.raises(Exception) as caught:
        check(cmd, monkeypatch)
    message = str(caught.value) + str(caught.value.__cause__) + capsys.readouterr().err  # argparse prints its error
    assert BAD[index][1] in message, message


def test_the_bad_doc_is_read_as_documented():
    cmds = commands_in(BAD_DOC, "bad.md")
    assert len(cmds) == len(BAD)  # the prose line is not a command; the continuation is one command
    assert cmds[5].text == "fpt-train prompt=deep trainer.eval_evry=5" and cmds[5].where == "bad.md:9"
    assert cmds[3].multirun and cmds[3].args == ["prompt.length=4,8", "optim.lrr=1e-2,1e-3"]


def test_good_commands_pass_the_same_checks(monkeypatch):
    """The counterpart of the bad ones: the same kinds of command, spelt right, hold (the checks are not just
    refusing everything)."""
    good = commands_in("""```
$ WANDB_MODE=offline python train.py -m prompt.length=4,8 optim.lr=1e-2,1e-3 'logger=[csv,jsonl]' --cfg job
python train.py -m hparams_search=ptv2_grid task=rte model=roberta-large prompt.length=16,32
fpt-train prompt=deep \\
    trainer.eval_every=5
python eval.py run=outputs/demo split=test
python -m fpt.collect <sweep dir> --plot
python -m fpt.export outputs/demo --format peft --allow-inexact
python -m tools.scores model=t5-large task=mnli
python train.py -m hydra/launcher=local_gpus hydra.launcher.n_jobs=4 ...
pip install -e .
```""", "good.md")
    assert [c.kind for c in good] == ["train", "train", "train", "eval", "module", "module", "module", "train", "skip"]
    assert good[4].placeholders == ["<sweep dir>"] and good[7].placeholders == ["..."]
    for cmd in good[:-1]:
        check(cmd, monkeypatch)
