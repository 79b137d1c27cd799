"""Size arithmetic of U-Net: which input sizes fit, and how big the output is.

With unpadded ("valid") 3x3 convolutions every convolution trims one pixel on
each side, and every 2x2 max pooling needs an even size. So only some input
sizes work: 572 does (the paper's tile, output 388), 512 does not. These helpers
do the arithmetic so that nobody has to do it by hand (Ronneberger et al. 2015,
Sec. 2 and Fig. 1: "it is important to select the input tile size such that all
2x2 max-pooling operations are applied to a layer with an even x- and y-size").

``depth`` counts the levels of the U, the bottom one included: the paper's
network has depth 5 (four poolings, four up-convolutions).
"""

from __future__ import annotations

import numbers

PADDINGS = ("valid", "same")


def check_depth_and_padding(depth: int, padding: str) -> None:
    """Raise ``ValueError`` naming the argument unless depth is a whole number >= 1 and padding one of PADDINGS."""
    if not isinstance(depth, numbers.Integral) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (the paper uses 5), got {depth!r}.")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}.")


def _output_size_or_none(input_size: int, depth: int, padding: str) -> int | None:
    """The output size, or None when ``input_size`` does not fit the network."""
    if input_size < 1:
        return None
    if padding == "same":
        # Only the poolings constrain the size: it must halve evenly depth-1 times.
        return input_size if input_size % 2 ** (depth - 1) == 0 else None
    size = input_size
    for _ in range(depth - 1):  # contracting path: two 3x3 convolutions, then pool
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4  # the two convolutions at the bottom of the U
    if size <= 0:
        return None
    for _ in range(depth - 1):  # expansive path: 2x2 up-convolution, two 3x3 convs
        size = 2 * size - 4
        if size <= 0:
            return None
    return size


def output_size(input_size: int, depth: int = 5, padding: str = "valid") -> int:
    """Output height (or width) of U-Net for a square input of ``input_size``.

    >>> output_size(572)
    388

    Raises ``ValueError`` naming the nearest valid input sizes when
    ``input_size`` does not fit.
    """
    check_input_size(input_size, depth=depth, padding=padding)
    return _output_size_or_none(input_size, depth, padding)


def valid_input_sizes(start: int = 1, stop: int = 1024, depth: int = 5, padding: str = "valid") -> list[int]:
    """All valid input sizes in the closed range [start, stop]."""
    check_depth_and_padding(depth, padding)
    return [n for n in range(max(1, start), stop + 1) if _output_size_or_none(n, depth, padding)]


def nearest_valid_input(n: int, depth: int = 5, padding: str = "valid") -> tuple[int | None, int]:
    """The valid input sizes closest to ``n``: (largest <= n, smallest >= n).

    The first element is None when no valid size is at or below ``n``.

    >>> nearest_valid_input(512)
    (508, 524)
    """
    check_depth_and_padding(depth, padding)
    below = next((m for m in range(int(n), 0, -1) if _output_size_or_none(m, depth, padding)), None)
    above = next(m for m in range(max(int(n), 1), 10 * int(n) + 2**depth * 8) if _output_size_or_none(m, depth, padding))
    return below, above


def check_input_size(input_size: int, depth: int = 5, padding: str = "valid") -> None:
    """Raise ``ValueError`` if ``input_size`` does not fit; name the nearest valid sizes."""
    check_depth_and_padding(depth, padding)
    if _output_size_or_none(int(input_size), depth, padding) is None:
        below, above = nearest_valid_input(max(int(input_size), 1), depth, padding)
        nearest = f"{below} or {above}" if below is not None else f"{above}"
        rule = (
            "every max pooling needs an even size after the unpadded convolutions"
            if padding == "valid"
            else f"the size must be divisible by 2**(depth-1) = {2 ** (depth - 1)}"
        )
        raise ValueError(
            f"Input size {input_size} does not fit a U-Net of depth {depth} with "
            f"padding='{padding}' ({rule}). Nearest valid input sizes: {nearest}. "
            f"See unet_tutorial.shapes.valid_input_sizes()."
        )


def context_border(depth: int = 5, padding: str = "valid") -> int:
    """Pixels lost on each side: (input size - output size) / 2.

    This is the context a tile needs around the region it predicts, and the width
    of the mirrored border in the overlap-tile strategy (92 for the paper's net).
    """
    check_depth_and_padding(depth, padding)
    if padding == "same":
        return 0
    smallest = valid_input_sizes(1, 64 * 2**depth, depth, padding)[0]
    return (smallest - _output_size_or_none(smallest, depth, padding)) // 2
