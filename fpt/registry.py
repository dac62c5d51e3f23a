"""The named entries of one extension point: metrics (fpt/metrics.py), task kinds (fpt/task_kinds/base.py), model
families (fpt/models/family.py) and prompt methods (fpt/prompt_methods.py) each keep one `Registry`, filled by
their `@register_...` decorator. Free of heavy imports: the start-up checks (fpt/validate.py) read them."""
from __future__ import annotations


class Registry(dict):
    """name -> entry; `what` names an entry in messages ("model family"), `key` the config key choosing one."""

    def __init__(self, what: str, key: str):
        super().__init__()
        self.what, self.key = what, key

    def add(self, name: str, entry):
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = entry
        return entry

    def lookup(self, name: str, where: str = ""):
        """The entry of `name`, or a ValueError naming the key, the value and the registered names."""
        if name not in self:
            raise ValueError(f"{where}{self.key}={name!r}: expected one of {list(self)}")
        return self[name]
