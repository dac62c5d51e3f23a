"""Growth schedules (FPT): which part of the model a run trains at each step.

A schedule is a list of stages (conf/schedule/*.yaml), each `{layers, ffn_ratio, steps or fraction}`.
A stage runs a partial model cut from the full pretrained one:

- layer dropping: `layers` evenly spaced layers, the first and the last included (`select_layers`, FPT's
  choice), or with `schedule.keep_layers=bottom` the first `layers` ones (`bottom_layers`);
- FFN reduction: in every kept layer, the `ffn_ratio` share of FFN neurons with the highest activation
  scores (fpt/scores.py), the FFN weights sliced to those neurons, no rescaling.

Every stage is rebuilt from the full model's own modules, so growing restores the original layers and
neurons exactly, and the neuron sets are nested (one score order per layer). The trainable tensors
(shallow prompt, deep prompt, head) are the same Parameters in every stage: the optimizer holds them all
from the start and the LR schedule carries over. A deep prompt has its own prefix Parameter for every
attention site of the full model; a site absent from a stage is left out of forward and backward (its
Parameter does not require grad, its grad stays None), so the optimizer neither steps, decays nor keeps
state for it; when the site first joins its optimizer state starts fresh (AdamW, Adafactor), and a site that
sits out a stage and returns keeps the state it had. A joining prefix is its own untrained init, a copy of the
nearest trained layer's, or its init behind a learnable gate that starts at 0, so that joining changes nothing
until the gate grows (`schedule.new_layer_prefix=init|copy|gate`); `schedule.stage_warmup_steps` ramps the LR up
again at each stage change (fpt/prompts.py has the gate).

With no stages the full model trains for the whole run (vanilla prompt tuning).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .config import KeepLayers
from .prompt_methods import prompt_method

log = logging.getLogger("fpt")


# --------------------------------------------------------------------------- stages as data
@dataclass
class Stage:
    start: int                   # first step of the stage
    end: int                     # one past its last step
    layers: dict[str, list[int]]  # kept layers per stack, in the full model's numbering
    ffn: dict[str, int]          # FFN neurons kept per layer, per stack


def select_layers(keep: int, total: int) -> list[int]:
    """`keep` evenly spaced layers of `total`, the first and the last included: 24 -> 6 gives
    [0, 4, 8, 13, 18, 23] (the gaps differ by at most one, the shorter ones first)."""
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [0]
    gap, longer = divmod(total - 1, keep - 1)
    kept = [0]
    for i in range(keep - 1):
        kept.append(kept[-1] + gap + (1 if i >= keep - 1 - longer else 0))
    return kept


def bottom_layers(keep: int, total: int) -> list[int]:
    """The first `keep` of `total` layers: each kept layer sees exactly what it sees in the full model, so a
    deep prompt's prefixes there train as they would at full size (only the head reads another layer)."""
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    return list(range(keep))


# schedule.keep_layers: which layers a stage of k layers keeps
KEEP_LAYERS = {KeepLayers.spread: select_layers, KeepLayers.bottom: bottom_layers}  # schedule.keep_layers


def _layer_count(value, total: int, where: str) -> int:
    """StageConfig.layers: None = all, < 1 = a fraction of the layers, else a count."""
    if value is None:
        return total
    if value <= 0:
        raise ValueError(f"{where}.layers={value}: must be > 0")
    if value < 1:
        return max(1, round(value * total))
    if value != int(value) or value > total:
        raise ValueError(f"{where}.layers={value}: a layer count must be a whole number <= {total} "
                         f"(or a fraction < 1)")
    return int(value)


def reduces_decoder(schedule, generates_text: bool) -> bool:
    """schedule.reduce_decoder, or when null: FPT's choice, the decoder shrinks for tasks whose answers are
    generated text (SQuAD, ReCoRD, XSum: the task kind's `generates_text`) and not for label words (MNLI, QQP)."""
    if schedule.reduce_decoder is not None:
        return schedule.reduce_decoder
    return generates_text


def resolve_stages(schedule, dims: dict, total_steps: int, reduce_decoder: bool | None = None) -> list[Stage]:
    """Turn schedule.stages into step ranges, kept layers and FFN widths for a model of these dims."""
    stacks = list(dims["layers"])
    if reduce_decoder is None:
        reduce_decoder = bool(schedule.reduce_decoder)
    reduced = [s for s in stacks if s == "encoder" or reduce_decoder]
    choose = KEEP_LAYERS[schedule.keep_layers]
    stages, cum = [], 0.0
    for k, st in enumerate(schedule.stages):
        where = f"schedule.stages.{k}"
        if st.steps is not None and st.fraction is not None:
            raise ValueError(f"{where}: give steps or fraction, not both")
        if not 0 < st.ffn_ratio <= 1:
            raise ValueError(f"{where}.ffn_ratio={st.ffn_ratio}: must be in (0, 1]")
        if st.steps is not None:
            if st.steps < 0:
                raise ValueError(f"{where}.steps={st.steps}: must be >= 0")
            cum += st.steps
        elif st.fraction is not None:
            if not 0 <= st.fraction <= 1:
                raise ValueError(f"{where}.fraction={st.fraction}: must be in [0, 1]")
            cum += st.fraction * total_steps
        elif k == len(schedule.stages) - 1:
            cum = total_steps  # the last stage may take the remaining steps
        else:
            raise ValueError(f"{where}: give steps or fraction (only the last stage may omit both)")
        start = stages[-1].end if stages else 0
        end = round(cum)
        if end < start:
            raise ValueError(f"{where}: stage ends at step {end}, before it starts ({start})")
        layers = {s: list(range(dims["layers"][s])) for s in stacks}
        ffn = {s: dims["ffn"] for s in stacks}
        for s in reduced:
            layers[s] = choose(_layer_count(st.layers, dims["layers"][s], where), dims["layers"][s])
            ffn[s] = max(1, round(st.ffn_ratio * dims["ffn"]))
        stages.append(Stage(start, end, layers, ffn))
    if not stages:
        raise ValueError("schedule.stages is empty")
    if stages[-1].end != total_steps:
        raise ValueError(f"schedule {schedule.name}: the stages cover {stages[-1].end} steps but the run has "
                         f"{total_steps} (trainer.max_steps/epochs); use fractions or let the last stage "
                         f"take the rest")
    return stages


def gated_layers(stages: list[Stage], dims: dict, new_layer_prefix: str, deep: bool) -> set[tuple[str, int]]:
    """The layers whose deep-prompt prefixes sit behind a gate (schedule.new_layer_prefix=gate, a deep prompt):
    every layer absent from the first stage; all attention sites of such a layer are gated."""
    if new_layer_prefix != "gate" or not deep or not stages:
        return set()
    first = {(s, i) for s, keep in stages[0].layers.items() for i in keep}
    return {(s, i) for s, n in dims["layers"].items() for i in range(n)} - first


def stage_shape(stage: Stage, gated: set[tuple[str, int]] = frozenset()) -> dict:
    """What a stage runs, as keyword arguments of fpt.flops.step_flops: layers and FFN widths per stack, and how
    many of its layers are gated (`gated`: gated_layers()); a gated site runs its attention kernel twice."""
    return {"layers": {s: len(v) for s, v in stage.layers.items()}, "ffn_width": dict(stage.ffn),
            "gated": {s: sum((s, i) in gated for i in keep) for s, keep in stage.layers.items()}}


# --------------------------------------------------------------------------- partial models
def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A frozen Linear holding exactly these tensors (no fresh init)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        layer.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias, requires_grad=False)
    return layer


def narrow_ffn(ffn, neurons: torch.Tensor) -> None:
    """Keep only these neurons of one FFN: rows of its input projections, columns of its output one."""
    neurons = neurons.to(ffn.out_proj.weight.device)
    for name, proj in zip(ffn.in_names, ffn.in_projs):
        bias = proj.bias[neurons] if proj.bias is not None else None
        setattr(ffn.owner, name, _linear(proj.weight[neurons], bias))
    out = ffn.out_proj
    setattr(ffn.out_owner, ffn.out_name, _linear(out.weight[:, neurons], out.bias))


class Growth:
    """Moves a PromptedModel between the stages of a schedule; `enter(step)` before every step."""

    def __init__(self, model=None, stages: list[Stage] | None = None, scores: dict | None = None,
                 new_layer_prefix: str = "init", stage_warmup_steps: int = 0):
        self.model, self.stages = model, stages or []
        self.new_layer_prefix = new_layer_prefix
        self.stage_warmup_steps = stage_warmup_steps
        self.stage_index = 0
        self.scores_info: dict = {}
        self._built = None          # the stage the model is shaped as
        self._prompt_stage = None   # the last stage the prompt tensors were trained in
        if not self.stages:
            return
        family, backbone = model.family, model.backbone
        self.full = dict(family.layer_stacks(backbone))  # the original ModuleLists
        self.ffn_modules = {}  # (stack, layer) -> the original projections, to restore
        for stack, layers in self.full.items():
            for i, layer in enumerate(layers):
                ffn = family.ffn(layer)
                self.ffn_modules[stack, i] = (ffn, list(ffn.in_projs), ffn.out_proj)
        width = {stack: family.ffn(layers[0]).width for stack, layers in self.full.items()}
        narrowed = {s for st in self.stages for s, w in st.ffn.items() if w < width[s]}
        if narrowed and scores is None:
            raise ValueError("FFN reduction (ffn_ratio < 1) needs activation scores")
        # one neuron order per layer, best first: every stage keeps a prefix of it, so sets are nested
        self.order = {s: torch.argsort(scores[s].float(), dim=-1, descending=True, stable=True)
                      for s in narrowed}
        self.site_index = {name: i for i, name in enumerate(model.site_names)}
        # sites that join later grow in from 0 (new_layer_prefix=gate)
        self.gated = gated_layers(self.stages, family.dims(backbone.config), new_layer_prefix, model.deep is not None)
        if self.gated:
            model.deep.add_gates([i for i, name in enumerate(model.site_names)
                                  if model.family.site_layer(name) in self.gated and str(i) not in model.deep.gates])

    # ---------------------------------------------------------------- construction from a config
    @classmethod
    def from_config(cls, sched, model, total_steps: int, *, prompt_type: str, prompt_projection: bool = False,
                    generates_text: bool = False, scores: Callable[[], tuple[dict, dict]] | None = None):
        """The growth of `sched` (the schedule config) for `model` over `total_steps`: prompt.type and
        prompt.projection say what can grow, `generates_text` (the task kind's) whether the decoder shrinks when
        schedule.reduce_decoder is null, and `scores()` loads or computes the activation scores (called only when
        a stage narrows the FFN; fpt.scores.load_or_compute)."""
        if not sched.stages:
            return cls()
        method = prompt_method(prompt_type)
        if not method.frozen_backbone:
            raise ValueError(f"schedule={sched.name} grows a frozen model under a prompt; it cannot be combined "
                             f"with prompt={prompt_type} (the backbone's own weights train)")
        if sched.stage_warmup_steps < 0:
            raise ValueError(f"schedule.stage_warmup_steps={sched.stage_warmup_steps}: must be >= 0")
        if sched.new_layer_prefix == "copy" and method.layer_prefix and prompt_projection:
            raise ValueError("schedule.new_layer_prefix=copy needs per-layer prefixes; with prompt.projection=true "
                             "use schedule.new_layer_prefix=init or gate")
        dims = model.family.dims(model.backbone.config)
        stages = resolve_stages(sched, dims, total_steps, reduces_decoder(sched, generates_text))
        ffn_scores, info = None, {}
        if scores is not None and any(w < dims["ffn"] for st in stages for w in st.ffn.values()):
            ffn_scores, info = scores()  # (without them the FFN reduction below fails loudly)
        growth = cls(model, stages, ffn_scores, sched.new_layer_prefix, sched.stage_warmup_steps)
        growth.scores_info = info
        for k, st in enumerate(stages):
            log.info("stage %d: steps [%d, %d), layers %s, FFN width %s", k, st.start, st.end,
                     {s: len(v) for s, v in st.layers.items()}, st.ffn)
        return growth

    # ---------------------------------------------------------------- the trainer's interface
    def stage_at(self, step: int) -> int:
        for k, st in enumerate(self.stages):
            if step < st.end:
                return k
        return len(self.stages) - 1

    def enter(self, step: int) -> bool:
        """Shape the model as the stage `step` belongs to; True if the model or the prompt changed.

        Idempotent, and jumps straight to any stage (resume). The first call after a resume comes right
        before the checkpoint's tensors are loaded: if that checkpoint ended the previous stage, the
        prefixes of joining layers are set at the next call, once the trained tensors are in place.
        """
        if not self.stages:
            return False
        k = self.stage_at(step)
        changed = k != self._built
        if changed:
            self._build(k)
        if self._prompt_stage is None and step > 0:  # a resume: its tensors are loaded after this call
            self._prompt_stage = self.stage_at(step - 1)
        else:
            if self._prompt_stage is not None and self._prompt_stage < k:
                for j in range(self._prompt_stage + 1, k + 1):
                    self._join_prefixes(j)
                changed = True
            self._prompt_stage = k
        self.stage_index = k
        return changed

    def lr_factor(self, step: int) -> float:
        """schedule.stage_warmup_steps=W: the LR of the first W steps of every stage after the first is
        scaled by 1/(W+1), 2/(W+1), ..., W/(W+1) (a multiplicative factor on the LR schedule); 1 otherwise."""
        if not self.stages or not self.stage_warmup_steps:
            return 1.0
        k = self.stage_at(step)
        start = self.stages[k].start
        if k == 0 or start == 0:
            return 1.0
        return min(1.0, (step - start + 1) / (self.stage_warmup_steps + 1))

    @property
    def final_stage(self) -> bool:
        """Whether the model now is the one the run ends with (evaluations here pick the best prompt)."""
        return not self.stages or self.stage_index == len(self.stages) - 1

    def current_shape(self, dims: dict) -> dict:
        """Layers, FFN widths and gated layers run now, as keyword arguments of fpt.flops.step_flops."""
        if not self.stages:
            return {}
        return stage_shape(self.stages[self.stage_index], self.gated)

    def summary(self) -> dict:
        """What results.json records about the schedule."""
        stages = [{"stage": k, "start": st.start, "end": st.end, "layers": {s: len(v) for s, v in st.layers.items()},
                   "kept_layers": st.layers, "ffn_width": st.ffn} for k, st in enumerate(self.stages)]
        return {"stages": stages, "scores": self.scores_info, "new_layer_prefix": self.new_layer_prefix,
                "stage_warmup_steps": self.stage_warmup_steps}

    # ---------------------------------------------------------------- building a stage
    def _restore(self) -> None:
        family, backbone = self.model.family, self.model.backbone
        for stack, layers in self.full.items():
            family.set_layer_stack(backbone, stack, layers)
        for ffn, in_projs, out_proj in self.ffn_modules.values():
            for name, proj in zip(ffn.in_names, in_projs):
                setattr(ffn.owner, name, proj)
            setattr(ffn.out_owner, ffn.out_name, out_proj)

    def ends_partial_stage(self, step: int) -> bool:
        """Whether `step` (steps done) is the last step of a stage before the final one."""
        return any(st.end == step for st in self.stages[:-1])

    @contextlib.contextmanager
    def final_model(self):
        """Within the block the model is shaped as the final stage (the prompt as it stands: joining prefixes
        not copied, gates as they are); the current stage is rebuilt after. For diagnostics: how a partial
        stage's prompt does on the model the run ends with."""
        k = self._built
        self._build(len(self.stages) - 1)
        try:
            yield
        finally:
            self._build(k)

    def _build(self, k: int) -> None:
        """Cut stage k's partial model from the full one (restored first, so this is deterministic)."""
        self._restore()
        st, family, backbone = self.stages[k], self.model.family, self.model.backbone
        for stack, keep in st.layers.items():
            full = self.full[stack]
            if stack in self.order and st.ffn[stack] < self.order[stack].shape[1]:
                for i in keep:
                    neurons = self.order[stack][i, :st.ffn[stack]].sort().values
                    narrow_ffn(self.ffn_modules[stack, i][0], neurons)
            if len(keep) < len(full):
                family.set_layer_stack(backbone, stack, nn.ModuleList([full[i] for i in keep]))
        kept = {(s, i) for s, keep in st.layers.items() for i in keep}
        active = [family.site_layer(name) in kept for name in self.model.site_names]
        self.model.set_active_sites(None if all(active) else active)
        self.model.apply_gradient_checkpointing()  # trainer.gradient_checkpointing: this stage's layers too
        self._built = k

    @torch.no_grad()
    def _join_prefixes(self, k: int) -> None:
        """Deep prompts, copy mode, entering stage k: a layer that joins for the first time starts from the
        prefix of the nearest layer trained in stage k-1. Evenly spaced layer sets need not be nested (MiniLM's
        6 layers: [0, 5], [0, 2, 5], [0, 1, 3, 5]); a layer that trained in an earlier stage and comes back keeps
        its own prefix, as it keeps its own optimizer state."""
        deep = self.model.deep
        if deep is None or self.new_layer_prefix != "copy":
            return
        family = self.model.family
        before, after = self.stages[k - 1], self.stages[k]
        for name, site in self.site_index.items():  # e.g. "decoder.3.cross"
            stack, j = family.site_layer(name)
            trained = before.layers[stack]
            if j in after.layers[stack] and not any(j in st.layers[stack] for st in self.stages[:k]):
                src = min(trained, key=lambda i: (abs(i - j), i))
                kind = name.split(".", 2)[2]
                deep.site_params(site).copy_(deep.site_params(self.site_index[f"{stack}.{src}.{kind}"]))
