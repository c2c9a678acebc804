"""Host side of the wire: one handle per board, and spsdk clients on top of it."""

from spsdk.mboot.mcuboot import McuBoot
from spsdk.mboot.protocol.bulk_protocol import MbootBulkProtocol
from spsdk.sdp.protocol.bulk_protocol import SDPBulkProtocol
from spsdk.sdp.sdp import SDP

from .fd_device import DeviceGoneError, FdHidDevice, TransportAborted


class MbootHidProtocol(MbootBulkProtocol):
    """spsdk's own bulk (HID report) framing, on gangd's device instead of hidapi's."""

    identifier = "gangd-hid"


class SdpHidProtocol(SDPBulkProtocol):
    identifier = "gangd-hid"


def mboot_client(device: FdHidDevice) -> McuBoot:
    """spsdk's McuBoot over our device, raising typed errors instead of setting status codes."""
    return McuBoot(MbootHidProtocol(device), cmd_exception=True)


def sdp_client(device: FdHidDevice) -> SDP:
    return SDP(SdpHidProtocol(device), cmd_exception=True)


__all__ = ["DeviceGoneError", "FdHidDevice", "TransportAborted", "mboot_client", "sdp_client"]
