"""The core of gangd: ports, the station that routes events to them, results and domain errors.

See ARCHITECTURE.md: udev -> station -> port -> job -> steps -> spsdk -> transport.
"""
