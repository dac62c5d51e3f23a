import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="fpt-hf-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# the benchmark files: $FPT_DATA_ROOT, or the tests' convention, shared/data beside the repository; exported so
# that every composed config and every subprocess reads the same root (paths.data_root, conf/paths/default.yaml)
SHARED_DATA = Path(os.environ.get("FPT_DATA_ROOT") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
os.environ["FPT_DATA_ROOT"] = str(SHARED_DATA)


def skip_or_fail(reason: str, require: str = "FPT_REQUIRE_SHARED_DATA"):
    """Skip the test for `reason`, or fail it when the environment says what is missing must be there
    (`require`=1: .ci/run sets FPT_REQUIRE_SHARED_DATA and FPT_REQUIRE_RETRIEVAL)."""
    if os.environ.get(require) == "1":
        pytest.fail(f"{require}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def shared_data():
    """../shared/data, or skip (fail when FPT_REQUIRE_SHARED_DATA=1, as in CI)."""
    if not SHARED_DATA.is_dir():
        skip_or_fail(f"real benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


# --------------------------------------------------------------------------- a toy task a tiny model learns
# (helpers.py; trained once per test module that asks; imported inside the fixtures: helpers imports this file)
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from helpers import write_toy
    return write_toy(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory, toy):
    from helpers import TOY_BERT, train_toy
    return train_toy(tmp_path_factory.mktemp("bert"), toy, *TOY_BERT)


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory, toy):
    from helpers import TOY_T5, train_toy
    return train_toy(tmp_path_factory.mktemp("t5"), toy, *TOY_T5)
