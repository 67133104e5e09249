"""Word-level tokenizer of the tiny model (written to models/tiny/tokenizer.json).

Encoding (the TypeScript tokenizer does exactly the same):
  1. split the text on the special strings (`<system>`, `</system>`, `<user>`, `</user>`, `<uncondition>`,
     `<IMAGE>`, `</IMAGE>`, `<answer>`, `</answer>`), matched case-sensitively as whole strings; each becomes its id;
  2. every other piece is lowercased and split with PATTERN (`re.findall`; whitespace is dropped);
  3. each piece maps to its vocabulary id, or to `<unk>` (0) when unknown.
No BOS and no EOS are added.

Id layout: 0 `<unk>`, 1..W the sorted words, then (in this order) mask, newline, boi, eoi, uncondition, boa, eoa,
answerPad, <system>, </system>, <user>, </user>; textVocabSize = codeOffset = W + 13; image code c is codeOffset + c.
"""

import json
import re

import world

PATTERN = r"<[^>]+>|[a-z]+|[0-9]+|[^\sa-z0-9]"
CODEBOOK_SIZE = 256

SYS = {
    "t2i": "Generate an image according to the text prompt.",
    "edit": "Generate an image applying the following editing instruction based on the original image.",
    "subject": "Generate an image according to the text prompt and the given object image.",
    "control": "Generate an image according to the text prompt and the given control image.",
    "style": "Transform the current image into the style of the provided image.",
    "dense": "Perform dense prediction on the given images.",
    "multiView": "Generate a view-image based on the given image.",
    "mmu": (
        "You are a multimodal model that can process both text and images. Answer the following question based on "
        "the provided images. Analyze each image and combine relevant details to answer."
    ),
}
# the system prompts whose words the tiny vocabulary holds (models/tiny/tokenizer.json was built from these); dense and
# multiView came later: the tiny model, which never learnt them, tokenizes their unknown words as <unk>
VOCAB_SYS = ("t2i", "edit", "subject", "control", "style", "mmu")
PROMPT_TEMPLATE = "<system>{sys}</system><user>{user}</user>"
UNCONDITION = "<uncondition>"

# order of the special ids after the words
SPECIAL_ORDER = ["mask", "newline", "boi", "eoi", "uncondition", "boa", "eoa", "answerPad",
                 "system", "/system", "user", "/user"]
# literal strings the tokenizer turns into special ids
SPECIAL_STRINGS = {
    "<system>": "system",
    "</system>": "/system",
    "<user>": "user",
    "</user>": "/user",
    "<uncondition>": "uncondition",
    "<IMAGE>": "boi",
    "</IMAGE>": "eoi",
    "<answer>": "boa",
    "</answer>": "eoa",
}
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_STRINGS) + ")")
_WORD = re.compile(PATTERN)


def _pieces(text):
    """Yield ('special', string) / ('word', string)."""
    for part in _SPECIAL_SPLIT.split(text):
        if part == "":
            continue
        if part in SPECIAL_STRINGS:
            yield "special", part
        else:
            for w in _WORD.findall(part.lower()):
                yield "word", w


def build_words():
    texts = [SYS[k] for k in VOCAB_SYS] + world.all_text()
    words = set()
    for t in texts:
        for kind, w in _pieces(t):
            if kind == "word":
                words.add(w)
    return sorted(words)


class Tokenizer:
    def __init__(self, words=None):
        if words is None:
            words = build_words()
        self.words = list(words)
        self.vocab = {"<unk>": 0}
        for w in self.words:
            self.vocab[w] = len(self.vocab)
        nxt = len(self.vocab)
        self.ids = {}
        for name in SPECIAL_ORDER:
            self.ids[name] = nxt
            nxt += 1
        self.text_vocab_size = nxt
        self.code_offset = nxt
        self.codebook_size = CODEBOOK_SIZE
        self.vocab_size = self.code_offset + CODEBOOK_SIZE
        self.special = {s: self.ids[n] for s, n in SPECIAL_STRINGS.items()}
        self.inverse = {i: w for w, i in self.vocab.items()}
        for s, i in self.special.items():
            self.inverse[i] = s

    # ids used by the sequence builders
    def __getattr__(self, name):
        ids = self.__dict__.get("ids")
        if ids is not None and name in ids:
            return ids[name]
        raise AttributeError(name)

    def encode(self, text):
        out = []
        for kind, p in _pieces(text):
            out.append(self.special[p] if kind == "special" else self.vocab.get(p, 0))
        return out

    def prompt(self, task, user):
        return self.encode(PROMPT_TEMPLATE.format(sys=SYS[task], user=user))

    def decode_words(self, ids):
        return [self.inverse.get(int(i), "<unk>") for i in ids]

    def to_json(self):
        return {
            "kind": "word",
            "pattern": PATTERN,
            "lowercase": True,
            "unk": 0,
            "vocab": self.vocab,
            "special": self.special,
        }

    def tokens_manifest(self):
        t = self.ids
        return {
            "textVocabSize": self.text_vocab_size,
            "codeOffset": self.code_offset,
            "codebookSize": self.codebook_size,
            "mask": t["mask"],
            "newline": t["newline"],
            "boi": t["boi"],
            "eoi": t["eoi"],
            "uncondition": t["uncondition"],
            "boa": t["boa"],
            "eoa": t["eoa"],
            "answerPad": t["answerPad"],
            "bos": None,
            "eos": None,
        }

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1, sort_keys=False)
            f.write("\n")

    @classmethod
    def load(cls, path):
        """Rebuild from tokenizer.json (words = vocab minus <unk>, in id order)."""
        with open(path) as f:
            j = json.load(f)
        words = [w for w, i in sorted(j["vocab"].items(), key=lambda kv: kv[1]) if i != 0]
        tok = cls(words)
        assert tok.vocab == j["vocab"] and tok.special == j["special"], "tokenizer.json is inconsistent"
        return tok
