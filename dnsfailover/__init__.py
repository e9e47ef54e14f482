"""dnsfailover: keep an ACME CA's DNS name pointed at a healthy instance."""

__version__ = "0.1.0"
