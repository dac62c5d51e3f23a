"""Developer tools run from a checkout (`python -m tools.<name>`), not part of the installed library:
flops_check (the analytic FLOPs count against ptflops, a schedule's cost per stage) and scores (activation
scores of a task and model, computed ahead of a run with the trainer's own set-up)."""
