"""psrunner: runbooks that orchestrate Microsoft Graph and PowerShell over PSRP."""

__version__ = "0.1.0"
