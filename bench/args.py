"""argparse types shared by the bench scripts: a bad value names the option and what is expected."""
import argparse


def _int_at_least(low, expected):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


# An integer >= 1 (batch size, steps, repeats, runs).
positive_int = _int_at_least(1, "a positive integer")
# An integer >= 0 (threads and epochs, where 0 means the default; seeds).
non_negative_int = _int_at_least(0, "0 or a positive integer")
