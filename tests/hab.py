"""Signed HAB containers for tests, made with spsdk's own classes: an SRK CA of four RSA keys,
a CSF key and an image key signed by SRK1, the SRK table (spsdk SrkTable), and images signed by
spsdk's HabImage from the same configuration `nxpimage hab export` reads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spsdk.crypto.certificate import Certificate, generate_extensions, generate_name
from spsdk.crypto.keys import PrivateKeyRsa
from spsdk.image.hab.hab_image import HabImage
from spsdk.image.hab.hab_srk import SrkItem, SrkTable
from spsdk.utils.config import Config

from gangd.sim.images import build_flashloader_image

FLASHLOADER_ADDRESS = 0x2000_0000
FLASHLOADER_IVT = FLASHLOADER_ADDRESS + 0x400
FLASH = 0x6000_0000
IMAGE_IVT = FLASH + 0x1000


@dataclass
class Keys:
    directory: Path
    certificates: list[Certificate]  # SRK1..SRK4
    table: SrkTable


def make_keys(directory: Path, bits: int = 2048) -> Keys:
    directory.mkdir(parents=True, exist_ok=True)

    def name(cn: str):
        return generate_name({"COMMON_NAME": cn})

    ca, leaf = (
        generate_extensions({"BASIC_CONSTRAINTS": {"ca": True}}),
        generate_extensions({"BASIC_CONSTRAINTS": {"ca": False}}),
    )
    srk_keys = [PrivateKeyRsa.generate_key(bits) for _ in range(4)]
    certificates = [
        Certificate.generate_certificate(name(f"SRK{n + 1}"), name(f"SRK{n + 1}"), k.get_public_key(), k, extensions=ca)
        for n, k in enumerate(srk_keys)
    ]
    for label in ("csf", "img"):
        key = PrivateKeyRsa.generate_key(bits)
        cert = Certificate.generate_certificate(
            name(label.upper() + "1"), name("SRK1"), key.get_public_key(), srk_keys[0], extensions=leaf
        )
        cert.save(str(directory / f"{label}.pem"))
        key.save(str(directory / f"{label}_key.pem"))
    for n, cert in enumerate(certificates):
        cert.save(str(directory / f"SRK{n + 1}_crt.pem"))
    table = SrkTable()
    for cert in certificates:
        table.append(SrkItem.from_certificate(cert))
    (directory / "srk_table.bin").write_bytes(table.export())
    return Keys(directory, certificates, table)


def sign(keys: Keys, app: bytes, start: int, ivt_offset: int, initial_load: int, entry: int, device: str) -> bytes:
    """A HAB container of `app` signed by spsdk (HabImage.load_from_config), from its start address."""
    app_file = keys.directory / f"app-{start:08x}-{len(app)}.bin"
    app_file.write_bytes(app)
    config = {
        "options": {
            "flags": 8,
            "startAddress": start,
            "ivtOffset": ivt_offset,
            "initialLoadSize": initial_load,
            "entryPointAddress": entry,
            "family": "mimxrt1020",
            "bootDevice": device,
            "signatureTimestamp": "30/11/2026 03:00:00",
        },
        "inputImageFile": str(app_file),
        "sections": [
            {
                "Header": {
                    "Header_Version": "4.2",
                    "Header_HashAlgorithm": "sha256",
                    "Header_Engine": "ANY",
                    "Header_EngineConfiguration": 0,
                    "Header_CertificateFormat": "x509",
                    "Header_SignatureFormat": "CMS",
                }
            },
            {"InstallSRK": {"InstallSRK_Table": "srk_table.bin", "InstallSRK_SourceIndex": 0}},
            {"InstallCSFK": {"InstallCSFK_File": "csf.pem", "InstallCSFK_CertificateFormat": "x509"}},
            {
                "AuthenticateCSF": {
                    "AuthenticateCSF_EngineConfiguration": 0,
                    "Signer": "type=file;file_path=csf_key.pem",
                }
            },
            {
                "InstallKey": {
                    "InstallKey_File": "img.pem",
                    "InstallKey_VerificationIndex": 0,
                    "InstallKey_TargetIndex": 2,
                }
            },
            {
                "AuthenticateData": {
                    "AuthenticateData_VerificationIndex": 2,
                    "AuthenticateData_Engine": "ANY",
                    "AuthenticateData_EngineConfiguration": 0,
                    "Signer": "type=file;file_path=img_key.pem",
                }
            },
        ],
    }
    cwd = os.getcwd()
    os.chdir(keys.directory)  # spsdk resolves the sections' files from the working directory
    try:
        image = HabImage.load_from_config(Config(config))
    finally:
        os.chdir(cwd)
    return image.export_padding()


def signed_flashloader(keys: Keys) -> tuple[bytes, int]:
    """The simulator's flashloader code, signed for RAM (IVT 0x400 in), and its jump address."""
    unsigned, jump = build_flashloader_image(load_address=FLASHLOADER_ADDRESS)
    code = unsigned[0x1000:] if len(unsigned) > 0x1000 else unsigned
    data = sign(keys, code, FLASHLOADER_ADDRESS, 0x400, 0x1000, FLASHLOADER_ADDRESS + 0x1001, "serial_downloader")
    return data, FLASHLOADER_IVT


def signed_image(keys: Keys, size: int = 0x6000, seed: bytes = b"app") -> bytes:
    """A signed application for FlexSPI NOR at 0x60000000 (IVT at 0x1000, code at 0x2000)."""
    app = (seed * (size // len(seed) + 1))[:size]
    return sign(keys, app, FLASH, 0x1000, 0x2000, FLASH + 0x2001, "flexspi_nor")
