"""Investigations behind results recorded in docs/lab/: ``python -m benchmarks.lab.bigan_pairing`` (can a BiGAN
discriminator learn the pairing?, docs/lab/bigan.md) and ``python -m benchmarks.lab.sgan_messengers`` (which modes
each SGAN generator covers and how the messengers score the missed ones, docs/lab/toys.md)."""
