"""Dataverse Web API v9.2 simulator: a real HTTPS server on loopback that the production client and
Microsoft's PowerPlatform-Dataverse-Client SDK talk to as they would to an organisation."""

from .errors import DataverseError, error_body
from .schema import Attr, Entity, Schema, default_schema
from .simulator import DataverseSimulator

__all__ = ["DataverseSimulator", "DataverseError", "error_body", "Attr", "Entity", "Schema", "default_schema"]
