"""Retrieval performance on this CPU: queries/s and passages/s encoded by MiniLM through the evaluation path
(length-sorted batches, `fpt.batching.map_sorted`, the retrieval kind's features), and the peak memory of exact
search over a 50k-passage corpus (chunked top-k, fpt/retrieval/search.py) against the full queries x corpus matrix.

    python benchmarks/retrieval_perf.py outputs/beir/squad --threads 1
"""
import argparse
import subprocess
import sys
import time

import torch

SEARCH = """
import sys, torch
from fpt.retrieval.search import dense_topk
q, n, d, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
g = torch.Generator().manual_seed(0)
queries, passages = torch.randn(q, d, generator=g), torch.randn(n, d, generator=g)
def kb(field):
    return int(next(line for line in open("/proc/self/status") if line.startswith(field)).split()[1])
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current resident size
before = kb("VmRSS:")
if chunk:
    dense_topk(queries, passages, 100, chunk=chunk)
else:
    (queries @ passages.T).topk(100, dim=1)
print((kb("VmHWM:") - before) / 1024)
"""


def encode_speed(folder: str, threads: int, limit: int) -> dict:
    from fpt.batching import map_sorted
    from fpt.config import compose
    from fpt.models import build_model, load_tokenizer
    from fpt.task_kinds import get_kind
    from fpt.tasks import read_rows
    torch.set_num_threads(threads)
    cfg = compose("model=minilm", "task=beir", f"task.data_dir={folder}", "prompt=none")
    tok, kind = load_tokenizer(cfg.model), get_kind(cfg.task)
    model = build_model(cfg.model, cfg.prompt, cfg.task, tok, kind=get_kind(cfg.task)).eval()
    rows = read_rows(cfg.task, "test")[:limit]
    feats = kind.features(cfg.task, rows, tok, False)
    out = {}
    for name, idx in [("queries", range(len(rows))), ("passages", range(len(rows), min(len(feats), 2 * limit)))]:
        start = time.perf_counter()
        with torch.no_grad():
            map_sorted(lambda b: model.embed_rows(b), feats, idx, 128, tok.pad_token_id)
        out[f"{name}_per_s"] = len(idx) / (time.perf_counter() - start)
        out[f"{name}_tokens_mean"] = sum(len(feats[i]["input_ids"]) for i in idx) / len(idx)
    return out


def search_peak_mb(queries: int, passages: int, dim: int, chunk: int) -> float:
    proc = subprocess.run([sys.executable, "-c", SEARCH, str(queries), str(passages), str(dim), str(chunk)],
                          capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a BEIR folder (its test queries and corpus are encoded)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=300, help="queries and passages encoded")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--passages", type=int, default=50000)
    args = parser.parse_args()
    print(encode_speed(args.folder, args.threads, args.limit))
    for chunk in (8192, 0):
        mb = search_peak_mb(args.queries, args.passages, 384, chunk)
        print(f"search {args.queries} queries x {args.passages} passages (384-d), "
              f"{'chunk ' + str(chunk) if chunk else 'full matrix'}: peak resident memory above the inputs {mb:.0f} MB")


if __name__ == "__main__":
    main()
