"""Names of the Arm cores an arm64 Linux /proc/cpuinfo describes only by number: its
'CPU implementer' and 'CPU part' (the MIDR fields), with no 'model name' line. A small
table of the server, desktop and board cores a benchmark meets, by the IDs Arm and the
vendors publish (the Linux kernel's arch/arm64/include/asm/cputype.h lists them); a pair
not in it is named by its numbers."""

from __future__ import annotations

# implementer -> (vendor, {part: core})
_CORES: dict[int, tuple[str, dict[int, str]]] = {
    0x41: (
        "ARM",
        {
            0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55",
            0xD07: "Cortex-A57", 0xD08: "Cortex-A72", 0xD09: "Cortex-A73",
            0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse N1",
            0xD0D: "Cortex-A77", 0xD40: "Neoverse V1", 0xD41: "Cortex-A78",
            0xD44: "Cortex-X1", 0xD46: "Cortex-A510", 0xD47: "Cortex-A710",
            0xD48: "Cortex-X2", 0xD49: "Neoverse N2", 0xD4B: "Cortex-A78C",
            0xD4D: "Cortex-A715", 0xD4E: "Cortex-X3", 0xD4F: "Neoverse V2",
            0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4",
            0xD84: "Neoverse V3", 0xD85: "Cortex-X925", 0xD87: "Cortex-A725",
            0xD8E: "Neoverse N3",
        },
    ),  # fmt: skip
    0x43: ("Cavium", {0x0AF: "ThunderX2"}),
    0x46: ("Fujitsu", {0x001: "A64FX"}),
    0x48: ("HiSilicon", {0xD01: "Kunpeng 920"}),
    0x4E: ("NVIDIA", {0x000: "Denver", 0x003: "Denver 2", 0x004: "Carmel"}),
    0x51: ("Qualcomm", {0x001: "Oryon", 0x800: "Kryo 2xx Gold", 0x801: "Kryo 2xx Silver",
                        0x802: "Kryo 3xx Gold", 0x803: "Kryo 3xx Silver",
                        0x804: "Kryo 4xx Gold", 0x805: "Kryo 4xx Silver", 0xC00: "Falkor"}),
    0x61: ("Apple", {}),  # Asahi Linux: each part is a core of one SoC, named below
    0xC0: ("Ampere", {0xAC3: "Ampere-1", 0xAC4: "Ampere-1a"}),
}  # fmt: skip

# Apple's efficiency and performance cores each have a part: the chip is the SoC, named
# as macOS names it (machdep.cpu.brand_string), so one Mac reads the same under Linux
_APPLE_SOC = {
    0x022: "M1", 0x023: "M1", 0x024: "M1 Pro", 0x025: "M1 Pro", 0x028: "M1 Max",
    0x029: "M1 Max", 0x032: "M2", 0x033: "M2", 0x034: "M2 Pro", 0x035: "M2 Pro",
    0x038: "M2 Max", 0x039: "M2 Max",
}  # fmt: skip


def core_name(implementer: int, part: int) -> str:
    """'ARM Neoverse V2', 'Apple M1', or 'ARM implementer 0x41 part 0xdff' for a pair the
    table does not know."""
    if implementer == 0x61 and part in _APPLE_SOC:
        return f"Apple {_APPLE_SOC[part]}"
    vendor, parts = _CORES.get(implementer, ("", {}))
    if part in parts:
        return f"{vendor} {parts[part]}"
    return f"ARM implementer 0x{implementer:02x} part 0x{part:03x}"


def chip_name(pairs: list[tuple[int, int]]) -> str | None:
    """The chip of a CPU's cores, given as (implementer, part) per processor: each kind
    once, in the order the processors list them ('ARM Cortex-A55 + ARM Cortex-A76' for
    a big.LITTLE board); None for none."""
    names = list(dict.fromkeys(core_name(i, p) for i, p in pairs))
    return " + ".join(names) or None
