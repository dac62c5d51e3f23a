"""Writes the tiny topic task used by the README's "add a task with a YAML file" example (train.csv, dev.csv).

Headlines are composed by this script from hand-written word lists (four topics). Regenerate with:
python -m fpt.data.make_example_topics
"""
import csv
import random
from pathlib import Path

TOPICS = {
    "sport": (["the striker", "the home team", "the champion", "the coach", "the goalkeeper", "the rookie"],
              ["scored twice in the final", "won the league title", "broke the world record", "was sent off",
               "signed a new contract", "lost the semi-final on penalties"]),
    "food": (["the bakery", "a new restaurant", "the chef", "the street market", "the cafe", "the local farm"],
             ["serves the best noodles in town", "baked a giant cake", "opened a vegan menu",
              "won a prize for its cheese", "sells fresh bread every morning", "grows organic tomatoes"]),
    "weather": (["the storm", "heavy rain", "the heatwave", "thick fog", "the snow", "strong wind"],
                ["closed the mountain roads", "flooded the valley", "broke temperature records",
                 "delayed morning flights", "is expected to last until sunday", "knocked down power lines"]),
    "tech": (["the startup", "the phone maker", "a software update", "the chip company", "the new laptop",
              "the app"],
             ["released a faster processor", "fixed a security bug", "reached a million users",
              "launched a cheaper model", "now runs on solar power", "added a dark mode"]),
}
OPENERS = ["", "breaking: ", "report: ", "today ", "update: "]


def write(path: Path, n: int, rng: random.Random) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["headline", "topic"])
        for i in range(n):
            topic = list(TOPICS)[i % len(TOPICS)]
            subjects, events = TOPICS[topic]
            out.writerow([rng.choice(OPENERS) + f"{rng.choice(subjects)} {rng.choice(events)}", topic])


if __name__ == "__main__":
    folder = Path(__file__).parent / "example_topics"
    folder.mkdir(exist_ok=True)
    rng = random.Random(0)
    write(folder / "train.csv", 240, rng)
    write(folder / "dev.csv", 80, rng)
