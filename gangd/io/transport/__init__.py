"""Host side of the wire: one handle per board, and spsdk clients on top of it."""

import functools
import logging
import struct

from spsdk import get_logger
from spsdk.exceptions import SPSDKConnectionError
from spsdk.mboot import mcuboot as spsdk_mcuboot
from spsdk.mboot.commands import (
    CmdPacket,
    CmdResponse,
    CommandFlag,
    CommandTag,
    GetPropertyResponse,
    NoResponse,
    ResponseTag,
    parse_cmd_response,
)
from spsdk.mboot.error_codes import StatusCode
from spsdk.mboot.exceptions import McuBootCommandError, McuBootConnectionError, McuBootDataAbortError, McuBootError
from spsdk.mboot.mcuboot import McuBoot
from spsdk.mboot.properties import PropertyTag, get_property_tag_label
from spsdk.mboot.protocol.bulk_protocol import MbootBulkProtocol, ReportId
from spsdk.sdp.commands import CmdResponse as SdpCmdResponse
from spsdk.sdp.protocol.bulk_protocol import HID_REPORT, SDPBulkProtocol
from spsdk.sdp.sdp import SDP

from gangd.io.transport.fd_device import DeviceGoneError, FdHidDevice, TransportAborted

_log = get_logger("gangd.io.transport")  # spsdk's logger class, which has trace()


class MbootHidProtocol(MbootBulkProtocol):
    """spsdk's own bulk (HID report) framing, on gangd's device instead of hidapi's.

    The two frame helpers are spsdk's, minus one thing: spsdk formats a hex dump of every report
    for its TRACE log inside an f-string, so it is built even when nothing is logged — about a
    third of gangd's CPU per board (bench/isolation.py, python -m tools.bench). Here the dump is
    built only when TRACE is enabled.
    """

    identifier = "gangd-hid"

    def _create_frame(self, data: bytes, report_id: ReportId) -> bytes:
        frame = struct.pack("<2BH", report_id.tag, 0x00, len(data)) + data
        if _trace_enabled():
            _log.trace(f"OUT[{len(frame)}]: {frame.hex(' ').upper()}")
        return frame

    @staticmethod
    def _parse_frame(raw_data: bytes) -> CmdResponse | bytes:
        if _trace_enabled():
            _log.trace(f"IN [{len(raw_data)}]: {raw_data.hex(' ').upper()}")
        if len(raw_data) < 4:
            raise McuBootConnectionError(f"report of {len(raw_data)} bytes is shorter than its header")
        report_id, _, length = struct.unpack_from("<2BH", raw_data)
        if length == 0:
            raise McuBootDataAbortError()
        data = raw_data[4 : 4 + length]
        if length > len(raw_data) - 4:
            raise McuBootConnectionError(f"report claims {length} bytes but carries {len(raw_data) - 4}")
        if report_id == ReportId.CMD_IN:
            if not data or data[0] not in _RESPONSE_TAGS:
                raise McuBootConnectionError(f"unknown response tag in {data[:8].hex()}")
            try:
                return parse_cmd_response(data)
            except (struct.error, ValueError, IndexError, AssertionError) as exc:
                # spsdk parses a short response with struct and lets struct.error escape.
                raise McuBootConnectionError(f"malformed response {data.hex()}: {exc}") from exc
        if report_id != ReportId.DATA_IN:
            raise McuBootConnectionError(f"unexpected report id 0x{report_id:02x}")
        return data


class SdpHidProtocol(SDPBulkProtocol):
    """spsdk's SDP report framing, without the eager per-report hex dump (see MbootHidProtocol)."""

    identifier = "gangd-hid"

    def _create_frame(self, data: bytes, report_id: int, report_size: int, offset: int = 0) -> tuple[bytes, int]:
        chunk = data[offset : offset + report_size]
        frame = bytes([report_id]) + chunk + bytes(report_size - len(chunk))
        return frame, offset + len(chunk)

    @staticmethod
    def _decode_report(raw_data: bytes) -> SdpCmdResponse:
        if not raw_data:
            raise SPSDKConnectionError("No data were received")
        if len(raw_data) < 5 or raw_data[0] not in (HID_REPORT["HAB"][0], HID_REPORT["RET"][0]):
            raise SPSDKConnectionError(f"malformed SDP report {raw_data[:16].hex()}")
        return SdpCmdResponse(raw_data[0] == HID_REPORT["HAB"][0], raw_data[1:])


_RESPONSE_TAGS = frozenset(ResponseTag.tags())


def _trace_enabled() -> bool:
    return _log.isEnabledFor(5)  # spsdk's TRACE level


class GangdMcuBoot(McuBoot):
    """spsdk's McuBoot, minus two costs paid on every command whether anything is logged or not
    (about 20 µs and 100 µs here, against about 65 µs for a whole small command: docs/PERFORMANCE.md).

    - `_process_cmd` is spsdk's, line for line, except that its TRACE and INFO lines are built
      only when their level is enabled: spsdk formats `str()` of the command and of the response
      and the status string in f-strings before the logger looks at its level.
    - `get_property` is spsdk's, except that the property's id and label come from a cache:
      spsdk's `get_property_tag_label` deep-copies its whole property table on every call.
    """

    def _process_cmd(self, cmd_packet: CmdPacket) -> CmdResponse:
        log = spsdk_mcuboot.logger  # spsdk's own logger: the same records when they are enabled
        if not self.is_opened:
            log.info("TX: Device not opened")
            raise McuBootConnectionError("Device not opened")
        if log.isEnabledFor(_TRACE):
            log.trace(f"TX-PACKET: {cmd_packet!s}")
        try:
            self._interface.write_command(cmd_packet)
            response = self._interface.read()
        except TimeoutError:
            self._status_code = StatusCode.NO_RESPONSE.tag
            log.debug("RX-PACKET: No Response, Timeout Error !")
            response = NoResponse(cmd_tag=cmd_packet.header.tag)
        assert isinstance(response, CmdResponse)
        if log.isEnabledFor(_TRACE):
            log.trace(f"RX-PACKET: {response!s}")
        self._status_code = response.status
        if self._cmd_exception and self._status_code != StatusCode.SUCCESS:
            raise McuBootCommandError(CommandTag.get_label(cmd_packet.header.tag), response.status)
        if log.isEnabledFor(logging.INFO):
            log.info(f"CMD: Status: {self.status_string}")
        return response

    def get_property(self, prop_tag: PropertyTag | int, index: int = 0) -> list[int] | None:
        property_id, label = (
            _property_tag_label(prop_tag) if self.family is None else get_property_tag_label(prop_tag, self.family)
        )
        spsdk_mcuboot.logger.info(f"CMD: GetProperty({label}, index={index!r})")
        cmd_packet = CmdPacket(CommandTag.GET_PROPERTY, CommandFlag.NONE.tag, property_id, index)
        cmd_response = self._process_cmd(cmd_packet)
        if cmd_response.status == StatusCode.SUCCESS:
            if isinstance(cmd_response, GetPropertyResponse):
                return cmd_response.values
            raise McuBootError(f"Received invalid get-property response: {cmd_response!s}")
        return None


_TRACE = 5  # spsdk's TRACE level (spsdk.SPSDK_LOG_LEVEL_TRACE)


@functools.cache
def _property_tag_label(prop_tag: PropertyTag | int) -> tuple[int, str]:
    """spsdk's `get_property_tag_label` for no family: its table is fixed, so its answer is too."""
    return get_property_tag_label(prop_tag, None)


def mboot_client(device: FdHidDevice) -> McuBoot:
    """spsdk's McuBoot over our device, raising typed errors instead of setting status codes."""
    return GangdMcuBoot(MbootHidProtocol(device), cmd_exception=True)


def sdp_client(device: FdHidDevice) -> SDP:
    return SDP(SdpHidProtocol(device), cmd_exception=True)  # type: ignore[arg-type]  # spsdk's hint names its own interfaces only


__all__ = ["DeviceGoneError", "FdHidDevice", "TransportAborted", "mboot_client", "sdp_client"]
