"""macOS SoC energy without root: IOReport's "Energy Model" channel group via ctypes.

The calls follow macmon (github.com/vladkens/macmon, src/sources.rs before v0.7 and
src_lib/sources.rs): IOReportCopyChannelsInGroup("Energy Model") -> a mutable copy ->
IOReportCreateSubscription -> IOReportCreateSamples before and after ->
IOReportCreateSamplesDelta -> for each channel of the delta's "IOReportChannels" array,
IOReportSimpleGetIntegerValue(item, 0) in the unit IOReportChannelGetUnitLabel gives
(mJ, uJ or nJ). Which channel is which rail is macmon's rule (src_lib/metrics.rs), and
the names differ by chip: "CPU Energy" (or "DIE_<n>_CPU Energy" on Ultra), "GPU Energy"
(nJ), "ANE"/"ANE0"/"ANE0_<n>", "DRAM"/"DRAM0"/"DRAM0_<n>", "GPU SRAM..". The pure part
(`rails_from_channels`) is tested on Linux with channel lists captured on an M1 Ultra and
an M5 Max; the ctypes part only runs on a Mac (`macos`-marked tests).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

from anemll_spec.power.base import (
    UPDATE_PERIOD_S,
    Energy,
    PowerSample,
    Sampler,
    Unavailable,
    to_mj,
)

GROUP = "Energy Model"
RAILS = ("cpu", "gpu", "ane", "dram", "gpu_sram")
TOTAL_RAILS = ("cpu", "gpu", "ane", "dram")  # GPU SRAM: macmon keeps it apart; not summed
PUBLICATION_GAP_S = UPDATE_PERIOD_S["ioreport"]  # longest gap between updates seen
SHORT_INTERVAL_S = 10.0  # below this, that gap can be over ~17% of the interval
# 0 mJ for CPU and DRAM over this long is "not published", not a reading between two
# updates: well above the longest gap (at 1.0 s, a 1.2 s loop was called "not published")
ZEROED_MIN_S = 2 * PUBLICATION_GAP_S
_CF = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
_IOREPORT = "/usr/lib/libIOReport.dylib"
_UTF8 = 0x08000100  # kCFStringEncodingUTF8


class Channel(NamedTuple):
    """One channel of an IOReport sample, as macmon's IOReportIterator yields it."""

    group: str
    subgroup: str
    channel: str
    unit: str
    value: int


def rail_of(group: str, channel: str) -> str | None:
    """The rail an Energy Model channel belongs to (macmon's matching), or None."""
    if group != GROUP:
        return None
    if channel == "GPU Energy":
        return "gpu"
    if channel.endswith("CPU Energy"):  # "CPU Energy"; "DIE_0_CPU Energy" on Ultra
        return "cpu"
    if channel.startswith("ANE"):  # "ANE", "ANE0", "ANE0_0" / "ANE0_1" on Ultra
        return "ane"
    if channel.startswith("DRAM"):
        return "dram"
    if channel.startswith("GPU SRAM"):
        return "gpu_sram"
    return None


def rails_from_channels(
    channels: Iterable[Channel],
) -> tuple[dict[str, float], dict[str, float]]:
    """Energy per rail (mJ) from the channels of one delta sample, and the energy of each
    channel that went into a rail ("ane/ANE0_1": mJ), so a reading says what it summed
    and an Ultra's two dies' ANEs stay apart."""
    rails: dict[str, float] = {}
    parts: dict[str, float] = {}
    for ch in channels:
        rail = rail_of(ch.group, ch.channel)
        if rail is None:
            continue
        mj = to_mj(ch.value, ch.unit)
        rails[rail] = rails.get(rail, 0.0) + mj
        key = f"{rail}/{ch.channel}"
        parts[key] = parts.get(key, 0.0) + mj
    return rails, parts


def check_reading(rails: dict[str, float], interval_s: float) -> Unavailable | list[str]:
    """Reasons a delta is not a reading (-> Unavailable) or caveats to attach to it."""
    if not rails:
        return Unavailable("IOReport: no CPU/GPU/ANE/DRAM channel in the Energy Model", "ioreport")
    if interval_s >= ZEROED_MIN_S and rails.get("cpu", 0.0) == 0 and rails.get("dram", 0.0) == 0:
        # the sampling process itself keeps a CPU busy, and DRAM refresh never stops
        return Unavailable(
            f"IOReport Energy Model read 0 mJ for CPU and DRAM over {interval_s:.2f} s: "
            "this macOS does not publish the counters (seen on macOS 27 with M5)",
            "ioreport",
        )
    notes: list[str] = []
    if interval_s < SHORT_INTERVAL_S:
        notes.append(
            f"interval {interval_s:.2f} s is short: IOReport updates the mJ counters at "
            f"irregular steps (up to {PUBLICATION_GAP_S} s apart on an M1 Ultra), so the "
            f"error can reach ~{PUBLICATION_GAP_S / interval_s:.0%} of the figure"
        )
    return notes


class _Lib:
    """ctypes bindings of CoreFoundation and libIOReport (macOS only)."""

    def __init__(self) -> None:
        cf = ctypes.CDLL(_CF)
        io = ctypes.CDLL(_IOREPORT)
        vp, i64, u64, cidx = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_long
        sig = {
            (cf, "CFStringCreateWithCString"): (vp, [vp, ctypes.c_char_p, ctypes.c_uint32]),
            (cf, "CFStringGetCString"): (
                ctypes.c_bool,
                [vp, ctypes.c_char_p, cidx, ctypes.c_uint32],
            ),
            (cf, "CFDictionaryGetValue"): (vp, [vp, vp]),
            (cf, "CFDictionaryGetCount"): (cidx, [vp]),
            (cf, "CFDictionaryCreateMutableCopy"): (vp, [vp, cidx, vp]),
            (cf, "CFArrayGetCount"): (cidx, [vp]),
            (cf, "CFArrayGetValueAtIndex"): (vp, [vp, cidx]),
            (cf, "CFRelease"): (None, [vp]),
            (io, "IOReportCopyChannelsInGroup"): (vp, [vp, vp, u64, u64, u64]),
            (io, "IOReportCreateSubscription"): (vp, [vp, vp, ctypes.POINTER(vp), u64, vp]),
            (io, "IOReportCreateSamples"): (vp, [vp, vp, vp]),
            (io, "IOReportCreateSamplesDelta"): (vp, [vp, vp, vp]),
            (io, "IOReportChannelGetGroup"): (vp, [vp]),
            (io, "IOReportChannelGetSubGroup"): (vp, [vp]),
            (io, "IOReportChannelGetChannelName"): (vp, [vp]),
            (io, "IOReportChannelGetUnitLabel"): (vp, [vp]),
            (io, "IOReportSimpleGetIntegerValue"): (i64, [vp, ctypes.c_int32]),
        }
        for (lib, name), (res, args) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
            setattr(self, name, fn)

    def __getattr__(self, name: str) -> Any:
        """Only for the type checker: the functions above are set per instance, by name."""
        raise AttributeError(name)

    def cfstr(self, s: str) -> int:
        return self.CFStringCreateWithCString(None, s.encode(), _UTF8)

    def pystr(self, ref: int | None) -> str:
        if not ref:
            return ""
        buf = ctypes.create_string_buffer(256)
        if not self.CFStringGetCString(ref, buf, len(buf), _UTF8):
            return ""
        return buf.value.decode("utf-8", "replace")


class IOReportReader:
    """Energy per rail between start() and stop(); a timeline from a sampler thread."""

    method = "ioreport"

    def __init__(self, period_s: float | None = 0.25):
        self._lib = _Lib()
        lib = self._lib
        group = lib.cfstr(GROUP)
        chans = lib.IOReportCopyChannelsInGroup(group, None, 0, 0, 0)
        lib.CFRelease(group)
        if not chans:
            raise OSError("IOReportCopyChannelsInGroup('Energy Model') returned NULL")
        self._sub = None
        self._chan = lib.CFDictionaryCreateMutableCopy(None, lib.CFDictionaryGetCount(chans), chans)
        lib.CFRelease(chans)
        key = lib.cfstr("IOReportChannels")
        has_channels = bool(lib.CFDictionaryGetValue(self._chan, key))
        lib.CFRelease(key)
        out = ctypes.c_void_p()
        if has_channels:
            self._sub = lib.IOReportCreateSubscription(None, self._chan, ctypes.byref(out), 0, None)
        if not self._sub:
            self.close()
            why = "IOReportCreateSubscription failed" if has_channels else "no IOReportChannels"
            raise OSError(f"the Energy Model group: {why}")
        self._sampler = Sampler(self._sample, period_s)

    def _sample(self) -> int:
        return self._lib.IOReportCreateSamples(self._sub, self._chan, None)

    def _delta(self, a: int, b: int) -> list[Channel]:
        lib = self._lib
        if not a or not b:
            return []
        delta = lib.IOReportCreateSamplesDelta(a, b, None)
        if not delta:
            return []
        key = lib.cfstr("IOReportChannels")
        items = lib.CFDictionaryGetValue(delta, key)
        lib.CFRelease(key)
        out = []
        for i in range(lib.CFArrayGetCount(items) if items else 0):
            it = lib.CFArrayGetValueAtIndex(items, i)
            out.append(
                Channel(
                    lib.pystr(lib.IOReportChannelGetGroup(it)),
                    lib.pystr(lib.IOReportChannelGetSubGroup(it)),
                    lib.pystr(lib.IOReportChannelGetChannelName(it)),
                    lib.pystr(lib.IOReportChannelGetUnitLabel(it)).strip(),
                    int(lib.IOReportSimpleGetIntegerValue(it, 0)),
                )
            )
        lib.CFRelease(delta)
        return out

    def start(self) -> None:
        self._sampler.start()

    def stop(self, *, timed_only: bool = True) -> Energy | Unavailable:
        points = self._sampler.stop()
        try:
            interval_s = (points[-1][0] - points[0][0]) / 1e9
            rails, parts = rails_from_channels(self._delta(points[0][1], points[-1][1]))
            timeline: list[PowerSample] = []
            for (t0, a), (t1, b) in zip(points, points[1:], strict=False):
                dt = (t1 - t0) / 1e9
                if dt > 0:
                    step, _ = rails_from_channels(self._delta(a, b))
                    timeline += [PowerSample(t1, r, mj / dt / 1e3) for r, mj in step.items()]
        finally:
            for _, ref in points:
                if ref:
                    self._lib.CFRelease(ref)
        checked = check_reading(rails, interval_s)
        if isinstance(checked, Unavailable):
            return checked
        return Energy(
            rails_mj=rails,
            total_rails=tuple(r for r in TOTAL_RAILS if r in rails),
            interval_s=interval_s,
            method=self.method,
            samples=len(points),
            timed_only=timed_only,
            timeline=tuple(timeline),
            notes=(
                "IOReport Energy Model: the SoC's own estimate, not wall power",
                *checked,
                "summed channels: " + ", ".join(parts),
            ),
            parts_mj=parts,
        )

    def close(self) -> None:
        """Release the subscription and the channel dictionary (macmon's Drop)."""
        for ref in (self._sub, self._chan):
            if ref:
                self._lib.CFRelease(ref)
        self._sub = self._chan = None

    def __del__(self) -> None:  # a reader per variant: each one's references freed with it
        with contextlib.suppress(Exception):
            self.close()


def open_ioreport(period_s: float | None = 0.25) -> IOReportReader | Unavailable:
    if sys.platform != "darwin":
        return Unavailable("IOReport exists on macOS only", "ioreport")
    try:
        return IOReportReader(period_s)
    except (OSError, AttributeError) as exc:  # library or symbol missing, or NULL returned
        return Unavailable(f"IOReport unavailable: {exc}", "ioreport")
