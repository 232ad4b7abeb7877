"""Business Central error bodies: `{"error": {"code": "<Category_Name>", "message": "<text>  CorrelationId:  <guid>."}}`.

Every failure the simulator reports is a `BCError`; the helpers below build the ones the real
service is documented (or observed) to return, with its code, HTTP status and message wording.
"""

from __future__ import annotations

import uuid

from simulators.http import Limits, Refusal, json_response


def with_correlation(message: str) -> str:
    return f"{message}  CorrelationId:  {uuid.uuid4()}."


class BCError(Exception):
    """A Business Central error: HTTP status, OData error code, message (without the CorrelationId)."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": with_correlation(self.message)}}


def _key_text(value: object) -> str:
    """A key value as a message shows it: blank dates empty, whole decimals without a fraction."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def quoted_key(fields: list[tuple[str, object]]) -> str:
    """`No.='C00010'` (and `,`-joined for compound keys), as BC identifies a record in messages."""
    return ",".join(f"{name}='{_key_text(value)}'" for name, value in fields)


# -- authentication ---------------------------------------------------------------------------------

def invalid_credentials() -> BCError:
    return BCError(401, "Authentication_InvalidCredentials", "The server has rejected the client credentials.")


# -- request shape ----------------------------------------------------------------------------------

def no_route(url: str) -> BCError:
    return BCError(404, "BadRequest_NotFound", f"No HTTP resource was found that matches the request URI '{url}'.")


def resource_not_found(segment: str) -> BCError:
    return BCError(404, "BadRequest_ResourceNotFound", f"Resource not found for the segment '{segment}'.")


def method_not_allowed(method: str, name: str, edm_kind: str) -> BCError:
    return BCError(405, "BadRequest_MethodNotAllowed",
                   f"'{method}' requests for '{name}' of EdmType '{edm_kind}' are not allowed within "
                   "Dynamics 365 Business Central OData web services.")


def bad_request(message: str, code: str = "BadRequest") -> BCError:
    return BCError(400, code, message)


def query_syntax(detail: str = "") -> BCError:
    text = "Bad Request - Error in query syntax."
    return BCError(400, "BadRequest_NotFound", f"{text} {detail}".strip())


def unknown_query_property(name: str, type_name: str) -> BCError:
    return BCError(400, "BadRequest_NotFound", f"Could not find a property named '{name}' on type '{type_name}'.")


# What the OData layer does not implement answers 501 with BadRequest_MethodNotImplemented (observed on
# tenants for `or` across fields, `not` and `in` below schema version 2.1; the page-variable wording is ours).

def or_on_distinct_fields() -> BCError:
    return BCError(501, "BadRequest_MethodNotImplemented",
                   "The 'OR' operator is not supported on distinct fields on an OData filter.")


def not_operator() -> BCError:
    return BCError(501, "BadRequest_MethodNotImplemented",
                   "Client requests that contain 'Not' filter options are not supported.")


def in_operator() -> BCError:
    return BCError(501, "BadRequest_MethodNotImplemented",
                   "The 'In' operator is only supported with $schemaversion=2.1.")


def page_variable(name: str, option: str) -> BCError:
    return BCError(501, "BadRequest_MethodNotImplemented",
                   f"The property '{name}' is not bound to a table field and cannot be used in {option}.")


def invalid_enum_literal(value: str) -> BCError:
    return BCError(400, "BadRequest", f"The string '{value}' is not a valid enumeration type constant.")


def unknown_body_property(name: str, type_name: str) -> BCError:
    return BCError(400, "BadRequest",
                   f"The property '{name}' does not exist on type '{type_name}'. "
                   "Make sure to only use property names that are defined by the type.")


def read_only_property(caption: str) -> BCError:
    return BCError(400, "BadRequest_InvalidOperation", f"Control '{caption}' is read-only.")


def literal_conversion(value: object, edm_type: str) -> BCError:
    return BCError(400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{edm_type}'.")


def null_not_allowed(name: str, edm_type: str) -> BCError:
    return BCError(400, "BadRequest",
                   f"A null value was found for the property named '{name}', which has the expected type "
                   f"'{edm_type}[Nullable=False]'. The expected type '{edm_type}[Nullable=False]' does not allow null values.")


def batch_too_large(limit: int) -> BCError:
    """More requests in one `$batch` than allowed (code and wording as reported from tenants)."""
    return BCError(400, "Unknown", f"The current batch message contains too many parts. A maximum number of "
                                   f"'{limit}' query operations and change sets are allowed in a batch message.")


def invalid_body() -> BCError:
    return BCError(400, "BadRequest", "Invalid Request Body")


# -- concurrency -------------------------------------------------------------------------------------

def missing_concurrency_token() -> BCError:
    return BCError(400, "BadRequest_InvalidToken",
                   "Could not validate the client concurrency token required by the service. "
                   "Please provide a valid token in the client request.")


def entity_changed() -> BCError:
    return BCError(409, "Request_EntityChanged", "Another user has already changed the record.")


# -- data -----------------------------------------------------------------------------------------

def record_not_found(table: str, key: list[tuple[str, object]]) -> BCError:
    return BCError(404, "Internal_RecordNotFound",
                   f"The {table} does not exist. Identification fields and values: {quoted_key(key)}")


def record_exists(table: str, key: list[tuple[str, object]]) -> BCError:
    return BCError(400, "Internal_EntityWithSameKeyExists",
                   f"The record in table {table} already exists. Identification fields and values: {quoted_key(key)}")


def string_too_long(value: str, max_length: int) -> BCError:
    return BCError(400, "Application_StringExceededLength",
                   f"The length of the string is {len(value)}, but it must be less than or equal to "
                   f"{max_length} characters. Value: {value}")


def cannot_evaluate(value: object, type_name: str = "Option") -> BCError:
    return BCError(400, "Application_EvaluateException", f"The value '{value}' cannot be evaluated into type {type_name}.")


def table_relation(field: str, table: str, value: object, related: str) -> BCError:
    return BCError(400, "Internal_InvalidTableRelation",
                   f"The field {field} of table {table} contains a value ({value}) that cannot be found in the "
                   f"related table ({related}).")


def must_have_value(field: str, table: str, key: list[tuple[str, object]]) -> BCError:
    return BCError(400, "Application_FieldValidationException",
                   f"{field} must have a value in {table}: {quoted_key(key).replace(chr(39), '')}. "
                   "It cannot be zero or empty.")


def must_be_equal(field: str, expected: str, table: str, key: list[tuple[str, object]], current: str) -> BCError:
    """TestField(field, expected) failing: `Blocked must be equal to 'No'  in Item: No.=1000. Current value is 'Yes'.`"""
    where = ", ".join(f"{name}={value}" for name, value in key)
    return BCError(400, "Application_FieldValidationException",
                   f"{field} must be equal to '{expected}'  in {table}: {where}. Current value is '{current}'.")


def dialog(message: str) -> BCError:
    return BCError(400, "Application_DialogException", message)


def company_not_found(company: str) -> BCError:
    return BCError(404, "Internal_CompanyNotFound", f"Cannot open company {company}.")


# -- scripted failures (FaultMiddleware) ---------------------------------------------------------------

_FAULTS = {
    400: ("BadRequest", "Bad Request"),
    401: ("Authentication_InvalidCredentials", "The server has rejected the client credentials."),
    403: ("Authorization_InsufficientPermissions", "You do not have permission to access this resource."),
    404: ("BadRequest_ResourceNotFound", "Resource not found."),
    408: ("Request_Timeout", "The operation has timed out."),
    409: ("Request_EntityChanged", "Another user has already changed the record."),
    413: ("RequestEntityTooLarge", "The request is larger than the maximum allowed."),
    429: ("Application_TooManyRequests", "Too many requests reached. Actual (101). Maximum (100)."),
    500: ("Internal_ServerError", "An unexpected error occurred on the server."),
    502: ("BadGateway", "The service is temporarily unavailable. Please try again later."),
    503: ("Internal_ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The operation did not complete in time."),
}


def error_body(status: int) -> dict:
    """A realistic body for a scripted failure with this status (used by FaultMiddleware)."""
    code, message = _FAULTS.get(status, ("Unknown", "An error occurred while processing this request."))
    return {"error": {"code": code, "message": with_correlation(message)}}


# Operational limits of Business Central online for OData and API requests, per user: 6,000 requests
# in a sliding 5-minute window and 5 at once, with up to 95 more waiting; a request waits at most 8
# minutes for its turn. Over them: 429 (no Retry-After is promised), or 503 when the wait times out.
# A `$batch` is one request here, in the window and in the concurrent places, whatever it holds: no
# Microsoft page says otherwise, and batching is their advice for making fewer calls.
LIMITS = Limits(requests=6000, window_seconds=300, concurrent=5, queue=95, queue_timeout_seconds=480)
_PROTECTION = {
    "requests": "The number of requests exceeded the limit of 6000 over a time window of 300 seconds.",
    "concurrent": "Too many concurrent requests: the request queue is full.",
}


def protection_refusal(refusal: Refusal):
    if refusal.reason == "queue timeout":
        return json_response(error_body(503), 503)
    return json_response({"error": {"code": "Application_TooManyRequests",
                                    "message": with_correlation(_PROTECTION.get(refusal.reason, _PROTECTION["requests"]))}},
                         429)
