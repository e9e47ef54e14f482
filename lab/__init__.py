"""The lab: real servers (Pebble, BIND, openssl ocsp, moto, a CRL web server) on 127.0.0.1.

Used by the integration tests, `make demo` and the benchmarks. Not part of the installed
package. Every server waits until it really answers before it is handed out, keeps its log in
a file, and is stopped by its PID when the lab closes, even after a failed test.
"""

from lab.lab import Lab, LabError

__all__ = ["Lab", "LabError"]
