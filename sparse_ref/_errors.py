"""The exceptions sparse_ref raises for bad input (layer 0: imports nothing of the package).

Each one is also the builtin exception Python code expects (ValueError, TypeError) and a
RuntimeError, which is what torch raises for the same mistakes, so code written for either
catches it. Messages name the argument, what was expected and what was given.
"""


class ShapeError(ValueError, RuntimeError):
    """Operands whose shapes do not fit. A ValueError, and a RuntimeError like torch's, so
    code written for either catches it."""


class DTypeError(TypeError, RuntimeError):
    """Operands of different dtypes (sparse_ref never promotes). A TypeError, and a
    RuntimeError like torch's."""


class ArgumentError(ValueError, RuntimeError):
    """An operand or argument that torch refuses with a RuntimeError (a matrix that is not
    2-D, a shape that does not broadcast, a layout an op does not take). A ValueError too,
    so code written for either catches it."""


class ArgumentTypeError(TypeError, RuntimeError):
    """A wrong kind of operand where torch raises RuntimeError (a dense tensor where a
    sparse one is needed). A TypeError too."""


class IndexRangeError(IndexError, RuntimeError):
    """An index outside its dimension (negative, at or beyond the size, or beyond int64).
    An IndexError, and a RuntimeError like torch's "size is inconsistent with indices"."""


class ConversionError(ValueError, RuntimeError):
    """A value that the target dtype cannot represent (an integer out of range, NaN or inf
    to an integer type, a finite float beyond the target's range): refused, never
    converted in silence. A RuntimeError like torch's "value cannot be converted to type
    int32 without overflow", and a ValueError."""


class MissingDependency(AttributeError):
    """A feature whose optional package is not installed (``sr.bfloat16`` without
    ml_dtypes): the message names the package to install. An AttributeError (Python
    cannot make it an ImportError too), so ``hasattr`` answers False."""


API_PAGE = "the API reference page of sparse_ref's docs (docs/api.rst)"


def missing(owner: str, name: str) -> AttributeError:
    """The AttributeError for a name torch has and sparse_ref does not: it says so, and
    where to see what exists (a plain "has no attribute" reads like a typo)."""
    if name.startswith("_"):
        return AttributeError(f"{owner} has no attribute {name!r}")
    return AttributeError(
        f"{owner} has no attribute {name!r}: sparse_ref implements the part of torch that "
        f"sparse-model coursework uses, and {name!r} is not (yet) part of it; see {API_PAGE} "
        "for what exists")
