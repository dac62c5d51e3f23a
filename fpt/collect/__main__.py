"""`python -m fpt.collect ...`: fpt/collect/command.py."""
from .command import main

main()
