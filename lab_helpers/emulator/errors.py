"""The AWS errors the emulator answers with: one class per error type, mapped to status and ``x-amzn-ErrorType``.

Memory and Runtime raise the same classes, and the HTTP layer (:mod:`lab_helpers.emulator.api`) turns any of
them into AWS's rest-json error: the status code, ``{"message": ...}`` and the ``x-amzn-ErrorType`` header that
botocore reads to raise the matching ``ClientError``.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the errors the HTTP layer maps to AWS error types."""

    code = "ServiceException"
    status = 500

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class NotFound(StoreError):
    code = "ResourceNotFoundException"
    status = 404


class Invalid(StoreError):
    code = "ValidationException"
    status = 400

    def __init__(self, message: str, reason: str = "FieldValidationFailed") -> None:
        super().__init__(message, reason)


class Conflict(StoreError):
    code = "ConflictException"
    status = 409
