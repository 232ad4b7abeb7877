"""Dataverse error responses: `{"error": {"code": "0x...", "message": "..."}}` with the documented codes."""

from __future__ import annotations

from simulators.http import Limits, Refusal, json_response

PAYLOAD_HELP = ("Error identified in Payload provided by the user for Entity :'{entity}', For more information on "
                "this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ----> "
                "InnerException : {inner}")


class DataverseError(Exception):
    """An error the Web API answers with: HTTP status, hex error code, message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"DataverseError({self.status}, {self.code!r}, {self.message!r})"


def does_not_exist(entity: str, row_id: str) -> DataverseError:
    return DataverseError(404, "0x80040217", f"{entity} With Id = {row_id} Does Not Exist")


def unknown_property(entity: str, name: str) -> DataverseError:
    """A $select/$filter/$orderby naming a column the table does not have."""
    return DataverseError(400, "0x80060888",
                          f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'.")


def bad_query(message: str) -> DataverseError:
    return DataverseError(400, "0x80060888", message)


def segment_not_found(segment: str) -> DataverseError:
    return DataverseError(404, "0x80060888", f"Resource not found for the segment '{segment}'.")


def payload_error(entity: str, inner: str) -> DataverseError:
    return DataverseError(400, "0x80048d19", PAYLOAD_HELP.format(entity=entity, inner=inner))


def undeclared_annotation_property(entity: str, name: str) -> DataverseError:
    return payload_error(entity, (
        f"Microsoft.OData.ODataException: An undeclared property '{name}' which only has property annotations in "
        "the payload but no property value was found in the payload. In OData, only declared navigation properties "
        "and declared named streams can be represented as properties without values."))


def undeclared_property(entity: str, name: str) -> DataverseError:
    return payload_error(entity, (
        f"Microsoft.OData.ODataException: Could not find a property named '{name}' on type "
        f"'Microsoft.Dynamics.CRM.{entity}'."))


def wrong_type(entity: str, name: str, value, edm_type: str) -> DataverseError:
    return payload_error(entity, (
        f"Microsoft.OData.ODataException: Cannot convert the literal '{value}' to the expected type "
        f"'{edm_type}'. (property '{name}')"))


def too_long(entity: str, name: str, max_length: int) -> DataverseError:
    return DataverseError(400, "0x80044331", (
        f"A validation error occurred.  The length of the '{name}' attribute of the '{entity}' entity exceeded the "
        f"maximum allowed length of '{max_length}'."))


def out_of_range(entity: str, name: str, value, accepted: str) -> DataverseError:
    return DataverseError(400, "0x8004431a", (
        f"A validation error occurred. The value {value} of '{name}' on record of type '{entity}' is outside the "
        f"valid range. Accepted Values: {accepted}"))


def duplicate_key() -> DataverseError:
    return DataverseError(412, "0x80040237", "Cannot insert duplicate key.")


def already_exists() -> DataverseError:
    return DataverseError(412, "0x80040237", "A record with matching key values already exists.")


def version_mismatch() -> DataverseError:
    return DataverseError(412, "0x80060882",
                          "The version of the existing record doesn't match the RowVersion property provided.")


def method_not_allowed(method: str) -> DataverseError:
    return DataverseError(405, "0x80060888", f"The requested resource does not support http method '{method}'.")


def invalid_argument(message: str, status: int = 400) -> DataverseError:
    return DataverseError(status, "0x80040203", message)


# Bodies for scripted faults (FaultMiddleware), one per status.
FAULT_BODIES = {
    400: ("0x80040203", "Invalid argument."),
    401: ("", "The access token is missing, expired or not valid for this organization."),
    403: ("0x80040220", "Principal user is missing prvReadAccount privilege."),
    404: ("0x80040217", "The specified object was not found."),
    408: ("0x80044151", "The request timed out."),
    409: ("0x80040237", "Operation failed due to a SQL integrity violation."),
    412: ("0x80060882", "The version of the existing record doesn't match the RowVersion property provided."),
    413: ("0x80040216", "The request is too large."),
    429: ("0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds."),
    500: ("0x80040216", "An unexpected error occurred."),
    502: ("0x80040216", "Bad Gateway: the front end could not reach the organization service."),
    503: ("0x80040216", "The service is temporarily unavailable. Please retry the request later."),
    504: ("0x80040216", "Gateway Timeout: the organization service did not answer in time."),
}


def error_body(status: int) -> dict:
    """A realistic Dataverse error body for an injected failure with this status."""
    code, message = FAULT_BODIES.get(status, ("0x80040216", f"An unexpected error occurred (HTTP {status})."))
    return {"error": {"code": code, "message": message}}


# Service protection (Learn: "Service protection API limits"): per user and web server, 6,000
# requests and 1,200 seconds of execution in a sliding 5-minute window, 52 requests at once; every
# refusal is a 429 with Retry-After.
LIMITS = Limits(requests=6000, window_seconds=300, concurrent=52, queue=0, execution_seconds=1200)
PROTECTION = {
    "requests": ("0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds."),
    "execution": ("0x80072321", "Combined execution time of incoming requests exceeded limit of 1,200,000 "
                                "milliseconds over time window of 300 seconds. Decrease number of concurrent "
                                "requests or reduce the duration of requests and try again later."),
    "concurrent": ("0x80072326", "Number of concurrent requests exceeded the limit of 52."),
}


def protection_refusal(refusal: Refusal):
    code, message = PROTECTION.get(refusal.reason, PROTECTION["requests"])
    return json_response({"error": {"code": code, "message": message}}, 429,
                         {"Retry-After": str(refusal.retry_after or 1)})
