"""fpt's Hydra plugins (found by Hydra in the `hydra_plugins` namespace when train.py's folder is on the path)."""
