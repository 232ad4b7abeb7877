"""Business Central simulator: API v2.0 entity sets and OData v4 page web services over one set of
tables, served over HTTPS on loopback (see simulator.py for the in-process API)."""

from .errors import BCError, error_body
from .simulator import AUDIENCE, BCUser, BusinessCentralSimulator

__all__ = ["AUDIENCE", "BCError", "BCUser", "BusinessCentralSimulator", "error_body"]
