"""The S3 error vocabulary lives in :mod:`holdfast.errors` so the service layer can raise it
without importing the protocol layer; this module is its name in the front end."""

from holdfast.errors import ERRORS, S3Error

__all__ = ["ERRORS", "S3Error"]
