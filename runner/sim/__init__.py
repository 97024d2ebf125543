"""Embedded simulators: a Microsoft 365 tenant (Entra token endpoint + Graph subset) and a
Windows host (WSMan/PSRP endpoint). Used by `psrunner demo`, `psrunner sim serve` and the tests.

Needs the `sim` extra (cryptography, psrpcore, pyspnego)."""
