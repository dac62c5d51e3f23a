"""Dense retrieval: exact top-k search over corpus embeddings (search.py), ranking metrics and calibration
(measures.py), BM25 hard negatives (negatives.py). The task kind is fpt/task_kinds/retrieval.py, the bi-encoder
and ColBERT model fpt/models/retrieval.py, the data readers fpt/readers/beir.py (docs/retrieval.md)."""
