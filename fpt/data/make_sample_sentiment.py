"""Writes the small sentiment task that ships with fpt (train.tsv, dev.tsv in GLUE SST-2 format).

The sentences are composed by this script from hand-written word lists, so `python train.py` runs
offline with no downloaded data. Re-run to regenerate: python -m fpt.data.make_sample_sentiment

Not a word-spotting task: in about a third of the sentences a negation flips the adjective ("is not dull"), and in
another third two clauses disagree and the second one decides ("dull at first , but ... moving"), so counting
positive and negative words is right on about half of those; a model has to read the sentence structure.
"""
import random
import sys
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


NEGATED = ["{s} is not {a} .", "{s} was never {a} .", "i would not call {s} {a} .", "{s} is far from {a} .",
           "nobody could say {s} is {a} ."]
CONTRAST = ["{s} looked {x} at first , but it is {a} in the end .", "although {s} is {x} , it is {a} overall .",
            "{s} starts {x} , yet it turns out {a} .", "some parts are {x} , but {s} is {a} ."]


def sentence(rng: random.Random, label: int) -> str:
    """A sentence whose label is `label`: plain (the adjectives say it), negated (an adjective of the other
    polarity under a negation) or contrasting (an adjective of the other polarity, then one that decides)."""
    words, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    kind = rng.random()
    subject = rng.choice(SUBJECTS)
    if kind < 1 / 3:
        a, b = rng.sample(words, 2)
        text = rng.choice(FRAMES).format(s=subject, a=rng.choice(INTENSIFIERS) + a, b=b)
    elif kind < 2 / 3:
        text = rng.choice(NEGATED).format(s=subject, a=rng.choice(other))
    else:
        text = rng.choice(CONTRAST).format(s=subject, x=rng.choice(other), a=rng.choice(words))
    return text[0].lower() + text[1:]


def write(path: Path, n: int, rng: random.Random) -> None:
    rows = ["sentence\tlabel"]
    for i in range(n):
        label = i % 2
        rows.append(f"{sentence(rng, label)} \t{label}")
    path.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    here = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "sample_sentiment"
    here.mkdir(exist_ok=True)
    write(here / "train.tsv", 800, random.Random(1))
    write(here / "dev.tsv", 200, random.Random(2))
