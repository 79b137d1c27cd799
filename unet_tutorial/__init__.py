"""unet_tutorial: U-Net (Ronneberger et al., 2015) in Keras 3, for the book of the same name.

The public names below are the ones the book and the tests import.
"""

from .model import build_unet, conv_block, contracting_block, expansive_block, CropAndConcat
from .shapes import output_size, valid_input_sizes, nearest_valid_input, check_input_size, context_border

__version__ = "0.1.0"
from .weights import weight_map, instances_from_isbi, class_balance_weights, separate_touching_instances
from .augment import elastic_deform, augment_sample
from .tiling import mirror_pad, predict_tiled
from .losses import weighted_cross_entropy, WeightedCrossEntropy, soft_dice_loss, SoftDiceLoss
