"""Error hierarchy. Each message names the bad value and, where there are choices, the valid ones."""


class RouterError(Exception):
    """Base class for every error tierwise raises on purpose."""

    status_code = 400


class BadRequestError(RouterError):
    """The caller sent something we cannot route; message names the field."""

    status_code = 400


class UnknownTierError(BadRequestError):
    pass


class NotFoundError(RouterError):
    status_code = 404


class BundleError(RouterError):
    """A model bundle is missing, corrupt, or does not match what the service expects."""

    status_code = 500


class ScoringError(RouterError):
    """Embedding or classification failed at request time; the service falls back."""

    status_code = 500


class NotReadyError(RouterError):
    status_code = 503


class InvalidJsonError(BadRequestError):
    """A request body that is not strict JSON (bad UTF-8, NaN, too deep, ...); names the problem."""

    status_code = 422


class UnsupportedMediaTypeError(RouterError):
    """A request body in a media type the endpoint does not read; the message says what to send."""

    status_code = 415


class ConflictError(RouterError):
    """The request conflicts with the service's state (a refused bundle, a reload in progress)."""

    status_code = 409
