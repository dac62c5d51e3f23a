"""How warm is the optimizer state a growth stage hands to the next? For a run stopped at a stage end
(`trainer.stop_at_step`), per trainable tensor: AdamW's bias-corrected second moment v_hat, the mean squared
gradient on the stage's partial model and on the grown model (the same 8 training batches that follow, dropout as
in training), and sqrt(v_hat / g2_full), the factor by which the carried state shrinks the first updates on the
grown model against a fresh optimizer's (1 = no effect).

    python train.py experiment=fpt_sst2/deep_fpt_init seed=1 optim.schedule=constant trainer.stop_at_step=450 \\
        hydra.run.dir=outputs/stop450
    python benchmarks/adam_scale.py outputs/stop450
"""
import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf

from fpt.batching import collate
from fpt.trainer import Trainer


def mean_sq_grads(trainer: Trainer, first_step: int, batches: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in range(first_step, first_step + batches):
        rows = [trainer.train_set[i] for i in trainer.stream.indices(s)]
        trainer.model.zero_grad(set_to_none=True)
        trainer.model(collate(rows, trainer.pad_id))["loss"].backward()
        for name, p in trainer.model.trainable_parameters():
            if p.grad is not None:
                out[name] = out.get(name, 0.0) + p.grad.pow(2).mean().item() / batches
    trainer.model.zero_grad(set_to_none=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder stopped at the last step of a partial stage")
    ap.add_argument("--batches", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    trainer = Trainer(OmegaConf.load(args.run / "config.yaml"), args.run)
    if not trainer.load():
        raise SystemExit(f"{args.run}: no checkpoint to read")
    step = trainer.step
    if not trainer.growth.stages or not trainer.growth.ends_partial_stage(step):
        raise SystemExit(f"{args.run}: step {step} does not end a partial stage of its growth schedule")
    trainer.model.train()
    trainer.growth.enter(step - 1)  # the stage that just ended
    partial = mean_sq_grads(trainer, step, args.batches)
    trainer.growth.enter(step)      # grown: joining sites start as the schedule says
    full = mean_sq_grads(trainer, step, args.batches)
    beta2 = trainer.cfg.optim.betas[1]
    print(f"step {step}, stage {trainer.growth.stage_index - 1} -> {trainer.growth.stage_index}")
    print("| tensor | optimizer steps | v_hat | g2 partial | g2 grown | sqrt(v_hat / g2 grown) |")
    print("|---|---|---|---|---|---|")
    for name, p in trainer.model.trainable_parameters():
        state = trainer.optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            print(f"| {name} | 0 (fresh) | - | - | {full.get(name, float('nan')):.2e} | - |")
            continue
        n = float(state["step"])
        v_hat = state["exp_avg_sq"].mean().item() / (1 - beta2 ** n)
        g_partial = f"{partial[name]:.2e}" if name in partial else "absent"
        print(f"| {name} | {n:.0f} | {v_hat:.2e} | {g_partial} | {full[name]:.2e} | {(v_hat / full[name]) ** 0.5:.2f} |")


if __name__ == "__main__":
    main()
