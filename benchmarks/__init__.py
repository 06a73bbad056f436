"""Measurements of the zoo, kept out of the wheel (which ships ``gan_zoo`` only).

Run each from the repository root as ``python -m benchmarks.NAME --help``:

- ``benchmark``: training throughput, the Lightning path against the plain PyTorch loops of ``plain_loops`` (and
  ``--check``: every model in each precision, finite losses and images/s); ``speed_options``: channels-last, Adam
  implementations and ``torch.compile`` on the DCGAN step; ``ddp_benchmark``: ``gan_ddp`` against Lightning's DDP;
  ``gpu_syncs``: host synchronisations per training step on CUDA;
- ``toy_benchmark``: mode coverage on the 2D toys over seeds; ``semisup_benchmark``: the semi-supervised GAN against
  its supervised-only baseline; ``probe_benchmark``: linear probes of BiGAN / BigBiGAN encoders;
  ``calibrate_metrics``: the floor and ceiling of FID / IS / KID for a domain extractor;
- ``gpu_session.sh``: what a device session with a GPU runs, in one call;
- ``lab``: investigations whose results docs/lab/ records (``bigan_pairing``, ``sgan_messengers``).

The results and the commands that produced them are in BENCHMARKS.md and docs/lab/.
"""
