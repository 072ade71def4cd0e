"""Final training with the published recipes: one genotype (``train_genotype``) or a search
run's best cells (``train_top``)."""
from evonas.training.genotype import default_out_dir, key_hash, train_genotype
from evonas.training.top import front_genotypes, pick_genotype, top_genotypes, train_top
from evonas.training.trainer import NullProgress, Trainer, TrainProgress, model_cost, select_device

__all__ = [
    "NullProgress", "TrainProgress", "Trainer", "default_out_dir", "front_genotypes", "key_hash", "model_cost",
    "pick_genotype", "select_device", "top_genotypes", "train_genotype", "train_top",
]
