"""Free text generation (XSum): the template -> task.target, greedy decoding. T5 only.

Generation length limits are task.generate_max_tokens / task.generate_min_tokens; training targets
are cut at task.max_target_length tokens. Any text metric works (XSum: ROUGE-1/2/L F1).
"""
from __future__ import annotations

from ..tasks import text
from .base import Kind, register_kind


@register_kind("generation")
class Generation(Kind):
    reads = ("target",)
    bert = False
    generates_text = True

    def check_config(self, task, seq2seq):
        super().check_config(task, seq2seq)
        if not task.target:
            raise ValueError(f"task {task.name}: task.target must give the target text, e.g. '{{summary}}'")

    def targets(self, task, row):
        return [text(task, row, task.target)]

    def reference(self, task, row):
        return text(task, row, task.target)

    def from_text(self, task, generated):
        return generated.strip()
