"""``benchmarks/lab/sgan_messengers.py``: coverage per SGAN generator and the discriminators' logits at missed modes."""

import json

import torch

from benchmarks.lab import sgan_messengers
from gan_zoo.fit import main as fit_main


def test_sgan_diagnosis_matches_its_definition(tmp_path, capsys):
    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.evaluate import load_training_checkpoint
    from gan_zoo.metrics.toy import mode_metrics

    run = tmp_path / "run"
    assert fit_main(["--model", "sgan", "--data", "ring8", "--n-pairs", "2", "--batch-size", "32", "--max-images",
                     "96", "--latent-dim", "2", "--hidden", "8", "--metrics", "none", "--logger", "none", "--out",
                     str(run), "--no-progress-bar"]) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    out = tmp_path / "diag.json"
    assert sgan_messengers.cli(["--ckpt", ckpt, "--n", "500", "--seed", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "union of the local generators" in printed
    res = json.loads(out.read_text())

    model, _, _ = load_training_checkpoint(ckpt)
    dm = get_datamodule("ring8")
    modes = dm.modes()
    per = {name: mode_metrics(model.sample(500, seed=3, member=m), modes, dm.std)
           for name, m in (("global", None), ("local_1", 1), ("local_2", 2))}
    assert res["modes"] == {k: v["modes"] for k, v in per.items()}
    assert res["counts"] == {k: v["counts"] for k, v in per.items()}
    union = [a > 0 or b > 0 for a, b in zip(per["local_1"]["counts"], per["local_2"]["counts"])]
    assert res["union_of_local_modes"] == sum(union)
    missed = [i for i, c in enumerate(per["global"]["counts"]) if c == 0]
    assert res["missed_by_global"] == missed
    assert set(res) == {"modes", "num_modes", "union_of_local_modes", "missed_by_global", "messenger_logit",
                        "local_d_logit", "counts", "quality"}
    # the whole protocol for the model's samples, for G_0 without its EMA and for the mixture of the local generators
    z = model.sample_latent(500, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        raw = model.generator(z)
    assert not torch.equal(raw, model.sample(500, seed=3))  # the EMA differs from the raw weights after 3 steps
    mixture = torch.cat([model.sample(500, seed=3, member=1)[:250], model.sample(500, seed=3, member=2)[:250]])
    for name, x in (("samples", model.sample(500, seed=3)), ("global_raw", raw), ("local_mixture", mixture)):
        r = mode_metrics(x, modes, dm.std)
        assert res["quality"][name] == {"modes": r["modes"], "hq_percent": round(100 * r["hq"], 2),
                                        "reverse_kl": round(r["reverse_kl"], 4)}, name
    q = res["quality"]["local_mixture"]
    assert (f"mixture of the local generators: {q['modes']} modes, {q['hq_percent']} % high quality, "
            f"reverse KL {q['reverse_kl']}") in printed


def test_sgan_diagnosis_on_known_samples(tmp_path):
    # The generators replaced by known samples: G_0 on ring modes 0-3, G_1 on 0-5, G_2 on 6 and 7.
    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.evaluate import load_training_checkpoint

    run = tmp_path / "run"
    assert fit_main(["--model", "sgan", "--data", "ring8", "--n-pairs", "2", "--batch-size", "32", "--max-images",
                     "32", "--latent-dim", "2", "--hidden", "8", "--metrics", "none", "--logger", "none", "--out",
                     str(run), "--no-progress-bar"]) == 0
    model, _, _ = load_training_checkpoint(str(run / "checkpoints" / "last.ckpt"))
    dm = get_datamodule("ring8")
    modes = dm.modes()
    on = {None: [0, 1, 2, 3], 1: [0, 1, 2, 3, 4, 5], 2: [6, 7]}
    model.sample = lambda n, seed=None, member=None: modes[on[member]].repeat(3, 1)
    res = sgan_messengers.diagnose(model, dm, n=12)
    assert res["modes"] == {"global": 4, "local_1": 6, "local_2": 2}
    assert res["counts"]["global"] == [3, 3, 3, 3, 0, 0, 0, 0]
    assert res["union_of_local_modes"] == 8 and res["missed_by_global"] == [4, 5, 6, 7]
    # the mixture takes the first 6 of each local's 12 samples: modes 0-5 once, modes 6 and 7 three times each
    p = torch.tensor([1.0] * 6 + [3.0] * 2, dtype=torch.float64) / 12
    rkl = round(float((p * (p * 8).log()).sum()), 4)
    assert rkl == round(0.5 * torch.tensor(4 / 3, dtype=torch.float64).log().item(), 4)
    assert res["quality"]["local_mixture"] == {"modes": 8, "hq_percent": 100.0, "reverse_kl": rkl}
    two = round(float(torch.tensor(2.0, dtype=torch.float64).log()), 4)  # 4 of 8 modes, evenly: log 2
    assert res["quality"]["samples"] == {"modes": 4, "hq_percent": 100.0, "reverse_kl": two}
    with torch.no_grad():
        msg = torch.stack([m(modes).reshape(-1) for m in model.messengers]).mean(0)
        loc = torch.stack([d(modes).reshape(-1) for d in model.local_discriminators]).mean(0)
    expect = {"messenger_logit": msg, "local_d_logit": loc}
    for key, logits in expect.items():
        assert res[key] == {"missed": round(float(logits[4:].mean()), 4), "covered": round(float(logits[:4].mean()), 4)}
    model.sample = lambda n, seed=None, member=None: modes.repeat(2, 1)  # everything covered: nothing to score
    res = sgan_messengers.diagnose(model, dm, n=16)
    assert res["missed_by_global"] == [] and res["messenger_logit"]["missed"] is None


def test_sgan_diagnosis_refuses_other_models(tmp_path, capsys):
    run = tmp_path / "dcgan"
    assert fit_main(["--model", "dcgan", "--data", "ring8", "--batch-size", "32", "--max-images", "32",
                     "--latent-dim", "2", "--hidden", "8", "--metrics", "none", "--logger", "none",
                     "--out", str(run), "--no-progress-bar"]) == 0
    capsys.readouterr()
    assert sgan_messengers.cli(["--ckpt", str(run / "checkpoints" / "last.ckpt")]) == 2
    assert "is a 'dcgan' checkpoint; this diagnosis is for ensemble_sgan" in capsys.readouterr().err
