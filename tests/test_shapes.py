"""The size arithmetic agrees with the paper and with the model itself."""

import pytest

from unet_tutorial import shapes


def test_paper_sizes():
    # Ronneberger et al. 2015, Fig. 1: a 572x572 tile gives a 388x388 output.
    assert shapes.output_size(572) == 388
    assert shapes.context_border() == 92
    # 512 (an ISBI slice) does not fit; the nearest valid sizes around it.
    assert 512 not in shapes.valid_input_sizes(500, 530)
    assert shapes.nearest_valid_input(512) == (508, 524)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_valid_sizes_follow_the_pooling_rule(depth):
    sizes = shapes.valid_input_sizes(1, 700, depth=depth)
    assert sizes, "every depth has valid sizes below 700"
    # Valid sizes are evenly spaced by 2**(depth-1) (each pooling halves).
    steps = {b - a for a, b in zip(sizes, sizes[1:])}
    assert steps == {2 ** (depth - 1)} or depth == 1
    for n in sizes:
        # output = input - 2 * border, the same border for every valid size
        assert shapes.output_size(n, depth=depth) == n - 2 * shapes.context_border(depth)


def test_same_padding_keeps_size():
    assert shapes.output_size(512, padding="same") == 512
    with pytest.raises(ValueError, match="divisible by 2\\*\\*\\(depth-1\\) = 16"):
        shapes.output_size(500, padding="same")


def test_invalid_size_message_names_neighbours():
    with pytest.raises(ValueError) as info:
        shapes.check_input_size(570)
    message = str(info.value)
    assert "570" in message and "556" in message and "572" in message


@pytest.mark.parametrize("bad", [dict(depth=0), dict(depth=2.5), dict(padding="full")])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        shapes.valid_input_sizes(1, 100, **bad)
