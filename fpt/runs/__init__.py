"""A run's bookkeeping, one module per concept (light imports: the start-up checks use some before torch loads).

- `launch`: what train.py does with a composed config: choose the folder, skip / resume / start, train, write.
- `folder`: which folder a run uses and whether it may (the folder lock, skip / resume / refuse, run_link.json).
- `identity`: what a run *is* (its config less runtime keys, plus its data files) and the fingerprints of that.
- `checkpoint`: atomic writes, checksummed checkpoints (`last.pt`) and tensor files.
- `results`: results.json, the one schema of a run's outcome.
- `trained`: the trained-tensor files (`trainable_best/final.safetensors`) and loading them back onto a model.
- `init_from`: starting a run from another run's trained prompt.
"""
