"""unet_tutorial: U-Net (Ronneberger et al., 2015) in Keras 3, for the book of the same name.

The public names below are the ones the book and the tests import. They are
loaded on first use (PEP 562), so that ``python -m unet_tutorial --help`` and
``fetch`` start without importing Keras.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that holds it
_PUBLIC = {
    **dict.fromkeys(("build_unet", "conv_block", "contracting_block", "expansive_block", "CropAndConcat"), "model"),
    **dict.fromkeys(("output_size", "valid_input_sizes", "nearest_valid_input", "check_input_size", "context_border"),
                    "shapes"),
    **dict.fromkeys(("weight_map", "instances_from_isbi", "class_balance_weights", "separate_touching_instances"),
                    "weights"),
    **dict.fromkeys(("elastic_deform", "augment_sample"), "augment"),
    **dict.fromkeys(("mirror_pad", "predict_tiled"), "tiling"),
    **dict.fromkeys(("weighted_cross_entropy", "WeightedCrossEntropy"), "losses"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
