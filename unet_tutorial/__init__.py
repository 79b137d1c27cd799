"""unet_tutorial: U-Net (Ronneberger et al., 2015) in Keras 3, for the book of the same name.

The public names below are the ones the book and the tests import.
"""

from .model import build_unet, conv_block, contracting_block, expansive_block, CropAndConcat
from .shapes import output_size, valid_input_sizes, nearest_valid_input, check_input_size, context_border

__version__ = "0.1.0"
