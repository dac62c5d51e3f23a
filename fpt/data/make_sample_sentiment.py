"""Writes the small sentiment task that ships with fpt (train.tsv, dev.tsv in GLUE SST-2 format).

The sentences are composed by this script from hand-written word lists, so `python train.py` runs
offline with no downloaded data. Re-run to regenerate: python -m fpt.data.make_sample_sentiment
"""
import random
from pathlib import Path

SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the script", "the soundtrack", "the ending",
            "the cast", "the director's latest work", "the story", "the dialogue", "the cinematography",
            "this sequel", "the lead performance", "the humor", "the pacing", "the visual effects", "the premise"]
POSITIVE = ["wonderful", "moving", "brilliant", "delightful", "charming", "gripping", "beautiful", "hilarious",
            "heartfelt", "clever", "superb", "engaging", "touching", "stunning", "witty", "memorable",
            "refreshing", "powerful", "inspiring", "magnificent"]
NEGATIVE = ["dull", "boring", "awful", "tedious", "clumsy", "lifeless", "predictable", "terrible", "bland",
            "painful", "forgettable", "messy", "pointless", "shallow", "tiresome", "dreadful", "stale",
            "incoherent", "lazy", "annoying"]
FRAMES = ["{s} is {a}.", "{s} was {a} from start to finish.", "i found {s} {a}.", "{s} feels {a} and {b}.",
          "honestly , {s} is {a} .", "what a {a} experience ; {s} is {b} .", "{s} turned out to be {a}.",
          "by the end , {s} seemed {a} .", "critics will call {s} {a} , and they are right .",
          "{s} is simply {a} , even {b} ."]
INTENSIFIERS = ["", "", "really ", "truly ", "quite ", "utterly ", "rather "]


def sentence(rng: random.Random, label: int) -> str:
    words = POSITIVE if label else NEGATIVE
    a, b = rng.sample(words, 2)
    text = rng.choice(FRAMES).format(s=rng.choice(SUBJECTS), a=rng.choice(INTENSIFIERS) + a, b=b)
    return text[0].lower() + text[1:]


def write(path: Path, n: int, rng: random.Random) -> None:
    rows = ["sentence\tlabel"]
    for i in range(n):
        label = i % 2
        rows.append(f"{sentence(rng, label)} \t{label}")
    path.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    here = Path(__file__).parent / "sample_sentiment"
    here.mkdir(exist_ok=True)
    write(here / "train.tsv", 800, random.Random(1))
    write(here / "dev.tsv", 200, random.Random(2))
