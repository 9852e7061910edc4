"""argparse types shared by the bench scripts: a bad value names the option and what is expected."""
import argparse


def positive_int(text):
    """An integer >= 1 (batch size, steps, repeats, runs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a positive integer")
    return value


def non_negative_int(text):
    """An integer >= 0 (threads and epochs, where 0 means the default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 or a positive integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: expected 0 or a positive integer")
    return value
