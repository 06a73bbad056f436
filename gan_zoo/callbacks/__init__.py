"""Lightning callbacks: checkpoints and budgets in images seen, sample grids, progress."""

from gan_zoo.callbacks.budget import ImagesBudget
from gan_zoo.callbacks.checkpoint import ImagesCheckpoint
from gan_zoo.callbacks.progress import ImagesProgressBar
from gan_zoo.callbacks.samples import SampleGrid, image_grid

__all__ = ["ImagesBudget", "ImagesCheckpoint", "ImagesProgressBar", "SampleGrid", "image_grid"]
