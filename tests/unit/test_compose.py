"""`python train.py task=X --cfg job` composes for every task with a BERT-family and a T5 model.

Composition goes through Hydra's compose API in-process (what train.py sees); one real `--cfg job`
subprocess checks the command line itself (tests/integration/test_compose_cli.py). Every task also passes
its start-up checks (kind, labels, verbalizers, metric) with each model family that has a form for it, and
names the right model family when it does not.
"""
import pytest
from helpers import compose

from fpt import CONF_DIR
from fpt.evaluation import check_metric
from fpt.task_kinds import get_kind

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
PAPER_TASKS = {"mnli", "qqp", "squad_v2", "record", "xsum", "copa", "wsc", "wic", "multirc", "boolq", "cb",
               "superglue-rte", "rte", "conll03", "conll04", "ontonotes", "conll05", "conll12", "squad"}
T5_ONLY = {"xsum"}  # generation has no BERT head; every other task has both forms


def test_every_task_of_both_papers_has_a_yaml():
    assert PAPER_TASKS <= set(TASKS)


@pytest.mark.parametrize("model", ["roberta-large", "t5-base"])
@pytest.mark.parametrize("task", TASKS)
def test_task_composes_and_passes_start_up_checks(task, model):
    cfg = compose(f"task={task}", f"model={model}")
    assert cfg.task.name == task and cfg.model.name == model
    seq2seq = cfg.model.family == "t5"
    check_metric(cfg.task)
    kind = get_kind(cfg.task)
    if not seq2seq and task in T5_ONLY:
        with pytest.raises(ValueError, match="use a T5 model"):
            kind.check_config(cfg.task, seq2seq)
    else:
        kind.check_config(cfg.task, seq2seq)
