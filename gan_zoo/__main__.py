"""The ``gan-zoo`` command (also ``python -m gan_zoo``): one verb per job, each with the parser of its script.

    gan-zoo fit --model pggan                 # = python scripts/fit.py --model pggan
    gan-zoo sample --pretrained dcgan.fmnist32 --out grid.png
    gan-zoo evaluate --ckpt runs/x/checkpoints/last.ckpt --metrics fid,is,kid
    gan-zoo export runs/x --name dcgan.mine --recipe configs/x.yaml --out weights/
    gan-zoo list                              # the models, data sets and pretrained entries
"""

from __future__ import annotations

import importlib
import sys

import gan_zoo
from gan_zoo.datamodules import list_datamodules
from gan_zoo.pretrained import PretrainedError


VERBS = {
    "fit": ("gan_zoo.fit", "train a GAN (scripts/fit.py)"),
    "sample": ("gan_zoo.sample", "a sample grid or latent walks from a model (scripts/sample.py)"),
    "evaluate": ("gan_zoo.evaluate", "FID / IS / KID, toy coverage or encoder probes (scripts/evaluate.py)"),
    "export": ("gan_zoo.export", "turn a run into a zoo entry (scripts/export_pretrained.py)"),
    "list": (None, "the registered models, data sets and pretrained entries"),
}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {verb:<{width}}  {text}" for verb, (_, text) in VERBS.items()]
    return "usage: gan-zoo {" + ",".join(VERBS) + "} ...\n\n" + "\n".join(lines) + \
        "\n\n'gan-zoo VERB --help' shows a verb's options."


def list_everything() -> int:
    print("models:     " + ", ".join(gan_zoo.list_models()))
    print("data sets:  " + ", ".join(list_datamodules()))
    try:
        print("pretrained: " + ", ".join(gan_zoo.list_pretrained()))
    except PretrainedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"error: unknown command {verb!r}; valid: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    module = VERBS[verb][0]
    if module is None:
        return list_everything()
    sys.argv = [f"gan-zoo {verb}", *rest]  # what messages print as the command to run again
    return importlib.import_module(module).cli(rest)


if __name__ == "__main__":
    sys.exit(main())
