"""Training core: targets, losses, data plumbing and the (DDP-capable) trainer.

torch is required (``pip install uniparser-sdk[train]``). Entry point: ``uniparser-train`` /
:func:`uniparser_sdk.train.trainer.train`.
"""
from .losses import LOSS_NAMES, LossConfig, UniParserLoss, dice_loss, sigmoid_focal_loss
from .targets import ImageTargets, build_targets
from .trainer import TrainConfig, Trainer, TrainingError, train

__all__ = ["ImageTargets", "build_targets", "LossConfig", "UniParserLoss", "dice_loss", "sigmoid_focal_loss",
           "LOSS_NAMES", "TrainConfig", "Trainer", "TrainingError", "train"]
