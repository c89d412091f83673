"""pyrunc: an OCI container runtime whose heart is ``exec``."""

__version__ = "0.1.0"
OCI_VERSION = "1.0.2"
