"""The exception types the CLI turns into one-line messages.

Library code raises these with a message that names the file (or key, or value) and the problem;
`facebench.cli` prints ``facebench: error: <message>`` and exits with status 2.
"""


class FacebenchError(Exception):
    """Base of every error the CLI reports without a traceback."""


class DataError(FacebenchError):
    """Bad input data: a pack, bin, image, embedding file or folder."""


class ConfigError(FacebenchError):
    """A bad recipe, override or option."""


class ModelError(FacebenchError):
    """A model artifact, ONNX file, backbone or head that cannot be built, loaded or used."""


class EvalError(FacebenchError):
    """Inputs to an evaluation that cannot give a meaningful number."""


class WriteError(FacebenchError):
    """An output that cannot be written: a bad path, a full disk, an output in use."""
