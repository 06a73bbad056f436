r"""What an ensemble SGAN trained on a 2D toy covers, generator by generator, and what its messengers say about it.

    python -m benchmarks.lab.sgan_messengers --ckpt runs/toy/checkpoints/last.ckpt [--n 2500] [--seed 0] \
        [--json out.json]

For the global generator G_0 and every local generator G_i: the modes with at least one high-quality sample (the toy
protocol of ``--metrics toy``); the union of the local generators' modes; and the mean logit of the messenger
discriminators (and of the local ones) at the mode centres that G_0 misses against those it covers. A messenger that
scores the missed modes higher points G_0 at them: what is missing is then the generator's move, not the signal.

It also scores, with the whole protocol (modes, % high quality, reverse KL), the model's samples (G_0's EMA), G_0's
raw weights (no EMA), and the equal mixture of the local generators (n / N samples of each, in member order), which
tells whether the ensemble as a whole would meet a target that its global generator misses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file (python benchmarks/lab/sgan_messengers.py): gan_zoo from the root
    sys.path.insert(0, str(ROOT))

from gan_zoo.cli import UserError, run_main  # noqa: E402


def _logits_at(discriminators, points, covered) -> dict:
    """The discriminators' mean logit at each point, averaged over the missed (not ``covered``) and covered points."""
    import torch

    with torch.no_grad():
        logits = torch.stack([d(points).reshape(-1) for d in discriminators]).mean(0)
    return {name: round(float(logits[mask].mean()), 4) if bool(mask.any()) else None
            for name, mask in (("missed", ~covered), ("covered", covered))}


def diagnose(model, dm, n: int = 2500, seed: int = 0) -> dict:
    """The coverage of G_0 and of each local generator, and the discriminators' mean logit at missed / covered modes."""
    import torch

    from gan_zoo.metrics.toy import mode_metrics

    modes = dm.modes()
    rows, local_samples = {}, []
    for member in (None, *range(1, model.hparams.n_pairs + 1)):
        x = model.sample(n, seed=seed, member=member)
        rows["global" if member is None else f"local_{member}"] = mode_metrics(x, modes, dm.std)
        if member is not None:
            local_samples.append(x)
    latent = model.sample_latent(n, generator=torch.Generator().manual_seed(seed), device=model.device)
    raw = mode_metrics(model._generate_with(model.generator, latent), modes, dm.std)
    sizes = [len(part) for part in torch.arange(n).tensor_split(model.hparams.n_pairs)]
    mixture = torch.cat([x[:k] for x, k in zip(local_samples, sizes)])
    quality = {name: {"modes": r["modes"], "hq_percent": round(100 * r["hq"], 2),
                      "reverse_kl": round(float(r["reverse_kl"]), 4)}
               for name, r in (("samples", rows["global"]), ("global_raw", raw),
                               ("local_mixture", mode_metrics(mixture, modes, dm.std)))}
    covered = torch.tensor(rows["global"]["counts"]) > 0
    union = torch.stack([torch.tensor(r["counts"]) > 0 for k, r in rows.items() if k != "global"]).any(0)
    points = modes.to(next(model.parameters()).dtype)
    return {
        "modes": {k: r["modes"] for k, r in rows.items()},
        "num_modes": len(modes),
        "union_of_local_modes": int(union.sum()),
        "missed_by_global": [int(i) for i in torch.nonzero(~covered).flatten()],
        "messenger_logit": _logits_at(model.messengers, points, covered),
        "local_d_logit": _logits_at(model.local_discriminators, points, covered),
        "counts": {k: r["counts"] for k, r in rows.items()},
        "quality": quality,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="an SGAN checkpoint written by scripts/fit.py on ring8 or grid25")
    p.add_argument("--n", type=int, default=2500, help="samples per generator (default 2,500, the protocol's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (a fit's own evaluation uses its --seed)")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    import torch

    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.evaluate import load_training_checkpoint

    model, data, _ = load_training_checkpoint(args.ckpt)
    if model.model_name != "ensemble_sgan":
        raise UserError(f"{args.ckpt} is a {model.model_name!r} checkpoint; this diagnosis is for ensemble_sgan")
    dm = get_datamodule(data.get("name", ""))
    if dm.is_image:
        raise UserError(f"{args.ckpt} was trained on {dm.name!r}; this diagnosis needs a 2D toy (ring8, grid25)")
    with torch.no_grad():
        res = diagnose(model, dm, args.n, args.seed)
    k = res["num_modes"]
    print(f"modes (of {k}): " + ", ".join(f"{name} {m}" for name, m in res["modes"].items()))
    print(f"union of the local generators: {res['union_of_local_modes']}; missed by the global one: "
          f"{res['missed_by_global'] or 'none'}")
    for name, label in (("samples", "samples (G_0's EMA)"), ("global_raw", "G_0 without EMA"),
                        ("local_mixture", "mixture of the local generators")):
        q = res["quality"][name]
        print(f"{label}: {q['modes']} modes, {q['hq_percent']} % high quality, reverse KL {q['reverse_kl']}")
    for who in ("messenger", "local_d"):
        v = res[f"{who}_logit"]
        print(f"{who.replace('_', ' ')} mean logit at missed modes {v['missed']}, at covered modes {v['covered']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
